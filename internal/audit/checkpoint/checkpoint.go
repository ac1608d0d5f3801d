// Package checkpoint signs and checks checkpoints of the audit chains: an organization's
// chain head (sequence and hash) at a time, signed with an Ed25519 key kept out of the
// database. A checkpoint kept outside the database pins the chain: whoever rewrites every
// entry and recomputes every hash still cannot make the entry at that sequence hash to
// the signed value. Pure: no I/O; keys and files are read and written by the caller.
package checkpoint

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Format names the signed message and the file layout; a change to either is a new one.
const Format = "governor-audit-checkpoint/v1"

// publicKeyPrefix starts a public key's text form.
const publicKeyPrefix = "ed25519:"

// Checkpoint is one organization's signed chain head.
type Checkpoint struct {
	OrgID    string
	Seq      int64
	Hash     []byte // 32 bytes
	SignedAt time.Time
	// KeyID names the public key that verifies Signature (PublicKey.ID).
	KeyID     string
	Signature []byte
}

// Errors of Verify.
var (
	ErrOtherKey     = errors.New("the checkpoint was signed with another key")
	ErrBadSignature = errors.New("the checkpoint's signature does not verify")
)

// message is what is signed: every field but the signature, one per line, after the
// format's name. SignedAt counts in microseconds, what PostgreSQL keeps.
func message(orgID string, seq int64, hash []byte, signedAt time.Time, keyID string) []byte {
	return []byte(strings.Join([]string{Format, orgID, strconv.FormatInt(seq, 10), hex.EncodeToString(hash),
		strconv.FormatInt(signedAt.UnixMicro(), 10), keyID}, "\n"))
}

// Signer holds the private key.
type Signer struct {
	key ed25519.PrivateKey
	pub PublicKey
}

// NewPrivateKey returns a fresh private key in its text form (base64 of the 32-byte seed)
// from the given randomness (crypto/rand.Reader).
func NewPrivateKey(random io.Reader) (string, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(random, seed); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(seed), nil
}

