package idempotency

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestSealOpen(t *testing.T) {
	t.Parallel()
	sealed, err := Seal("key-1", []byte("secret response"))
	require.NoError(t, err)
	require.NotContains(t, string(sealed), "secret response")
	plain, err := Open("key-1", sealed)
	require.NoError(t, err)
	require.Equal(t, "secret response", string(plain))
	_, err = Open("key-2", sealed)
	require.Error(t, err, "another key must not open it")
}

func TestRequestHash(t *testing.T) {
	t.Parallel()
	a, _ := structpb.NewStruct(map[string]any{"x": 1, "y": "z"})
	b, _ := structpb.NewStruct(map[string]any{"y": "z", "x": 1})
	c, _ := structpb.NewStruct(map[string]any{"x": 2, "y": "z"})
	ha, err := RequestHash("/p", a)
	require.NoError(t, err)
	hb, _ := RequestHash("/p", b)
	hc, _ := RequestHash("/p", c)
	hd, _ := RequestHash("/q", a)
	require.Equal(t, ha, hb, "deterministic regardless of map order")
	require.NotEqual(t, ha, hc)
	require.NotEqual(t, ha, hd, "the procedure is part of the request")
	require.Equal(t, KeyHash("k"), KeyHash("k"))
	require.NotEqual(t, KeyHash("k"), KeyHash("k2"))
}
