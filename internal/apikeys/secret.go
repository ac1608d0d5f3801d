// Package apikeys makes and recognises API key secrets.
//
// A secret looks like "gvk_3f9a2c1d_<32 characters>". The first 12 characters are the
// key's visible prefix, enough to recognise it in a list. Only the SHA-256 hash of the
// whole secret is stored: with 190 bits of randomness a fast hash is safe, and lookups by
// hash need no per-key salt.
package apikeys

import (
	"crypto/rand"
	"crypto/sha256"
	"strings"
)

const (
	scheme      = "gvk_"
	prefixChars = 8
	secretChars = 32
	alphabet    = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)

// Secret is a newly made API key secret.
type Secret struct {
	Plaintext string // shown to the user once, never stored
	Prefix    string // stored and shown: "gvk_" + 8 characters
	Hash      []byte // stored: SHA-256 of Plaintext
}

// New makes a random secret.
func New() Secret {
	visible := randomString(prefixChars)
	plain := scheme + visible + "_" + randomString(secretChars)
	return Secret{Plaintext: plain, Prefix: scheme + visible, Hash: Hash(plain)}
}

// Hash is the stored form of a secret.
func Hash(plaintext string) []byte {
	sum := sha256.Sum256([]byte(plaintext))
	return sum[:]
}

// LooksValid reports whether s has the shape of a secret, so that garbage is refused
// without a database lookup.
func LooksValid(s string) bool {
	if len(s) != len(scheme)+prefixChars+1+secretChars || !strings.HasPrefix(s, scheme) {
		return false
	}
	if s[len(scheme)+prefixChars] != '_' {
		return false
	}
	for i := len(scheme); i < len(s); i++ {
		if i == len(scheme)+prefixChars {
			continue
		}
		if !strings.ContainsRune(alphabet, rune(s[i])) {
			return false
		}
	}
	return true
}

func randomString(n int) string {
	// Rejection sampling keeps every character equally likely: 62 does not divide 256.
	out := make([]byte, 0, n)
	buf := make([]byte, n*2)
	for len(out) < n {
		_, _ = rand.Read(buf) // crypto/rand.Read never fails on Linux (Go ≥1.24 panics instead)
		for _, b := range buf {
			if b < 248 && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out)
}
