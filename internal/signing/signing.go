// Package signing lets one Governor process vouch for a message that travels through a
// channel others can write to (a Temporal signal), and another process check it: an
// HMAC-SHA256 over a canonical encoding of the message's fields, with a server key that
// is configured on both sides and never stored in the database or in Temporal.
//
// It is pure: no clock, no randomness, no I/O. Callers pass the time and the keys.
package signing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// MinKeyLength is the shortest key accepted, in bytes (256 bits, the HMAC-SHA256 block of
// security; `openssl rand -base64 32` prints 44 characters).
const MinKeyLength = 32

// Why a signature was not accepted.
var (
	ErrNoKey        = errors.New("no signing key is configured")
	ErrUnsigned     = errors.New("not signed")
	ErrMalformed    = errors.New("malformed signature")
	ErrUnknownKey   = errors.New("signed with a key this server does not have")
	ErrBadSignature = errors.New("signature does not match")
	ErrStale        = errors.New("signature is too old")
	ErrFuture       = errors.New("signature is dated in the future")
)

// version prefixes every signature, so the encoding can change without ambiguity.
const version = "v1"

type key struct {
	id     string
	secret []byte
}

// Keyring is the keys of a deployment: the first signs, every one verifies (so a key can
// be rotated: add the new one first, keep the old one until what it signed is stale).
type Keyring struct{ keys []key }

// NewKeyring builds a keyring; each secret must be at least MinKeyLength bytes.
func NewKeyring(secrets ...[]byte) (Keyring, error) {
	var k Keyring
	for i, s := range secrets {
		if len(s) < MinKeyLength {
			return Keyring{}, fmt.Errorf("signing key %d is %d bytes; at least %d are needed", i+1, len(s), MinKeyLength)
		}
		k.keys = append(k.keys, key{id: keyID(s), secret: append([]byte(nil), s...)})
	}
	return k, nil
}

// ParseKeyring reads keys written as text, separated by commas or whitespace (newlines in a
// key file); the first one signs. Empty text is an empty keyring.
func ParseKeyring(text string) (Keyring, error) {
	fields := strings.FieldsFunc(text, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	secrets := make([][]byte, 0, len(fields))
	for _, f := range fields {
		secrets = append(secrets, []byte(f))
	}
	return NewKeyring(secrets...)
}

// Empty reports whether the keyring has no key (nothing can be signed or verified).
func (k Keyring) Empty() bool { return len(k.keys) == 0 }

// keyID names a key in signatures without revealing anything useful about it.
func keyID(secret []byte) string {
	sum := sha256.Sum256(append([]byte("governor/signing/key-id\x00"), secret...))
	return hex.EncodeToString(sum[:4])
}

// Message is what is signed: a purpose (domain separation: a signature for one kind of
// message is never valid for another), the time it was issued, and its fields in a fixed
// order.
type Message struct {
	Purpose  string
	IssuedAt time.Time
	Fields   []string
}

// mac computes the HMAC of the canonical encoding: every part length-prefixed, so no two
// different messages encode alike ("ab","c" is not "a","bc").
func (m Message) mac(secret []byte) []byte {
	h := hmac.New(sha256.New, secret)
	write := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	write(version)
	write(m.Purpose)
	write(strconv.FormatInt(m.IssuedAt.UnixMicro(), 10))
	write(strconv.Itoa(len(m.Fields)))
	for _, f := range m.Fields {
		write(f)
	}
	return h.Sum(nil)
}

// Sign returns the signature of m with the keyring's first key: "v1.<key id>.<mac>".
func (k Keyring) Sign(m Message) (string, error) {
	if k.Empty() {
		return "", ErrNoKey
	}
	first := k.keys[0]
	return version + "." + first.id + "." + base64.RawURLEncoding.EncodeToString(m.mac(first.secret)), nil
}

// Window bounds how old (and how far in the future, for clock skew between processes) a
// signature may be when it is checked.
type Window struct {
	MaxAge  time.Duration
	MaxSkew time.Duration
}

// Verify checks that sig is a signature of m by one of the keyring's keys, issued within
// w of now. The comparison is constant-time.
func (k Keyring) Verify(m Message, sig string, now time.Time, w Window) error {
	if k.Empty() {
		return ErrNoKey
	}
	if sig == "" {
		return ErrUnsigned
	}
	parts := strings.Split(sig, ".")
	if len(parts) != 3 || parts[0] != version {
		return ErrMalformed
	}
	got, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(got) != sha256.Size {
		return ErrMalformed
	}
	var secret []byte
	for _, kk := range k.keys {
		if kk.id == parts[1] {
			secret = kk.secret
			break
		}
	}
	if secret == nil {
		return ErrUnknownKey
	}
	if !hmac.Equal(got, m.mac(secret)) {
		return ErrBadSignature
	}
	// The time is checked after the MAC: an unauthenticated time says nothing.
	if m.IssuedAt.IsZero() || now.Sub(m.IssuedAt) > w.MaxAge {
		return ErrStale
	}
	if m.IssuedAt.Sub(now) > w.MaxSkew {
		return ErrFuture
	}
	return nil
}
