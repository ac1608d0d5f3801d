// Package runlog merges a run's three logs (domain events, LLM calls, system records)
// into one time-ordered page, and turns a position in the merged order into a bound on
// each log, so each is read with its own keyset query. Entries are ordered by time, then
// kind (events, calls, system records), then id. No I/O here.
package runlog

import (
	"cmp"
	"time"
)

// Kind is which log an entry comes from, in the merged order's tie-break order.
type Kind int

const (
	Event Kind = iota
	LlmCall
	SystemRecord
)

// Kinds are all kinds, in order.
var Kinds = []Kind{Event, LlmCall, SystemRecord}

var names = []string{"event", "llm_call", "system_record"}

func (k Kind) String() string {
	if k < 0 || int(k) >= len(names) {
		return "unknown"
	}
	return names[k]
}

// ParseKind reads a Kind's name.
func ParseKind(s string) (Kind, bool) {
	for i, n := range names {
		if n == s {
			return Kind(i), true
		}
	}
	return 0, false
}

// Position is an entry's place in the merged order.
type Position struct {
	Time time.Time
	Kind Kind
	ID   string
}

// Compare orders positions: time, then kind, then id.
func Compare(a, b Position) int {
	if c := a.Time.Compare(b.Time); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Kind, b.Kind); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// Bound is where log k must be read after, for its rows to be exactly those after pos in
// the merged order: rows with (time, id) > (Bound.Time, Bound.ID). Each log orders its own
// rows by (time, id).
//
//   - pos is of k itself: after (pos.Time, pos.ID);
//   - pos is of a kind sorted before k: every row of k at pos.Time or later;
//   - pos is of a kind sorted after k: only rows of k after pos.Time (times have
//     microsecond precision, as PostgreSQL stores them).
//
// Ids are never empty, so (t, "") is before every row at t.
func Bound(pos *Position, k Kind) (time.Time, string) {
	switch {
	case pos == nil:
		return time.Time{}, ""
	case pos.Kind == k:
		return pos.Time, pos.ID
	case pos.Kind < k:
		return pos.Time, ""
	}
	return pos.Time.Truncate(time.Microsecond).Add(time.Microsecond), ""
}

// Merge merges the logs (each already in (time, id) order and after the same position)
// and returns the first n entries in the merged order, and whether more follow. Each log
// must have been read with a limit of n+1, so that one holding more than its share shows.
func Merge(logs [][]Position, n int) ([]Position, bool) {
	total := 0
	for _, l := range logs {
		total += len(l)
	}
	out := make([]Position, 0, min(total, n))
	next := make([]int, len(logs))
	for len(out) < n {
		best := -1
		for i, l := range logs {
			if next[i] < len(l) && (best < 0 || Compare(l[next[i]], logs[best][next[best]]) < 0) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		out = append(out, logs[best][next[best]])
		next[best]++
	}
	return out, total > len(out)
}
