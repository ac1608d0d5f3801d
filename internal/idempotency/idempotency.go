// Package idempotency makes mutating RPCs safe to retry. A client sends an
// Idempotency-Key header; the first request with that key runs and its response is kept;
// a retry with the same key and the same request gets that response again, without
// running twice; the same key with a different request is refused.
//
// A record belongs to the API key that made the request, not only to its organization:
// the same Idempotency-Key from another key of the organization is another request, and
// never sees this one's response.
//
// The record is claimed and completed inside the transaction of the change itself, so a
// change and its record commit together or not at all. Only an HMAC of the key (with a
// server pepper that is not in the database) is stored, and the response is sealed
// (AES-GCM) with a key derived from the pepper, the API key and the idempotency key: the
// stored response of CreateApiKey holds a secret, and the database alone can neither open
// it nor confirm a guessed Idempotency-Key.
package idempotency

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/governor-hq/governor/db/dbsqlc"
)

// Header is the request header that carries the key.
const Header = "Idempotency-Key"

// MaxKeyLength bounds the key a client may send.
const MaxKeyLength = 255

var (
	// ErrKeyReused: the key was used for a different request.
	ErrKeyReused = errors.New("this Idempotency-Key was already used with a different request")
	// ErrInProgress: a request with the key claimed it but left no response (it cannot
	// normally happen: claims and responses commit together).
	ErrInProgress = errors.New("a request with this Idempotency-Key has no recorded response")
)

// MinPepperLength is the shortest pepper a deployment should configure, in bytes.
const MinPepperLength = 32

// NewPepper returns a random pepper, for a single process that keeps no records across
// restarts worth replaying (tests); a deployment configures one shared by its API
// processes.
func NewPepper() []byte {
	b := make([]byte, MinPepperLength)
	_, _ = rand.Read(b)
	return b
}

// Store claims and completes records with the server's pepper.
type Store struct{ pepper []byte }

// New returns a store; pepper should be at least MinPepperLength bytes (the configuration
// checks it).
func New(pepper []byte) *Store { return &Store{pepper: append([]byte(nil), pepper...)} }

// Scope is whose a record is: the organization and the API key that sent the request.
type Scope struct {
	OrgID    string
	APIKeyID string
}

// derive is an HMAC with the pepper over a purpose, the API key and the idempotency key,
// each length-prefixed so no two different inputs encode alike.
func (s *Store) derive(purpose string, sc Scope, key string) []byte {
	m := hmac.New(sha256.New, s.pepper)
	for _, part := range []string{"governor/idempotency/" + purpose, sc.APIKeyID, key} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		m.Write(n[:])
		m.Write([]byte(part))
	}
	return m.Sum(nil)
}

// KeyHash is the stored form of a key sent by the scope's API key.
func (s *Store) KeyHash(sc Scope, key string) []byte { return s.derive("key", sc, key) }

// RequestHash identifies a request: its procedure and its deterministic encoding.
func RequestHash(procedure string, req proto.Message) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write([]byte(procedure))
	h.Write([]byte{0})
	h.Write(b)
	return h.Sum(nil), nil
}

func aead(k []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Seal encrypts a response so only the holder of the pepper and of the scope's
// idempotency key can read it.
func (s *Store) Seal(sc Scope, key string, plaintext []byte) ([]byte, error) {
	g, err := aead(s.derive("seal", sc, key))
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, g.NonceSize())
	_, _ = rand.Read(nonce)
	return g.Seal(nonce, nonce, plaintext, nil), nil
}

// Open decrypts what Seal made for the same scope and key.
func (s *Store) Open(sc Scope, key string, sealed []byte) ([]byte, error) {
	g, err := aead(s.derive("seal", sc, key))
	if err != nil {
		return nil, err
	}
	if len(sealed) < g.NonceSize() {
		return nil, errors.New("sealed response too short")
	}
	return g.Open(nil, sealed[:g.NonceSize()], sealed[g.NonceSize():], nil)
}

// Claim is the outcome of claiming a key.
type Claim struct {
	// Fresh is true when this transaction owns the key and must run the request, then
	// call Complete.
	Fresh bool
	// Response is the recorded response when Fresh is false.
	Response []byte
}

// ClaimKey claims key for the request within tx. A concurrent transaction claiming the
// same key (of the same API key) waits until this one ends.
func (s *Store) ClaimKey(ctx context.Context, tx dbsqlc.DBTX, sc Scope, key, procedure string, requestHash []byte, ttl time.Duration) (Claim, error) {
	q := dbsqlc.New()
	kh := s.KeyHash(sc, key)
	if err := q.IdempotencyDeleteExpired(ctx, tx, dbsqlc.IdempotencyDeleteExpiredParams{OrgID: sc.OrgID, KeyHash: kh}); err != nil {
		return Claim{}, err
	}
	n, err := q.IdempotencyClaim(ctx, tx, dbsqlc.IdempotencyClaimParams{
		OrgID: sc.OrgID, KeyHash: kh, Procedure: procedure, RequestHash: requestHash,
		ExpiresAt: time.Now().Add(ttl),
	})
	if err != nil {
		return Claim{}, err
	}
	if n == 1 {
		return Claim{Fresh: true}, nil
	}
	rec, err := q.IdempotencyGet(ctx, tx, dbsqlc.IdempotencyGetParams{OrgID: sc.OrgID, KeyHash: kh})
	if err != nil {
		return Claim{}, fmt.Errorf("read idempotency record: %w", err)
	}
	if rec.Procedure != procedure || !bytes.Equal(rec.RequestHash, requestHash) {
		return Claim{}, ErrKeyReused
	}
	if len(rec.Response) == 0 {
		return Claim{}, ErrInProgress
	}
	plain, err := s.Open(sc, key, rec.Response)
	if err != nil {
		return Claim{}, fmt.Errorf("open recorded response: %w", err)
	}
	return Claim{Response: plain}, nil
}

// Complete records the response of a fresh claim, in the same transaction.
func (s *Store) Complete(ctx context.Context, tx dbsqlc.DBTX, sc Scope, key string, response []byte) error {
	sealed, err := s.Seal(sc, key, response)
	if err != nil {
		return err
	}
	return dbsqlc.New().IdempotencyComplete(ctx, tx, dbsqlc.IdempotencyCompleteParams{
		OrgID: sc.OrgID, KeyHash: s.KeyHash(sc, key), Response: sealed,
	})
}
