package bucket

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func zone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

func TestDayBucketsAcrossDSTAndOddOffsets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		zone  string
		day   string // local date
		hours float64
		utc   string // the bucket's start in UTC
	}{
		{"America/New_York", "2026-03-08", 23, "2026-03-08T05:00:00Z"}, // spring forward
		{"America/New_York", "2026-11-01", 25, "2026-11-01T04:00:00Z"}, // fall back
		{"Europe/Berlin", "2026-03-29", 23, "2026-03-28T23:00:00Z"},
		{"Europe/Berlin", "2026-10-25", 25, "2026-10-24T22:00:00Z"},
		{"Asia/Kolkata", "2026-06-15", 24, "2026-06-14T18:30:00Z"},
		{"Asia/Kathmandu", "2026-06-15", 24, "2026-06-14T18:15:00Z"},
		{"Australia/Adelaide", "2026-04-05", 25, "2026-04-04T13:30:00Z"}, // :30 and DST
		{"UTC", "2026-06-15", 24, "2026-06-15T00:00:00Z"},
	} {
		t.Run(tc.zone+" "+tc.day, func(t *testing.T) {
			loc := zone(t, tc.zone)
			d, err := time.ParseInLocation("2006-01-02", tc.day, loc)
			require.NoError(t, err)
			bs, err := Buckets(Range{Start: d, End: d.AddDate(0, 0, 1)}, Day, loc)
			require.NoError(t, err)
			require.Len(t, bs, 1)
			require.Equal(t, tc.hours, bs[0].Range.End.Sub(bs[0].Range.Start).Hours())
			require.Equal(t, tc.utc, bs[0].Range.Start.UTC().Format(time.RFC3339))
			// And it decomposes into rollup buckets exactly.
			ps, err := Decompose(bs[0].Range, []time.Duration{Quarter, HourG, DayG})
			require.NoError(t, err)
			requireCovers(t, bs[0].Range, ps)
		})
	}
}

func TestWeeksStartOnMondayInTheZone(t *testing.T) {
	t.Parallel()
	loc := zone(t, "Asia/Kathmandu")
	start := time.Date(2026, 3, 4, 10, 0, 0, 0, loc) // a Wednesday
	bs, err := Buckets(Range{Start: start, End: start.AddDate(0, 0, 14)}, Week, loc)
	require.NoError(t, err)
	require.Len(t, bs, 3)
	for _, b := range bs {
		require.Equal(t, time.Monday, b.Label.In(loc).Weekday())
		require.Zero(t, b.Label.In(loc).Hour())
	}
	require.Equal(t, start, bs[0].Range.Start, "the first bucket is cut to the range")
}

func TestMonthsAndHours(t *testing.T) {
	t.Parallel()
	loc := zone(t, "America/New_York")
	r := Range{Start: time.Date(2026, 1, 1, 0, 0, 0, 0, loc), End: time.Date(2027, 1, 1, 0, 0, 0, 0, loc)}
	bs, err := Buckets(r, Month, loc)
	require.NoError(t, err)
	require.Len(t, bs, 12)
	var total time.Duration
	for i, b := range bs {
		require.Equal(t, time.Month(i+1), b.Label.Month())
		total += b.Range.End.Sub(b.Range.Start)
	}
	require.Equal(t, r.End.Sub(r.Start), total)
	// The fall-back day has 25 hourly buckets, the repeated hour twice.
	d := time.Date(2026, 11, 1, 0, 0, 0, 0, loc)
	hs, err := Buckets(Range{Start: d, End: d.AddDate(0, 0, 1)}, Hour, loc)
	require.NoError(t, err)
	require.Len(t, hs, 25)
	require.Equal(t, 1, hs[1].Label.Hour())
	require.Equal(t, 1, hs[2].Label.Hour())
	// Kolkata's hours start at :30 UTC.
	k := zone(t, "Asia/Kolkata")
	hs, err = Buckets(Range{Start: time.Date(2026, 6, 1, 0, 0, 0, 0, k), End: time.Date(2026, 6, 1, 3, 0, 0, 0, k)}, Hour, k)
	require.NoError(t, err)
	require.Len(t, hs, 3)
	require.Equal(t, 30, hs[0].Range.Start.UTC().Minute())
	_, err = Buckets(Range{Start: d, End: d.AddDate(5, 0, 0)}, Hour, loc)
	require.ErrorIs(t, err, ErrTooManyBuckets)
}