// ParsePrivateKey reads a private key's text form: base64 (standard, padded) of a 32-byte
// Ed25519 seed; surrounding white space is ignored (a key file's newline).
func ParsePrivateKey(s string) (Signer, error) {
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return Signer{}, fmt.Errorf("audit signing key: not base64: %w", err)
	}
	if len(seed) != ed25519.SeedSize {
		return Signer{}, fmt.Errorf("audit signing key: %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	k := ed25519.NewKeyFromSeed(seed)
	return Signer{key: k, pub: PublicKey{key: k.Public().(ed25519.PublicKey)}}, nil
}

// Public returns the key that verifies this signer's checkpoints.
func (s Signer) Public() PublicKey { return s.pub }

// Sign makes the checkpoint of a chain head. at is kept to the microsecond.
func (s Signer) Sign(orgID string, seq int64, hash []byte, at time.Time) (Checkpoint, error) {
	if len(s.key) == 0 {
		return Checkpoint{}, errors.New("no audit signing key")
	}
	if orgID == "" || seq < 1 || len(hash) != sha256.Size {
		return Checkpoint{}, fmt.Errorf("checkpoint of %q at %d: need an organization, a sequence ≥ 1 and a 32-byte hash", orgID, seq)
	}
	at = time.UnixMicro(at.UnixMicro()).UTC()
	id := s.pub.ID()
	return Checkpoint{OrgID: orgID, Seq: seq, Hash: append([]byte(nil), hash...), SignedAt: at, KeyID: id,
		Signature: ed25519.Sign(s.key, message(orgID, seq, hash, at, id))}, nil
}

// PublicKey verifies checkpoints.
type PublicKey struct{ key ed25519.PublicKey }

// ParsePublicKey reads a public key's text form, "ed25519:" and base64 of 32 bytes.
func ParsePublicKey(s string) (PublicKey, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, publicKeyPrefix)
	if !ok {
		return PublicKey{}, fmt.Errorf("audit public key: want %s<base64>", publicKeyPrefix)
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return PublicKey{}, fmt.Errorf("audit public key: not base64: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return PublicKey{}, fmt.Errorf("audit public key: %d bytes, want %d", len(b), ed25519.PublicKeySize)
	}
	return PublicKey{key: ed25519.PublicKey(b)}, nil
}

// String is the text form ParsePublicKey reads.
func (p PublicKey) String() string {
	return publicKeyPrefix + base64.StdEncoding.EncodeToString(p.key)
}

// ID is a short name of the key: the first 8 bytes of its SHA-256, in hex.
func (p PublicKey) ID() string {
	sum := sha256.Sum256(p.key)
	return hex.EncodeToString(sum[:8])
}

// Verify checks that c was signed by this key and not changed since.
func (p PublicKey) Verify(c Checkpoint) error {
	if len(p.key) != ed25519.PublicKeySize {
		return errors.New("no audit public key")
	}
	if c.KeyID != p.ID() {
		return fmt.Errorf("%w (%s, not %s)", ErrOtherKey, c.KeyID, p.ID())
	}
	if len(c.Hash) != sha256.Size || !ed25519.Verify(p.key, message(c.OrgID, c.Seq, c.Hash, c.SignedAt, c.KeyID), c.Signature) {
		return ErrBadSignature
	}
	return nil
}

// The file form: JSON, hashes in hex, signatures in base64.
type fileJSON struct {
	Format      string           `json:"format"`
	Checkpoints []checkpointJSON `json:"checkpoints"`
}

type checkpointJSON struct {
	OrgID     string    `json:"org_id"`
	Seq       int64     `json:"seq"`
	Hash      string    `json:"hash"`
	SignedAt  time.Time `json:"signed_at"`
	KeyID     string    `json:"key_id"`
	Signature string    `json:"signature"`
}

// Marshal renders checkpoints as a checkpoint file.
func Marshal(cps []Checkpoint) ([]byte, error) {
	f := fileJSON{Format: Format, Checkpoints: make([]checkpointJSON, len(cps))}
	for i, c := range cps {
		f.Checkpoints[i] = checkpointJSON{OrgID: c.OrgID, Seq: c.Seq, Hash: hex.EncodeToString(c.Hash), SignedAt: c.SignedAt.UTC(),
			KeyID: c.KeyID, Signature: base64.StdEncoding.EncodeToString(c.Signature)}
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Unmarshal reads a checkpoint file. It checks the form only; Verify checks signatures.
func Unmarshal(b []byte) ([]Checkpoint, error) {
	var f fileJSON
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("checkpoint file: %w", err)
	}
	if f.Format != Format {
		return nil, fmt.Errorf("checkpoint file: format %q, want %q", f.Format, Format)
	}
	out := make([]Checkpoint, len(f.Checkpoints))
	for i, c := range f.Checkpoints {
		h, err := hex.DecodeString(c.Hash)
		if err != nil || len(h) != sha256.Size {
			return nil, fmt.Errorf("checkpoint file: checkpoint %d (%s): hash is not 64 hex digits", i+1, c.OrgID)
		}
		sig, err := base64.StdEncoding.DecodeString(c.Signature)
		if err != nil || len(sig) != ed25519.SignatureSize {
			return nil, fmt.Errorf("checkpoint file: checkpoint %d (%s): signature is not base64 of %d bytes", i+1, c.OrgID, ed25519.SignatureSize)
		}
		if c.OrgID == "" || c.Seq < 1 {
			return nil, fmt.Errorf("checkpoint file: checkpoint %d: needs an org_id and a seq ≥ 1", i+1)
		}
		out[i] = Checkpoint{OrgID: c.OrgID, Seq: c.Seq, Hash: h, SignedAt: c.SignedAt, KeyID: c.KeyID, Signature: sig}
	}
	return out, nil
}
