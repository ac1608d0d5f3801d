// Package ids makes the identifiers of Governor's objects: a short type prefix and a
// time-ordered random part, e.g. "run_01jd3k8q6v7x2m9p4t5w6y7z8a". They sort by creation
// time (so ORDER BY id pages through objects in the order they were made), read well in
// logs and the Temporal UI, and say what they name.
package ids

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"

	"github.com/google/uuid"
)

// Prefixes of the identifiers of each kind of object.
const (
	Org        = "org"
	Project    = "prj"
	Agent      = "agt"
	User       = "usr"
	APIKey     = "key"
	Audit      = "aud"
	Event      = "evt"
	Run        = "run"
	Limit      = "lim"
	CostRecord = "cst"
	Incident   = "inc"
	Proposal   = "prp"
	Rule       = "pol"
	Anomaly    = "anm"
	Alert      = "alr"
	Channel    = "chn"
	Route      = "rte"
	Delivery   = "dlv"
	Prevention = "prv"
	// Notification is an in-app notification; AnomalyRun one execution of detection.
	Notification = "ntf"
	AnomalyRun   = "anr"
	// LlmCall is one recorded LLM call; SystemRecord one thing the machinery did; Feedback
	// a score given to a run.
	LlmCall      = "llm"
	SystemRecord = "sys"
	Feedback     = "fbk"
)

// Crockford's base32 alphabet in lower case: no i, l, o, u, so no look-alikes.
var encoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// New returns a fresh identifier with the given prefix: prefix + "_" + 26 characters.
func New(prefix string) string {
	u := uuid.Must(uuid.NewV7())
	return prefix + "_" + encoding.EncodeToString(u[:])
}

// HasPrefix reports whether id looks like an identifier of the given kind.
func HasPrefix(id, prefix string) bool {
	return len(id) == len(prefix)+27 && strings.HasPrefix(id, prefix+"_")
}

// FromKey returns the identifier of the given kind that key always maps to (the first 128
// bits of its SHA-256): writing an object under it twice finds the first. Unlike New, it
// does not sort by creation time.
func FromKey(prefix, key string) string {
	sum := sha256.Sum256([]byte(key))
	return prefix + "_" + encoding.EncodeToString(sum[:16])
}