func requireCovers(t testing.TB, r Range, ps []Piece) {
	t.Helper()
	cur := r.Start
	for _, p := range ps {
		require.True(t, p.Start.Equal(cur), "pieces are contiguous")
		require.True(t, p.End.After(p.Start))
		require.True(t, p.Start.Truncate(p.Grain).Equal(p.Start), "aligned to its grain")
		require.Zero(t, p.End.Sub(p.Start)%p.Grain)
		cur = p.End
	}
	require.True(t, cur.Equal(r.End), "the pieces end where the range does")
}

func TestDecomposeUsesCoarseGrains(t *testing.T) {
	t.Parallel()
	s := time.Date(2026, 5, 1, 18, 45, 0, 0, time.UTC)
	e := time.Date(2026, 5, 4, 2, 15, 0, 0, time.UTC)
	ps, err := Decompose(Range{Start: s, End: e}, []time.Duration{Quarter, HourG, DayG})
	require.NoError(t, err)
	requireCovers(t, Range{Start: s, End: e}, ps)
	require.Equal(t, []Piece{
		{Quarter, s, s.Add(15 * time.Minute)},
		{HourG, time.Date(2026, 5, 1, 19, 0, 0, 0, time.UTC), time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC)},
		{DayG, time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC), time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC)},
		{HourG, time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC), time.Date(2026, 5, 4, 2, 0, 0, 0, time.UTC)},
		{Quarter, time.Date(2026, 5, 4, 2, 0, 0, 0, time.UTC), e},
	}, ps)
	// Without hours, quarter-hours fill in.
	ps, err = Decompose(Range{Start: s, End: e}, []time.Duration{Quarter, DayG})
	require.NoError(t, err)
	requireCovers(t, Range{Start: s, End: e}, ps)
	_, err = Decompose(Range{Start: s.Add(time.Minute), End: e}, nil)
	require.ErrorIs(t, err, ErrNotAligned)
}

func TestSnap(t *testing.T) {
	t.Parallel()
	r := Snap(time.Date(2026, 1, 1, 10, 7, 3, 0, time.UTC), time.Date(2026, 1, 1, 11, 0, 0, 1, time.UTC))
	require.Equal(t, time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC), r.Start)
	require.Equal(t, time.Date(2026, 1, 1, 11, 15, 0, 0, time.UTC), r.End)
	r = Snap(time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC), time.Date(2026, 1, 1, 11, 0, 0, 0, time.UTC))
	require.Equal(t, time.Hour, r.End.Sub(r.Start))
}

// Any chart's buckets, in any zone and granularity, decompose exactly into rollup
// buckets, and the buckets tile the range.
func FuzzBucketsDecompose(f *testing.F) {
	zones := []string{"UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe", "Pacific/Chatham", "America/St_Johns"}
	grans := []Granularity{None, Hour, Day, Week, Month}
	f.Add(int64(1_780_000_000), int64(86_400*40), uint8(2), uint8(3))
	f.Add(int64(1_793_000_000), int64(3600*30), uint8(1), uint8(4))
	f.Fuzz(func(t *testing.T, start, length int64, zi, gi uint8) {
		loc, err := time.LoadLocation(zones[int(zi)%len(zones)])
		if err != nil {
			t.Fatal(err)
		}
		g := grans[int(gi)%len(grans)]
		start = 946_684_800 + (start%(40*365*86400)+40*365*86400)%(40*365*86400)
		length = (length%(120*86400) + 120*86400) % (120 * 86400)
		if g == Hour {
			length %= 20 * 86400
		}
		r := Snap(time.Unix(start, 0), time.Unix(start+length, 0))
		bs, err := Buckets(r, g, loc)
		if err != nil {
			t.Fatal(err)
		}
		cur := r.Start
		for _, b := range bs {
			if !b.Range.Start.Equal(cur) || !b.Range.End.After(b.Range.Start) {
				t.Fatalf("buckets do not tile %v: %v", r, b)
			}
			ps, err := Decompose(b.Range, []time.Duration{Quarter, HourG, DayG})
			if err != nil {
				t.Fatal(err)
			}
			c := b.Range.Start
			for _, p := range ps {
				if !p.Start.Equal(c) || !p.Start.Truncate(p.Grain).Equal(p.Start) {
					t.Fatalf("bad piece %v", p)
				}
				c = p.End
			}
			if !c.Equal(b.Range.End) {
				t.Fatalf("pieces end at %v, bucket at %v", c, b.Range.End)
			}
			cur = b.Range.End
		}
		if len(bs) > 0 && !cur.Equal(r.End) {
			t.Fatalf("buckets end at %v, range at %v", cur, r.End)
		}
	})
}
