package apikeys

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNewSecret(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 200 {
		s := New()
		require.True(t, LooksValid(s.Plaintext), s.Plaintext)
		require.True(t, strings.HasPrefix(s.Plaintext, s.Prefix+"_"))
		require.Len(t, s.Prefix, 12)
		require.Equal(t, Hash(s.Plaintext), s.Hash)
		require.False(t, seen[s.Plaintext])
		seen[s.Plaintext] = true
	}
}

func TestLooksValidRefusesGarbage(t *testing.T) {
	t.Parallel()
	good := New().Plaintext
	for _, bad := range []string{
		"", "Bearer " + good, good + "x", good[:len(good)-1],
		"xyz_" + good[4:], strings.Replace(good, "_", "-", 2),
		good[:20] + "!" + good[21:],
	} {
		require.False(t, LooksValid(bad), bad)
	}
}
