// Package envelope is envelope encryption for secrets at rest: each organization has a
// data key (AES-256-GCM) that seals its secrets, and data keys are stored only wrapped
// (sealed) by a key-encryption key (KEK) that never enters the database: it comes from
// the environment or a key file.
//
// Every ciphertext is bound to where it belongs through associated data (for a channel
// secret: organization, channel and field), so a ciphertext copied to another row, another
// organization or another field does not decrypt. A wrapped data key is bound to its
// organization the same way.
//
// KEK rotation re-wraps data keys and leaves every ciphertext alone. A wrapped key is
// stored with the id of the KEK that wrapped it; a Keyring holds the KEK that wraps new
// keys and any others still accepted for unwrapping during a rotation.
package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the size of every key: AES-256.
const KeySize = 32

// version starts every ciphertext, so the format can change later.
const version byte = 1

var (
	// ErrDecrypt: the ciphertext was altered, belongs elsewhere (other associated data) or
	// was sealed with another key.
	ErrDecrypt = errors.New("envelope: cannot decrypt (wrong key, altered, or moved from where it was sealed)")
	// ErrUnknownKEK: a data key was wrapped by a KEK this keyring does not hold.
	ErrUnknownKEK = errors.New("envelope: data key wrapped by an unknown key-encryption key")
)

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("envelope: a key is %d bytes, not %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal returns version ‖ nonce ‖ ciphertext+tag. Nonces are random: a data key seals a
// handful of fields per channel, far below GCM's random-nonce bound.
func seal(aead cipher.AEAD, plaintext, ad []byte) []byte {
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out[0] = version
	if _, err := rand.Read(out[1:]); err != nil {
		panic("envelope: no randomness: " + err.Error())
	}
	return aead.Seal(out, out[1:], plaintext, ad)
}

func open(aead cipher.AEAD, ciphertext, ad []byte) ([]byte, error) {
	n := aead.NonceSize()
	if len(ciphertext) < 1+n+aead.Overhead() || ciphertext[0] != version {
		return nil, ErrDecrypt
	}
	pt, err := aead.Open(nil, ciphertext[1:1+n], ciphertext[1+n:], ad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// AD builds associated data from parts, each length-prefixed so that no two different
// lists give the same bytes ("a|b","c" is not "a","b|c").
func AD(parts ...string) []byte {
	var out []byte
	for _, p := range parts {
		out = binary.AppendUvarint(out, uint64(len(p)))
		out = append(out, p...)
	}
	return out
}

// KEK is a key-encryption key.
type KEK struct {
	id   string
	aead cipher.AEAD
}

// NewKEK makes a KEK of 32 raw bytes.
func NewKEK(raw []byte) (KEK, error) {
	aead, err := newAEAD(raw)
	if err != nil {
		return KEK{}, err
	}
	// The id names the key without revealing it (a truncated hash under a fixed label), so
	// the same key always has the same id, on every process.
	h := sha256.Sum256(append([]byte("governor key-encryption key id\x00"), raw...))
	return KEK{id: "kek_" + hex.EncodeToString(h[:8]), aead: aead}, nil
}

// ParseKEK reads a KEK written as base64 (standard or URL alphabet, padded or not) of 32
// bytes, as GOVERNOR_KEK or a key file holds it. Surrounding whitespace is ignored.
func ParseKEK(text string) (KEK, error) {
	s := strings.TrimSpace(text)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err := enc.DecodeString(s); err == nil {
			if len(raw) != KeySize {
				return KEK{}, fmt.Errorf("a key-encryption key is %d bytes (base64), this one is %d", KeySize, len(raw))
			}
			return NewKEK(raw)
		}
	}
	return KEK{}, errors.New("a key-encryption key is base64 of 32 random bytes (e.g. `openssl rand -base64 32`)")
}

// GenerateKEK returns a new random KEK in the text form ParseKEK reads.
func GenerateKEK() string {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		panic("envelope: no randomness: " + err.Error())
	}
	return base64.StdEncoding.EncodeToString(b)
}

// ID names the key, as stored beside what it wrapped.
func (k KEK) ID() string { return k.id }

// IsZero reports whether k is the zero KEK (none).
func (k KEK) IsZero() bool { return k.aead == nil }

func dataKeyAD(orgID string) []byte { return AD("governor data key v1", orgID) }

// Wrap seals an organization's raw data key.
func (k KEK) Wrap(orgID string, dataKey []byte) []byte {
	return seal(k.aead, dataKey, dataKeyAD(orgID))
}

// Unwrap opens an organization's wrapped data key.
func (k KEK) Unwrap(orgID string, wrapped []byte) ([]byte, error) {
	raw, err := open(k.aead, wrapped, dataKeyAD(orgID))
	if err != nil {
		return nil, err
	}
	if len(raw) != KeySize {
		return nil, ErrDecrypt
	}
	return raw, nil
}

// Keyring is the KEK that wraps new data keys, and the others accepted for unwrapping
// while a rotation is under way.
type Keyring struct {
	primary KEK
	byID    map[string]KEK
}

// NewKeyring makes a keyring; accepted KEKs only unwrap.
func NewKeyring(primary KEK, accepted ...KEK) (*Keyring, error) {
	if primary.IsZero() {
		return nil, errors.New("envelope: a keyring needs a key-encryption key")
	}
	r := &Keyring{primary: primary, byID: map[string]KEK{primary.id: primary}}
	for _, k := range accepted {
		if k.IsZero() {
			return nil, errors.New("envelope: an accepted key-encryption key is missing")
		}
		r.byID[k.id] = k
	}
	return r, nil
}

// Primary is the KEK new data keys are wrapped with.
func (r *Keyring) Primary() KEK { return r.primary }

// KEK returns the keyring's KEK of that id.
func (r *Keyring) KEK(id string) (KEK, bool) {
	k, ok := r.byID[id]
	return k, ok
}

// Unwrap opens a data key wrapped by the KEK of id kekID.
func (r *Keyring) Unwrap(orgID, kekID string, wrapped []byte) (DataKey, error) {
	k, ok := r.byID[kekID]
	if !ok {
		return DataKey{}, fmt.Errorf("%w (%s; this process has %s)", ErrUnknownKEK, kekID, strings.Join(r.ids(), ", "))
	}
	raw, err := k.Unwrap(orgID, wrapped)
	if err != nil {
		return DataKey{}, err
	}
	return NewDataKey(raw)
}

func (r *Keyring) ids() []string {
	out := []string{r.primary.id}
	for id := range r.byID {
		if id != r.primary.id {
			out = append(out, id)
		}
	}
	return out
}

// DataKey seals and opens one organization's secrets.
type DataKey struct{ aead cipher.AEAD }

// GenerateDataKey returns 32 random bytes for a new data key.
func GenerateDataKey() []byte {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		panic("envelope: no randomness: " + err.Error())
	}
	return b
}

// NewDataKey makes a data key of 32 raw bytes.
func NewDataKey(raw []byte) (DataKey, error) {
	aead, err := newAEAD(raw)
	return DataKey{aead: aead}, err
}

// Seal encrypts plaintext bound to ad.
func (d DataKey) Seal(plaintext, ad []byte) []byte { return seal(d.aead, plaintext, ad) }

// Open decrypts what Seal made with the same ad.
func (d DataKey) Open(ciphertext, ad []byte) ([]byte, error) { return open(d.aead, ciphertext, ad) }
