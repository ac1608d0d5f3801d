package pricing

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCost(t *testing.T) {
	t.Parallel()
	p := Price{InputPerMTok: 2_500_000, OutputPerMTok: 10_000_000} // $2.50 / $10 per M
	require.Equal(t, int64(2_500_000+10_000_000), p.Cost(1_000_000, 1_000_000))
	require.Equal(t, int64(3), p.Cost(1, 0), "2.5 micro-dollars round up to 3")
	require.Equal(t, int64(0), p.Cost(0, 0))
	require.Equal(t, int64(12_500), p.Cost(1_000, 1_000))
}

func TestLookupPrefersTheOrganizationsPrice(t *testing.T) {
	t.Parallel()
	p, ok := Lookup(nil, "gpt-4o")
	require.True(t, ok)
	require.Equal(t, Defaults["gpt-4o"], p)
	p, ok = Lookup(map[string]Price{"gpt-4o": {1, 2}}, "gpt-4o")
	require.True(t, ok)
	require.Equal(t, Price{1, 2}, p)
	_, ok = Lookup(nil, "my-finetune")
	require.False(t, ok)
	require.Contains(t, DefaultModels(), "claude-sonnet-4")
}
