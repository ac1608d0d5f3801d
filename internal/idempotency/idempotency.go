// Package idempotency makes mutating RPCs safe to retry. A client sends an
// Idempotency-Key header; the first request with that key runs and its response is kept;
// a retry with the same key and the same request gets that response again, without
// running twice; the same key with a different request is refused.
//
// The record is claimed and completed inside the transaction of the change itself, so a
// change and its record commit together or not at all. Only a hash of the key is stored,
// and the response is sealed (AES-GCM) with a key derived from the idempotency key: the
// stored response of CreateApiKey holds a secret, and the database alone cannot open it.
package idempotency

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
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

// KeyHash is the stored form of a key.
func KeyHash(key string) []byte {
	sum := sha256.Sum256([]byte("governor/idempotency/key\x00" + key))
	return sum[:]
}

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

func aead(key string) (cipher.AEAD, error) {
	k := sha256.Sum256([]byte("governor/idempotency/seal\x00" + key))
	block, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Seal encrypts a response so only the holder of key can read it.
func Seal(key string, plaintext []byte) ([]byte, error) {
	g, err := aead(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, g.NonceSize())
	_, _ = rand.Read(nonce)
	return g.Seal(nonce, nonce, plaintext, nil), nil
}

// Open decrypts what Seal made with the same key.
func Open(key string, sealed []byte) ([]byte, error) {
	g, err := aead(key)
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
// same key waits until this one ends.
func ClaimKey(ctx context.Context, tx dbsqlc.DBTX, orgID, key, procedure string, requestHash []byte, ttl time.Duration) (Claim, error) {
	q := dbsqlc.New()
	kh := KeyHash(key)
	if err := q.IdempotencyDeleteExpired(ctx, tx, dbsqlc.IdempotencyDeleteExpiredParams{OrgID: orgID, KeyHash: kh}); err != nil {
		return Claim{}, err
	}
	n, err := q.IdempotencyClaim(ctx, tx, dbsqlc.IdempotencyClaimParams{
		OrgID: orgID, KeyHash: kh, Procedure: procedure, RequestHash: requestHash,
		ExpiresAt: time.Now().Add(ttl),
	})
	if err != nil {
		return Claim{}, err
	}
	if n == 1 {
		return Claim{Fresh: true}, nil
	}
	rec, err := q.IdempotencyGet(ctx, tx, dbsqlc.IdempotencyGetParams{OrgID: orgID, KeyHash: kh})
	if err != nil {
		return Claim{}, fmt.Errorf("read idempotency record: %w", err)
	}
	if rec.Procedure != procedure || !bytes.Equal(rec.RequestHash, requestHash) {
		return Claim{}, ErrKeyReused
	}
	if len(rec.Response) == 0 {
		return Claim{}, ErrInProgress
	}
	plain, err := Open(key, rec.Response)
	if err != nil {
		return Claim{}, fmt.Errorf("open recorded response: %w", err)
	}
	return Claim{Response: plain}, nil
}

// Complete records the response of a fresh claim, in the same transaction.
func Complete(ctx context.Context, tx dbsqlc.DBTX, orgID, key string, response []byte) error {
	sealed, err := Seal(key, response)
	if err != nil {
		return err
	}
	return dbsqlc.New().IdempotencyComplete(ctx, tx, dbsqlc.IdempotencyCompleteParams{
		OrgID: orgID, KeyHash: KeyHash(key), Response: sealed,
	})
}
