// Package limits is the pure logic of Governor's unified limits: calendar windows, which
// limits govern a run (the org → project → agent → API key hierarchy with seed 001's
// inherit / override / merge rules), and the admission decision. No I/O: the runs
// package feeds it rows and counters.
package limits

import (
	"fmt"
	"time"
)

// Windows.
const (
	WindowMinute = "minute"
	WindowHour   = "hour"
	WindowDay    = "day"
	WindowWeek   = "week"
	WindowMonth  = "month"
)

// WindowStart is the start of the window of the given kind containing t, in loc. Days,
// weeks (Monday to Sunday) and months follow the calendar of loc, so a "day" is 23 or 25
// hours long across a daylight-saving change.
func WindowStart(kind string, t time.Time, loc *time.Location) (time.Time, error) {
	l := t.In(loc)
	y, m, d := l.Date()
	switch kind {
	case WindowMinute:
		// Minutes and hours are cut from the instant itself (not rebuilt from the local
		// clock), which stays right in the repeated hour of a daylight-saving change and
		// in zones with half-hour offsets.
		return l.Add(-time.Duration(l.Second())*time.Second - time.Duration(l.Nanosecond())), nil
	case WindowHour:
		return l.Add(-time.Duration(l.Minute())*time.Minute - time.Duration(l.Second())*time.Second - time.Duration(l.Nanosecond())), nil
	case WindowDay:
		return time.Date(y, m, d, 0, 0, 0, 0, loc), nil
	case WindowWeek:
		back := (int(l.Weekday()) + 6) % 7 // days since Monday
		return time.Date(y, m, d-back, 0, 0, 0, 0, loc), nil
	case WindowMonth:
		return time.Date(y, m, 1, 0, 0, 0, 0, loc), nil
	}
	return time.Time{}, fmt.Errorf("unknown window %q", kind)
}

// WindowEnd is when the window starting at start ends (and the next begins).
func WindowEnd(kind string, start time.Time, loc *time.Location) time.Time {
	l := start.In(loc)
	y, m, d := l.Date()
	switch kind {
	case WindowMinute:
		return start.Add(time.Minute)
	case WindowHour:
		return start.Add(time.Hour)
	case WindowDay:
		return time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	case WindowWeek:
		return time.Date(y, m, d+7, 0, 0, 0, 0, loc)
	case WindowMonth:
		return time.Date(y, m+1, 1, 0, 0, 0, 0, loc)
	}
	return start
}

// windowOrder sorts shorter windows first.
var windowOrder = map[string]int{WindowMinute: 0, WindowHour: 1, WindowDay: 2, WindowWeek: 3, WindowMonth: 4}
