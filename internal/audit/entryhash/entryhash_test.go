package entryhash

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err)
	return v
}

func ptr(s string) *string { return &s }

// The expected hashes were computed by PostgreSQL 15 with audit_entry_hash (migration
// 0001) from the same values; the database test in internal/audit checks the two agree on
// stored entries too.
func TestSumMatchesPostgres(t *testing.T) {
	t.Parallel()
	zero := make([]byte, 32)
	x := sha256.Sum256([]byte("x"))
	cases := []struct {
		name string
		e    Entry
		want string
	}{
		{"genesis entry", Entry{
			PrevHash: zero, OrgID: "org_1", Seq: 1, ID: "aud_1", CreatedAt: at(t, "2026-01-02T03:04:05.123456Z"),
			ActorKind: "system", ActorSystem: "cli:admin bootstrap", Action: "organization.create", EntityType: "organization",
			EntityID: "org_1", After: ptr(`{"id": "org_1", "name": "Acme"}`), RequestID: "req-1",
		}, "c4341ae30ff1e1cac1a9b8f2ba618146a7cfd47cdfa6d461206d9e5c6b3ca94a"},
		{"escapes, unicode, an offset time zone", Entry{
			PrevHash: x[:], OrgID: "org_2", Seq: 42, ID: "aud_2", CreatedAt: at(t, "1999-12-31T23:59:59.999999-05:00"),
			ActorKind: "api_key", ActorAPIKeyID: "key_1", ActorUserID: "usr_1", Action: "limit.update", EntityType: "limit",
			EntityID: "lim_1", Before: ptr(`{"tags": ["a\"b", "c\\\\d"], "amount": 1.50}`),
			After: ptr(`{"note": "line1\nline2\t\u0001 é 😀"}`), RequestID: "r\"\\\n\t\b\f\r\x02\x7f",
		}, "bf3571c4868b8fb614fa32ec70831772761b7d3c24a37820e829fcd65000e4be"},
		{"empty values, the epoch", Entry{PrevHash: []byte{0}, CreatedAt: at(t, "1970-01-01T00:00:00Z")},
			"0a4abe2bd1963b02c6c4973ade56cef11d120473826bcdf420fa826685150e30"},
		{"before the epoch", Entry{PrevHash: []byte{0}, CreatedAt: at(t, "1969-12-31T23:59:59.5Z")},
			"e1601a0d797f32024f0cc2fac7b2887ddb153a9f1164451c840ee05006ef03df"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Sum(tc.e)
			require.Equal(t, tc.want, hex.EncodeToString(got[:]))
		})
	}
}

// Any change to any field changes the hash (a verifier that ignored a field would miss
// an edit of it).
func TestSumCoversEveryField(t *testing.T) {
	t.Parallel()
	base := Entry{PrevHash: make([]byte, 32), OrgID: "o", Seq: 1, ID: "i", CreatedAt: time.Unix(1, 0), ActorKind: "k",
		ActorAPIKeyID: "a", ActorUserID: "u", ActorSystem: "s", Action: "x.y", EntityType: "t", EntityID: "e",
		Before: ptr("{}"), After: ptr("[]"), RequestID: "r"}
	h := Sum(base)
	edits := map[string]func(e *Entry){
		"prev_hash":  func(e *Entry) { e.PrevHash = append([]byte{1}, e.PrevHash[1:]...) },
		"org_id":     func(e *Entry) { e.OrgID = "p" },
		"seq":        func(e *Entry) { e.Seq = 2 },
		"id":         func(e *Entry) { e.ID = "j" },
		"created_at": func(e *Entry) { e.CreatedAt = e.CreatedAt.Add(time.Microsecond) },
		"actor_kind": func(e *Entry) { e.ActorKind = "l" },
		"api_key":    func(e *Entry) { e.ActorAPIKeyID = "b" },
		"user":       func(e *Entry) { e.ActorUserID = "v" },
		"system":     func(e *Entry) { e.ActorSystem = "t" },
		"action":     func(e *Entry) { e.Action = "x.z" },
		"type":       func(e *Entry) { e.EntityType = "u" },
		"entity":     func(e *Entry) { e.EntityID = "f" },
		"before":     func(e *Entry) { e.Before = ptr(`{"a": 1}`) },
		"after":      func(e *Entry) { e.After = nil },
		"request":    func(e *Entry) { e.RequestID = "s" },
		// Moving text between neighbouring fields must not collide.
		"shifted": func(e *Entry) { e.ActorAPIKeyID, e.ActorUserID = "", "au" },
	}
	for name, edit := range edits {
		e := base
		edit(&e)
		require.NotEqual(t, h, Sum(e), name)
	}
}
