package signing

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var (
	keyA = []byte("key-a-0123456789abcdefghijklmnopqrstuvwxyz")
	keyB = []byte("key-b-0123456789abcdefghijklmnopqrstuvwxyz")
	t0   = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	win  = Window{MaxAge: 7 * 24 * time.Hour, MaxSkew: 5 * time.Minute}
)

func msg() Message {
	return Message{Purpose: "test/decision", IssuedAt: t0, Fields: []string{"org_1", "inc_1", "prp_1", "approve", "usr_1"}}
}

func ring(t *testing.T, secrets ...[]byte) Keyring {
	t.Helper()
	k, err := NewKeyring(secrets...)
	require.NoError(t, err)
	return k
}

func TestSignedMessagesVerify(t *testing.T) {
	t.Parallel()
	k := ring(t, keyA)
	sig, err := k.Sign(msg())
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(sig, "v1."), sig)
	require.NoError(t, k.Verify(msg(), sig, t0.Add(time.Hour), win))
	again, err := k.Sign(msg())
	require.NoError(t, err)
	require.Equal(t, sig, again, "signing is deterministic")
}

// Any change to what was signed, or to the signature, or the wrong key, is refused.
func TestVerifyRefuses(t *testing.T) {
	t.Parallel()
	k := ring(t, keyA)
	sig, err := k.Sign(msg())
	require.NoError(t, err)
	other := ring(t, keyB)
	otherSig, err := other.Sign(msg())
	require.NoError(t, err)
	cases := []struct {
		name string
		ring Keyring
		m    func(*Message)
		sig  string
		now  time.Time
		want error
	}{
		{name: "another field value", ring: k, m: func(m *Message) { m.Fields[2] = "prp_2" }, sig: sig, want: ErrBadSignature},
		{name: "another decision", ring: k, m: func(m *Message) { m.Fields[3] = "reject" }, sig: sig, want: ErrBadSignature},
		{name: "a field dropped", ring: k, m: func(m *Message) { m.Fields = m.Fields[:4] }, sig: sig, want: ErrBadSignature},
		{name: "a field added", ring: k, m: func(m *Message) { m.Fields = append(m.Fields, "") }, sig: sig, want: ErrBadSignature},
		{name: "fields re-split", ring: k, m: func(m *Message) { m.Fields[0], m.Fields[1] = "org_1inc", "_1" }, sig: sig, want: ErrBadSignature},
		{name: "another purpose", ring: k, m: func(m *Message) { m.Purpose = "test/other" }, sig: sig, want: ErrBadSignature},
		{name: "another issue time", ring: k, m: func(m *Message) { m.IssuedAt = m.IssuedAt.Add(time.Microsecond) }, sig: sig, want: ErrBadSignature},
		{name: "signed with an unknown key", ring: k, sig: otherSig, want: ErrUnknownKey},
		{name: "unknown key id forged onto our mac", ring: k, sig: "v1.00000000." + strings.Split(sig, ".")[2], want: ErrUnknownKey},
		{name: "our key id on another key's mac", ring: k, sig: strings.Join([]string{"v1", strings.Split(sig, ".")[1], strings.Split(otherSig, ".")[2]}, "."), want: ErrBadSignature},
		{name: "unsigned", ring: k, sig: "", want: ErrUnsigned},
		{name: "garbage", ring: k, sig: "let-me-in", want: ErrMalformed},
		{name: "other version", ring: k, sig: "v2" + sig[2:], want: ErrMalformed},
		{name: "truncated mac", ring: k, sig: sig[:len(sig)-4], want: ErrMalformed},
		{name: "not base64", ring: k, sig: sig[:len(sig)-1] + "*", want: ErrMalformed},
		{name: "too old", ring: k, sig: sig, now: t0.Add(7*24*time.Hour + time.Second), want: ErrStale},
		{name: "from the future", ring: k, sig: sig, now: t0.Add(-6 * time.Minute), want: ErrFuture},
		{name: "no key configured", ring: Keyring{}, sig: sig, want: ErrNoKey},
	}
	for _, c := range cases {
		m := msg()
		m.Fields = append([]string(nil), m.Fields...)
		if c.m != nil {
			c.m(&m)
		}
		now := c.now
		if now.IsZero() {
			now = t0.Add(time.Minute)
		}
		require.ErrorIs(t, c.ring.Verify(m, c.sig, now, win), c.want, c.name)
	}
}

func TestWindowEdges(t *testing.T) {
	t.Parallel()
	k := ring(t, keyA)
	sig, err := k.Sign(msg())
	require.NoError(t, err)
	require.NoError(t, k.Verify(msg(), sig, t0.Add(7*24*time.Hour), win), "exactly the maximum age")
	require.NoError(t, k.Verify(msg(), sig, t0.Add(-5*time.Minute), win), "exactly the allowed skew")
	zero := msg()
	zero.IssuedAt = time.Time{}
	zsig, err := k.Sign(zero)
	require.NoError(t, err)
	require.ErrorIs(t, k.Verify(zero, zsig, t0, win), ErrStale, "a message without an issue time is never fresh")
}

// A rotated keyring signs with its first key and still verifies what the old one signed.
func TestRotation(t *testing.T) {
	t.Parallel()
	old := ring(t, keyA)
	oldSig, err := old.Sign(msg())
	require.NoError(t, err)
	rotated, err := ParseKeyring(string(keyB) + ",\n" + string(keyA) + "\n")
	require.NoError(t, err)
	require.NoError(t, rotated.Verify(msg(), oldSig, t0, win))
	newSig, err := rotated.Sign(msg())
	require.NoError(t, err)
	require.NotEqual(t, oldSig, newSig)
	require.ErrorIs(t, old.Verify(msg(), newSig, t0, win), ErrUnknownKey, "the old keyring does not know the new key")
	bOnly := ring(t, keyB)
	require.NoError(t, bOnly.Verify(msg(), newSig, t0, win))
}

func TestKeyringParsing(t *testing.T) {
	t.Parallel()
	cases := []struct {
		text    string
		keys    int
		wantErr string
	}{
		{text: "", keys: 0},
		{text: "  \n ", keys: 0},
		{text: string(keyA), keys: 1},
		{text: string(keyA) + " " + string(keyB), keys: 2},
		{text: "short", wantErr: "at least 32"},
		{text: string(keyA) + ",short", wantErr: "signing key 2"},
	}
	for _, c := range cases {
		k, err := ParseKeyring(c.text)
		if c.wantErr != "" {
			require.ErrorContains(t, err, c.wantErr, c.text)
			continue
		}
		require.NoError(t, err, c.text)
		require.Len(t, k.keys, c.keys, c.text)
		require.Equal(t, c.keys == 0, k.Empty())
	}
	_, err := Keyring{}.Sign(msg())
	require.ErrorIs(t, err, ErrNoKey)
}

// The keyring copies its secrets: changing the caller's slice later changes nothing.
func TestKeyringCopiesSecrets(t *testing.T) {
	t.Parallel()
	secret := append([]byte(nil), keyA...)
	k := ring(t, secret)
	sig, err := k.Sign(msg())
	require.NoError(t, err)
	secret[0] ^= 0xff
	require.NoError(t, k.Verify(msg(), sig, t0, win))
}
