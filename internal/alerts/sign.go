package alerts

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Webhook signing per the Standard Webhooks specification (standardwebhooks.com): each
// request carries webhook-id (the message id, the same on every retry), webhook-timestamp
// (seconds since the epoch, of this attempt) and webhook-signature, a space-separated list
// of "v1,<base64 HMAC-SHA256 of id.timestamp.body>" — one per valid secret, so receivers
// keep verifying while a secret is rotated.

// SecretPrefix starts every signing secret.
const SecretPrefix = "whsec_"

// NewSecret returns a fresh signing secret: "whsec_" and 32 random bytes in base64.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// Sign returns the "v1,<signature>" of a message under a secret.
func Sign(secret, msgID string, ts time.Time, body []byte) string {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil {
		key = []byte(secret)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msgID))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// signingSecrets are the secrets a delivery is signed with now: the current one, and the
// previous one until it expires.
func signingSecrets(c Credentials, prevExpiresAt *time.Time, now time.Time) []string {
	out := []string{c.Secret}
	if c.PrevSecret != "" && prevExpiresAt != nil && prevExpiresAt.After(now) {
		out = append(out, c.PrevSecret)
	}
	return out
}

func webhookHeaders(c Credentials, prevExpiresAt *time.Time, msgID string, now time.Time, body []byte) http.Header {
	var sigs []string
	for _, s := range signingSecrets(c, prevExpiresAt, now) {
		sigs = append(sigs, Sign(s, msgID, now, body))
	}
	return http.Header{
		"Content-Type":      {"application/json"},
		"Webhook-Id":        {msgID},
		"Webhook-Timestamp": {strconv.FormatInt(now.Unix(), 10)},
		"Webhook-Signature": {strings.Join(sigs, " ")},
	}
}
