package idempotency

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"
)

var (
	pepperA = []byte("pepper-a-0123456789abcdefghijklmnopqrstuvwxyz")
	pepperB = []byte("pepper-b-0123456789abcdefghijklmnopqrstuvwxyz")
	keyA    = Scope{OrgID: "org_1", APIKeyID: "key_a"}
	keyB    = Scope{OrgID: "org_1", APIKeyID: "key_b"}
)

// Only the same pepper, API key and idempotency key open a sealed response.
func TestSealOpen(t *testing.T) {
	t.Parallel()
	s := New(pepperA)
	sealed, err := s.Seal(keyA, "key-1", []byte("secret response"))
	require.NoError(t, err)
	require.NotContains(t, string(sealed), "secret response")
	plain, err := s.Open(keyA, "key-1", sealed)
	require.NoError(t, err)
	require.Equal(t, "secret response", string(plain))
	cases := []struct {
		name  string
		store *Store
		scope Scope
		key   string
	}{
		{"another idempotency key", s, keyA, "key-2"},
		{"another API key of the organization", s, keyB, "key-1"},
		{"another pepper", New(pepperB), keyA, "key-1"},
	}
	for _, c := range cases {
		_, err := c.store.Open(c.scope, c.key, sealed)
		require.Error(t, err, c.name)
	}
}

// The stored hash differs by API key and by pepper, so another key's record is another
// record, and the database alone cannot confirm a guessed key.
func TestKeyHashIsBoundToTheAPIKeyAndPepper(t *testing.T) {
	t.Parallel()
	a, b := New(pepperA), New(pepperB)
	require.Equal(t, a.KeyHash(keyA, "k"), a.KeyHash(keyA, "k"))
	require.NotEqual(t, a.KeyHash(keyA, "k"), a.KeyHash(keyA, "k2"))
	require.NotEqual(t, a.KeyHash(keyA, "k"), a.KeyHash(keyB, "k"), "another API key")
	require.NotEqual(t, a.KeyHash(keyA, "k"), b.KeyHash(keyA, "k"), "another pepper")
	require.NotEqual(t, a.KeyHash(Scope{APIKeyID: "key_a"}, "\x00k"), a.KeyHash(Scope{APIKeyID: "key_a\x00"}, "k"), "no ambiguity at the separator")
	require.Len(t, NewPepper(), MinPepperLength)
	require.NotEqual(t, NewPepper(), NewPepper())
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
}
