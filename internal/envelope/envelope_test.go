package envelope_test

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/internal/envelope"
)

func kek(t *testing.T) envelope.KEK {
	t.Helper()
	k, err := envelope.ParseKEK(envelope.GenerateKEK())
	require.NoError(t, err)
	return k
}

func TestSealOpenBindsAssociatedData(t *testing.T) {
	t.Parallel()
	dk, err := envelope.NewDataKey(envelope.GenerateDataKey())
	require.NoError(t, err)
	other, err := envelope.NewDataKey(envelope.GenerateDataKey())
	require.NoError(t, err)
	secret := []byte("whsec_c2VjcmV0")
	ad := envelope.AD("org_a", "chn_1", "secret")
	ct := dk.Seal(secret, ad)
	require.False(t, bytes.Contains(ct, secret), "no plaintext in the ciphertext")
	require.NotEqual(t, ct, dk.Seal(secret, ad), "a fresh nonce each time")
	pt, err := dk.Open(ct, ad)
	require.NoError(t, err)
	require.Equal(t, secret, pt)

	tampered := bytes.Clone(ct)
	tampered[len(tampered)-1] ^= 1
	for name, c := range map[string]struct {
		key envelope.DataKey
		ct  []byte
		ad  []byte
	}{
		"another organization": {dk, ct, envelope.AD("org_b", "chn_1", "secret")},
		"another channel":      {dk, ct, envelope.AD("org_a", "chn_2", "secret")},
		"another field":        {dk, ct, envelope.AD("org_a", "chn_1", "url")},
		"parts shifted":        {dk, ct, envelope.AD("org_a", "chn_1secret", "")},
		"another data key":     {other, ct, ad},
		"altered":              {dk, tampered, ad},
		"truncated":            {dk, ct[:10], ad},
		"empty":                {dk, nil, ad},
		"unknown version":      {dk, append([]byte{9}, ct[1:]...), ad},
	} {
		_, err := c.key.Open(c.ct, c.ad)
		require.ErrorIs(t, err, envelope.ErrDecrypt, name)
	}
}

func TestAssociatedDataIsUnambiguous(t *testing.T) {
	t.Parallel()
	require.NotEqual(t, envelope.AD("a|b", "c"), envelope.AD("a", "b|c"))
	require.NotEqual(t, envelope.AD("ab", ""), envelope.AD("a", "b"))
	require.NotEqual(t, envelope.AD("a"), envelope.AD("a", ""))
	require.Equal(t, envelope.AD("org", "chn"), envelope.AD("org", "chn"))
}

func TestWrapBindsTheOrganizationAndKEK(t *testing.T) {
	t.Parallel()
	k1, k2 := kek(t), kek(t)
	raw := envelope.GenerateDataKey()
	wrapped := k1.Wrap("org_a", raw)
	require.False(t, bytes.Contains(wrapped, raw))
	got, err := k1.Unwrap("org_a", wrapped)
	require.NoError(t, err)
	require.Equal(t, raw, got)
	_, err = k1.Unwrap("org_b", wrapped)
	require.ErrorIs(t, err, envelope.ErrDecrypt, "a data key copied to another organization")
	_, err = k2.Unwrap("org_a", wrapped)
	require.ErrorIs(t, err, envelope.ErrDecrypt, "another KEK")
}

// A keyring wraps with its primary KEK and unwraps with any it accepts; a key wrapped by
// one it does not hold says which it needs.
func TestKeyringDuringARotation(t *testing.T) {
	t.Parallel()
	oldK, newK := kek(t), kek(t)
	require.NotEqual(t, oldK.ID(), newK.ID())
	raw := envelope.GenerateDataKey()
	underOld := oldK.Wrap("org_a", raw)
	underNew := newK.Wrap("org_a", raw)

	before, err := envelope.NewKeyring(oldK)
	require.NoError(t, err)
	during, err := envelope.NewKeyring(newK, oldK)
	require.NoError(t, err)
	after, err := envelope.NewKeyring(newK)
	require.NoError(t, err)
	require.Equal(t, newK.ID(), during.Primary().ID())

	dk, err := during.Unwrap("org_a", oldK.ID(), underOld)
	require.NoError(t, err)
	sealed := dk.Seal([]byte("x"), nil)
	for _, w := range []struct {
		id string
		b  []byte
	}{{oldK.ID(), underOld}, {newK.ID(), underNew}} {
		dk, err := during.Unwrap("org_a", w.id, w.b)
		require.NoError(t, err)
		pt, err := dk.Open(sealed, nil)
		require.NoError(t, err, "the same data key, whichever KEK wrapped it")
		require.Equal(t, "x", string(pt))
	}
	_, err = before.Unwrap("org_a", newK.ID(), underNew)
	require.ErrorIs(t, err, envelope.ErrUnknownKEK)
	require.Contains(t, err.Error(), newK.ID())
	_, err = after.Unwrap("org_a", oldK.ID(), underOld)
	require.ErrorIs(t, err, envelope.ErrUnknownKEK)
	// A key id that lies about which KEK wrapped the key does not help.
	_, err = during.Unwrap("org_a", newK.ID(), underOld)
	require.ErrorIs(t, err, envelope.ErrDecrypt)

	_, err = envelope.NewKeyring(envelope.KEK{})
	require.Error(t, err)
}

func TestParseKEK(t *testing.T) {
	t.Parallel()
	raw := bytes.Repeat([]byte{0xfb}, 32) // base64 with + and / (or - and _)
	std := base64.StdEncoding.EncodeToString(raw)
	want, err := envelope.NewKEK(raw)
	require.NoError(t, err)
	for _, text := range []string{std, std + "\n", "  " + base64.RawStdEncoding.EncodeToString(raw), base64.URLEncoding.EncodeToString(raw),
		base64.RawURLEncoding.EncodeToString(raw)} {
		k, err := envelope.ParseKEK(text)
		require.NoError(t, err, text)
		require.Equal(t, want.ID(), k.ID(), "the id depends on the key only")
	}
	require.Regexp(t, `^kek_[0-9a-f]{16}$`, want.ID())
	require.False(t, strings.Contains(want.ID(), std[:8]))
	for _, bad := range []string{"", "short", base64.StdEncoding.EncodeToString(raw[:16]), base64.StdEncoding.EncodeToString(append(raw, 1)),
		strings.Repeat("ab", 32)} {
		_, err := envelope.ParseKEK(bad)
		require.Error(t, err, bad)
	}
	require.NotEqual(t, envelope.GenerateKEK(), envelope.GenerateKEK())
}
