package runlog

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(us int, k Kind, id string) Position {
	return Position{Time: t0.Add(time.Duration(us) * time.Microsecond), Kind: k, ID: id}
}

func TestMergeOrdersByTimeThenKindThenID(t *testing.T) {
	t.Parallel()
	events := []Position{at(0, Event, "evt_b"), at(5, Event, "evt_a")}
	calls := []Position{at(0, LlmCall, "llm_a"), at(1, LlmCall, "llm_a"), at(5, LlmCall, "llm_0")}
	system := []Position{at(0, SystemRecord, "sys_a"), at(5, SystemRecord, "sys_z")}
	cases := []struct {
		name string
		n    int
		want []Position
		more bool
	}{
		{"everything", 10, []Position{at(0, Event, "evt_b"), at(0, LlmCall, "llm_a"), at(0, SystemRecord, "sys_a"),
			at(1, LlmCall, "llm_a"), at(5, Event, "evt_a"), at(5, LlmCall, "llm_0"), at(5, SystemRecord, "sys_z")}, false},
		{"a page", 3, []Position{at(0, Event, "evt_b"), at(0, LlmCall, "llm_a"), at(0, SystemRecord, "sys_a")}, true},
		{"exactly all", 7, nil, false},
		{"none asked", 0, []Position{}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, more := Merge([][]Position{events, calls, system}, c.n)
			if c.want != nil {
				require.Equal(t, c.want, got)
			} else {
				require.Len(t, got, c.n)
			}
			require.Equal(t, c.more, more)
		})
	}
	got, more := Merge([][]Position{nil, nil, nil}, 5)
	require.Empty(t, got)
	require.False(t, more)
}

func TestBound(t *testing.T) {
	t.Parallel()
	pos := at(7, LlmCall, "llm_q")
	cases := []struct {
		k      Kind
		wantT  time.Time
		wantID string
	}{
		{Event, t0.Add(8 * time.Microsecond), ""}, // events sort before calls: only later instants
		{LlmCall, t0.Add(7 * time.Microsecond), "llm_q"},
		{SystemRecord, t0.Add(7 * time.Microsecond), ""}, // after calls: the same instant onwards
	}
	for _, c := range cases {
		bt, bid := Bound(&pos, c.k)
		require.Equal(t, c.wantT, bt, c.k.String())
		require.Equal(t, c.wantID, bid, c.k.String())
	}
	bt, bid := Bound(nil, Event)
	require.True(t, bt.IsZero())
	require.Empty(t, bid)
}

func TestKindNames(t *testing.T) {
	t.Parallel()
	for _, k := range Kinds {
		got, ok := ParseKind(k.String())
		require.True(t, ok)
		require.Equal(t, k, got)
	}
	_, ok := ParseKind("audit_entry")
	require.False(t, ok)
	require.Equal(t, "unknown", Kind(9).String())
}

// after applies a Bound the way the queries do: (time, id) > (bound time, bound id).
func after(rows []Position, bt time.Time, bid string) []Position {
	var out []Position
	for _, r := range rows {
		if r.Time.After(bt) || (r.Time.Equal(bt) && r.ID > bid) {
			out = append(out, r)
		}
	}
	return out
}

// Paging through three random logs with Bound and Merge visits every entry exactly once,
// in the merged order, whatever the page size: many entries share instants and ids.
func TestPagingVisitsEveryEntryOnceInOrder(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		logs := make([][]Position, len(Kinds))
		var all []Position
		for _, k := range Kinds {
			for range r.IntN(30) {
				p := at(r.IntN(10), k, fmt.Sprintf("id_%02d", r.IntN(40)))
				if !slices.ContainsFunc(logs[k], func(q Position) bool { return Compare(p, q) == 0 }) {
					logs[k] = append(logs[k], p)
					all = append(all, p)
				}
			}
			slices.SortFunc(logs[k], Compare) // one kind: (time, id) order
		}
		slices.SortFunc(all, Compare)
		n := 1 + r.IntN(7)
		var seen []Position
		var pos *Position
		for pages := 0; ; pages++ {
			require.Less(t, pages, 1000, "trial %d does not end", trial)
			reads := make([][]Position, len(Kinds))
			for _, k := range Kinds {
				bt, bid := Bound(pos, k)
				rows := after(logs[k], bt, bid)
				reads[k] = rows[:min(len(rows), n+1)]
			}
			got, more := Merge(reads, n)
			seen = append(seen, got...)
			if !more {
				break
			}
			last := got[len(got)-1]
			pos = &last
		}
		require.Equal(t, all, seen, "trial %d, page size %d", trial, n)
	}
}
