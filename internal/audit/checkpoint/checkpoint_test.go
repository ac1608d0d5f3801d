package checkpoint

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func signer(t *testing.T) Signer {
	t.Helper()
	k, err := NewPrivateKey(rand.Reader)
	require.NoError(t, err)
	s, err := ParsePrivateKey(k + "\n")
	require.NoError(t, err)
	return s
}

func TestSignAndVerify(t *testing.T) {
	t.Parallel()
	s, other := signer(t), signer(t)
	head := sha256.Sum256([]byte("head"))
	at := time.Date(2026, 3, 4, 5, 6, 7, 891234567, time.FixedZone("x", 3600))
	good, err := s.Sign("org_1", 17, head[:], at)
	require.NoError(t, err)
	require.Equal(t, s.Public().ID(), good.KeyID)
	require.Equal(t, at.Truncate(time.Microsecond).UTC(), good.SignedAt, "kept to the microsecond, as PostgreSQL keeps it")
	foreign, err := other.Sign("org_1", 17, head[:], at)
	require.NoError(t, err)

	edit := func(f func(c *Checkpoint)) Checkpoint {
		c := good
		c.Hash = bytes.Clone(good.Hash)
		c.Signature = bytes.Clone(good.Signature)
		f(&c)
		return c
	}
	cases := []struct {
		name string
		c    Checkpoint
		want error
	}{
		{"as signed", good, nil},
		{"signed with another key", foreign, ErrOtherKey},
		{"another key claiming to be ours", edit(func(c *Checkpoint) { c.Signature = foreign.Signature }), ErrBadSignature},
		{"another organization", edit(func(c *Checkpoint) { c.OrgID = "org_2" }), ErrBadSignature},
		{"another sequence", edit(func(c *Checkpoint) { c.Seq = 16 }), ErrBadSignature},
		{"another hash", edit(func(c *Checkpoint) { c.Hash[0] ^= 1 }), ErrBadSignature},
		{"short hash", edit(func(c *Checkpoint) { c.Hash = c.Hash[:31] }), ErrBadSignature},
		{"another time", edit(func(c *Checkpoint) { c.SignedAt = c.SignedAt.Add(time.Microsecond) }), ErrBadSignature},
		{"altered signature", edit(func(c *Checkpoint) { c.Signature[10] ^= 0x80 }), ErrBadSignature},
		{"key id relabelled", edit(func(c *Checkpoint) { c.KeyID = other.Public().ID() }), ErrOtherKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Public().Verify(tc.c)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.True(t, errors.Is(err, tc.want), "got %v, want %v", err, tc.want)
		})
	}
}

func TestSignRefusesWhatCannotBeAHead(t *testing.T) {
	t.Parallel()
	s := signer(t)
	h := sha256.Sum256(nil)
	for name, f := range map[string]func() (Checkpoint, error){
		"no organization": func() (Checkpoint, error) { return s.Sign("", 1, h[:], time.Now()) },
		"sequence 0":      func() (Checkpoint, error) { return s.Sign("org", 0, h[:], time.Now()) },
		"short hash":      func() (Checkpoint, error) { return s.Sign("org", 1, h[:16], time.Now()) },
		"no key":          func() (Checkpoint, error) { return Signer{}.Sign("org", 1, h[:], time.Now()) },
	} {
		_, err := f()
		require.Error(t, err, name)
	}
}

func TestKeysTextForms(t *testing.T) {
	t.Parallel()
	s := signer(t)
	pub, err := ParsePublicKey(" " + s.Public().String() + "\n")
	require.NoError(t, err)
	require.Equal(t, s.Public().ID(), pub.ID())
	require.Len(t, pub.ID(), 16)

	for _, bad := range []string{"", "not base64!", "AAAA", strings.Repeat("A", 44) + "AAAA"} {
		_, err := ParsePrivateKey(bad)
		require.Error(t, err, "private key %q", bad)
	}
	for _, bad := range []string{"", s.Public().String()[len("ed25519:"):], "ed25519:AAAA", "rsa:" + s.Public().String()[8:], "ed25519:@@"} {
		_, err := ParsePublicKey(bad)
		require.Error(t, err, "public key %q", bad)
	}
	require.Error(t, PublicKey{}.Verify(Checkpoint{}))
}

func TestFileRoundTrip(t *testing.T) {
	t.Parallel()
	s := signer(t)
	h1, h2 := sha256.Sum256([]byte("1")), sha256.Sum256([]byte("2"))
	a, err := s.Sign("org_a", 3, h1[:], time.Now())
	require.NoError(t, err)
	b, err := s.Sign("org_b", 900, h2[:], time.Now())
	require.NoError(t, err)
	file, err := Marshal([]Checkpoint{a, b})
	require.NoError(t, err)
	got, err := Unmarshal(file)
	require.NoError(t, err)
	require.Len(t, got, 2)
	for i, c := range got {
		require.NoError(t, s.Public().Verify(c), "checkpoint %d verifies after the round trip", i)
	}
	require.Equal(t, a.OrgID, got[0].OrgID)
	require.Equal(t, b.Seq, got[1].Seq)

	bad := map[string]string{
		"not json":       "{",
		"other format":   `{"format":"v0","checkpoints":[]}`,
		"bad hash":       strings.Replace(string(file), got[0].hashHex(), "zz", 1),
		"bad signature":  `{"format":"` + Format + `","checkpoints":[{"org_id":"o","seq":1,"hash":"` + got[0].hashHex() + `","signature":"AAAA"}]}`,
		"no seq":         `{"format":"` + Format + `","checkpoints":[{"org_id":"o","seq":0,"hash":"` + got[0].hashHex() + `","signature":"` + got[0].sigB64() + `"}]}`,
		"no org":         `{"format":"` + Format + `","checkpoints":[{"org_id":"","seq":1,"hash":"` + got[0].hashHex() + `","signature":"` + got[0].sigB64() + `"}]}`,
		"signature text": strings.Replace(string(file), got[0].sigB64(), "!!", 1),
	}
	for name, f := range bad {
		_, err := Unmarshal([]byte(f))
		require.Error(t, err, name)
	}
}

func (c Checkpoint) hashHex() string { return hexOf(c.Hash) }
func (c Checkpoint) sigB64() string  { return b64Of(c.Signature) }
