// Package bucket cuts time for analytics: the buckets of a chart in a time zone (hour,
// day, week from Monday, month — calendar buckets, so a day is 23 or 25 hours across a
// daylight-saving change), and the decomposition of any range into pieces of the UTC
// grains rollups are kept at. Every whole-hour, :30 and :45 offset is a multiple of a
// quarter-hour, so a bucket boundary in any zone is a quarter-hour boundary in UTC and a
// range decomposes into rollup buckets exactly.
package bucket

import (
	"errors"
	"fmt"
	"time"

	"github.com/governor-hq/governor/internal/limits"
)

// Granularity of a chart's buckets.
type Granularity string

const (
	None  Granularity = "none"
	Hour  Granularity = "hour"
	Day   Granularity = "day"
	Week  Granularity = "week"
	Month Granularity = "month"
)

// The grains rollups are kept at, aligned in UTC.
const (
	Quarter = 15 * time.Minute
	HourG   = time.Hour
	DayG    = 24 * time.Hour
)

// Range is [Start, End).
type Range struct {
	Start, End time.Time
}

// Snap widens [start, end) to whole quarter-hours: the finest grain of the rollups.
func Snap(start, end time.Time) Range {
	s := start.UTC().Truncate(Quarter)
	e := end.UTC().Truncate(Quarter)
	if e.Before(end) {
		e = e.Add(Quarter)
	}
	return Range{Start: s, End: e}
}

// MaxBuckets bounds how many buckets one chart may have.
const MaxBuckets = 10_000

// ErrTooManyBuckets: the range holds more buckets of the granularity than MaxBuckets.
var ErrTooManyBuckets = errors.New("too many buckets")

// Buckets are the buckets of granularity g in loc that meet r, each cut to r (the first
// and last may be partial). Label is each bucket's natural start, in loc.
func Buckets(r Range, g Granularity, loc *time.Location) ([]Bucket, error) {
	if !r.End.After(r.Start) {
		return nil, nil
	}
	if g == None || g == "" {
		return []Bucket{{Label: r.Start.In(loc), Range: r}}, nil
	}
	kind := map[Granularity]string{Hour: limits.WindowHour, Day: limits.WindowDay, Week: limits.WindowWeek, Month: limits.WindowMonth}[g]
	if kind == "" {
		return nil, fmt.Errorf("unknown granularity %q", g)
	}
	start, err := limits.WindowStart(kind, r.Start, loc)
	if err != nil {
		return nil, err
	}
	var out []Bucket
	for s := start; s.Before(r.End); {
		e := limits.WindowEnd(kind, s, loc)
		if !e.After(s) {
			return nil, fmt.Errorf("bucket at %s does not advance", s)
		}
		b := Bucket{Label: s, Range: Range{Start: later(s, r.Start), End: earlier(e, r.End)}}
		out = append(out, b)
		if len(out) > MaxBuckets {
			return nil, fmt.Errorf("%w: more than %d %s buckets", ErrTooManyBuckets, MaxBuckets, g)
		}
		s = e
	}
	return out, nil
}

// Bucket is one bucket of a chart.
type Bucket struct {
	Label time.Time
	Range Range
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Piece is a run of consecutive rollup buckets of one grain: [Start, End) at Grain.
type Piece struct {
	Grain      time.Duration
	Start, End time.Time
}

// ErrNotAligned: a range to decompose does not start or end on a quarter-hour.
var ErrNotAligned = errors.New("range is not on quarter-hour boundaries")

// Decompose covers r with as few rollup buckets as possible, using the coarsest of grains
// (a subset of Quarter, HourG, DayG that includes Quarter) that fits at each point, and
// returns them as runs of one grain. Their union is exactly r and they never overlap.
func Decompose(r Range, grains []time.Duration) ([]Piece, error) {
	s, e := r.Start.UTC(), r.End.UTC()
	if !s.Truncate(Quarter).Equal(s) || !e.Truncate(Quarter).Equal(e) {
		return nil, fmt.Errorf("%w: [%s, %s)", ErrNotAligned, s.Format(time.RFC3339Nano), e.Format(time.RFC3339Nano))
	}
	var out []Piece
	for cur := s; cur.Before(e); {
		g := Quarter
		for _, c := range grains {
			if c > g && cur.Truncate(c).Equal(cur) && !cur.Add(c).After(e) {
				g = c
			}
		}
		next := cur.Add(g)
		if n := len(out); n > 0 && out[n-1].Grain == g && out[n-1].End.Equal(cur) {
			out[n-1].End = next
		} else {
			out = append(out, Piece{Grain: g, Start: cur, End: next})
		}
		cur = next
	}
	return out, nil
}
