// Package entryhash computes an audit entry's hash in Go, byte for byte as the SQL
// function audit_entry_hash does (migration 0001). The writer and the in-database
// verifier use the SQL function; a verifier that must not trust the database (checking a
// signed checkpoint) uses this one, so that a database owner who replaces the SQL
// function cannot make altered entries check out.
package entryhash

import (
	"crypto/sha256"
	"strconv"
	"strings"
	"time"
)

// Entry is an audit entry's stored content. Before and After are the jsonb columns in
// PostgreSQL's text form (column::text), nil for NULL.
type Entry struct {
	PrevHash                                  []byte
	OrgID                                     string
	Seq                                       int64
	ID                                        string
	CreatedAt                                 time.Time
	ActorKind, ActorAPIKeyID, ActorUserID     string
	ActorSystem, Action, EntityType, EntityID string
	Before, After                             *string
	RequestID                                 string
}

// Sum returns sha256(prev_hash || json_build_array(...)::text), the array rendered as
// PostgreSQL renders it: elements separated by ", ", strings escaped as escape_json does,
// the time as integer microseconds since the epoch, NULL jsonb as "".
func Sum(e Entry) [32]byte {
	var b strings.Builder
	b.WriteByte('[')
	str := func(s string) {
		quote(&b, s)
		b.WriteString(", ")
	}
	str(e.OrgID)
	b.WriteString(strconv.FormatInt(e.Seq, 10))
	b.WriteString(", ")
	str(e.ID)
	b.WriteString(strconv.FormatInt(e.CreatedAt.UnixMicro(), 10))
	b.WriteString(", ")
	for _, s := range []string{e.ActorKind, e.ActorAPIKeyID, e.ActorUserID, e.ActorSystem, e.Action, e.EntityType, e.EntityID,
		deref(e.Before), deref(e.After)} {
		str(s)
	}
	quote(&b, e.RequestID)
	b.WriteByte(']')
	h := sha256.New()
	h.Write(e.PrevHash)
	h.Write([]byte(b.String()))
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// quote writes s as a JSON string the way PostgreSQL's escape_json does: the two-letter
// escapes for \b \f \n \r \t " and \, \u00xx (lower-case hex) for other control
// characters, everything else (DEL and non-ASCII included) as it is.
func quote(b *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		default:
			if c < ' ' {
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0xf])
				continue
			}
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
