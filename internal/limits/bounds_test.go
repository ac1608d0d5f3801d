package limits

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/internal/money"
)

// The review's attack: an estimate of int64-max was admitted against a $10 budget because
// used + reserved + requested wrapped negative.
func TestHugeRequestsAreRefusedNotWrapped(t *testing.T) {
	t.Parallel()
	budget := Limit{ID: "lim_1", Metric: MetricCost, Window: WindowDay, Amount: 10_000_000, Enforcement: Block}
	cases := []struct {
		name                      string
		used, reserved, requested int64
		verdict                   string
	}{
		{"int64 max estimate", 0, 0, math.MaxInt64, Blocked},
		{"int64 max on top of usage", 5, 5, math.MaxInt64, Blocked},
		{"usage at the ceiling", money.Ceiling, 0, 1, Blocked},
		{"fits exactly", 4_000_000, 1_000_000, 5_000_000, Within},
		{"one over", 4_000_000, 1_000_000, 5_000_001, Blocked},
	}
	for _, c := range cases {
		d := Decide([]Check{{Limit: budget, Used: c.used, Reserved: c.reserved, Requested: c.requested}})
		require.Equal(t, c.verdict, d.Checks[0].Verdict, c.name)
		require.GreaterOrEqual(t, d.Checks[0].Remaining(), int64(0), c.name)
	}
}

// A warn-only limit admits past its amount, but never past what a counter can hold.
func TestWarnLimitsStopAtTheCountersCapacity(t *testing.T) {
	t.Parallel()
	warn := Limit{ID: "lim_w", Metric: MetricCost, Window: WindowDay, Amount: 10, Enforcement: Warn}
	d := Decide([]Check{{Limit: warn, Used: 100, Reserved: 0, Requested: 50}})
	require.Equal(t, Warned, d.Checks[0].Verdict)
	require.True(t, d.Admitted())
	d = Decide([]Check{{Limit: warn, Used: 0, Reserved: money.Ceiling - 10, Requested: 10}})
	require.Equal(t, Blocked, d.Checks[0].Verdict)
	require.False(t, d.Admitted())
}

// FuzzWindowStart checks the calendar windows in zones with DST changes and odd offsets,
// at any instant: the window contains the instant, starts on a boundary of its kind in
// the zone, and the next window starts where this one ends.
func FuzzWindowStart(f *testing.F) {
	zones := []string{"UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu",
		"Australia/Lord_Howe", "America/St_Johns", "Pacific/Chatham", "America/Santiago"}
	kinds := []string{WindowMinute, WindowHour, WindowDay, WindowWeek, WindowMonth}
	for _, s := range []int64{
		time.Date(2026, 3, 29, 1, 30, 15, 0, time.UTC).Unix(),  // Berlin spring forward
		time.Date(2026, 10, 25, 0, 59, 59, 0, time.UTC).Unix(), // Berlin fall back
		time.Date(2026, 11, 1, 6, 30, 0, 0, time.UTC).Unix(),   // New York fall back
		time.Date(2026, 4, 5, 14, 45, 0, 0, time.UTC).Unix(),   // Lord Howe (30-minute DST)
		0, -1,
	} {
		for z := range zones {
			for k := range kinds {
				f.Add(s, uint8(z), uint8(k))
			}
		}
	}
	f.Fuzz(func(t *testing.T, unix int64, zi, ki uint8) {
		// Instants within ±200 years of 1970 (windows of year 290,000,000 are not a concern).
		const span = 200 * 365 * 24 * 3600
		unix %= span
		loc, err := time.LoadLocation(zones[int(zi)%len(zones)])
		if err != nil {
			t.Fatal(err)
		}
		kind := kinds[int(ki)%len(kinds)]
		at := time.Unix(unix, 0)
		start, err := WindowStart(kind, at, loc)
		if err != nil {
			t.Fatal(err)
		}
		end := WindowEnd(kind, start, loc)
		if at.Before(start) || !at.Before(end) {
			t.Fatalf("%s window [%s, %s) in %s does not contain %s", kind, start, end, loc, at.In(loc))
		}
		l := start.In(loc)
		switch kind {
		case WindowMinute:
			if l.Second() != 0 || end.Sub(start) != time.Minute {
				t.Fatalf("minute window %s..%s", start, end)
			}
		case WindowHour:
			if l.Second() != 0 || end.Sub(start) != time.Hour {
				t.Fatalf("hour window %s..%s", start, end)
			}
		case WindowDay, WindowWeek, WindowMonth:
			// Starts at the first instant of its local day (midnight, or the first instant
			// after a gap that swallowed midnight).
			prev := start.Add(-time.Second).In(loc)
			if prev.Day() == l.Day() && prev.Month() == l.Month() {
				t.Fatalf("%s window starts at %s, not at the start of a local day", kind, l)
			}
			if kind == WindowWeek && l.Weekday() != time.Monday {
				t.Fatalf("week starts on %s", l.Weekday())
			}
			if kind == WindowMonth && l.Day() != 1 {
				t.Fatalf("month starts on day %d", l.Day())
			}
			if h := end.Sub(start).Hours(); h < 22 || h > 31*24+2 {
				t.Fatalf("%s window is %v hours", kind, h)
			}
		}
		next, err := WindowStart(kind, end, loc)
		if err != nil || !next.Equal(end) {
			t.Fatalf("the window after [%s, %s) starts at %s", start, end, next)
		}
	})
}
