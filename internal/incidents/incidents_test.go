package incidents

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNormalizeErrorIgnoresWhatChanges(t *testing.T) {
	t.Parallel()
	a := NormalizeError(`Timeout after 30s calling tool "search" (request 8f3a2b1c-0000-4a4a-9b9b-123456789abc, run run_06h036vk2ssszekez0c809qkym)`)
	b := NormalizeError(`timeout after 45s   calling tool "fetch" (request 11111111-2222-3333-4444-555555555555, run run_06h036vwqnvwf82ha19mnf3ka8)`)
	require.Equal(t, a, b)
	require.Equal(t, `timeout after <n>s calling tool <str> (request <id>, run <id>)`, a)
	require.NotEqual(t, a, NormalizeError("rate limited by provider"))
	require.LessOrEqual(t, len(NormalizeError(strings.Repeat("x", 1000))), 200)
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	fp := Fingerprint("org_a", RunFailure, []string{"agt_1", "TIMEOUT", "sig"})
	require.Regexp(t, `^run-failure-[0-9a-f]{16}$`, fp)
	require.Equal(t, fp, Fingerprint("org_a", RunFailure, []string{"agt_1", "TIMEOUT", "sig"}))
	require.NotEqual(t, fp, Fingerprint("org_b", RunFailure, []string{"agt_1", "TIMEOUT", "sig"}), "tenants never share incidents")
	require.NotEqual(t, fp, Fingerprint("org_a", RunFailure, []string{"agt_1", "TIMEOUT", "other"}))
	require.NotEqual(t, Fingerprint("org_a", RunFailure, []string{"ab", "c"}), Fingerprint("org_a", RunFailure, []string{"a", "bc"}), "key parts are separated")
}

func TestSeverityOrder(t *testing.T) {
	t.Parallel()
	require.Less(t, SeverityRank("low"), SeverityRank("medium"))
	require.Less(t, SeverityRank("high"), SeverityRank("critical"))
	require.Equal(t, -1, SeverityRank("catastrophic"))
}
