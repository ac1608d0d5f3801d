package limits

import (
	"time"

	"github.com/governor-hq/governor/internal/money"
)

// Request is what a run asks of each metric.
type Request struct {
	CostMicros int64
	Tokens     int64
}

// Amount is what a run reserves on a limit of the given metric.
func (r Request) Amount(metric string) int64 {
	switch metric {
	case MetricCost:
		return r.CostMicros
	case MetricTokens:
		return r.Tokens
	default: // runs, requests
		return 1
	}
}

// Verdicts of one check.
const (
	Within  = "within"
	Blocked = "blocked"
	Warned  = "warned"
)

// Counter is a limit's usage in one window.
type Counter struct {
	Used     int64
	Reserved int64
}

// Check is one limit's state for one run.
type Check struct {
	Limit       Limit
	WindowStart time.Time
	ResetTime   time.Time
	Used        int64
	Reserved    int64
	Requested   int64
	Verdict     string
}

// Remaining is what is left of the limit, not below zero.
func (c Check) Remaining() int64 {
	return max(0, c.Limit.Amount-money.Add(c.Used, c.Reserved))
}

// Exceeds reports whether taking requested on top of used and reserved goes past amount.
// A run that asks for nothing (no estimate) is still refused once the limit is used up.
// The sums saturate (money.Add), so no request, however large, can wrap past the check.
func Exceeds(amount, used, reserved, requested int64) bool {
	held := money.Add(used, reserved)
	if requested == 0 {
		return held >= amount
	}
	return money.Add(held, requested) > amount
}

// overCapacity reports whether reserving requested would take a counter's reservations
// to the ceiling of what a counter can hold. Only warn-only limits can get there (a
// blocking limit refuses long before): such a run is refused, so the stored counter can
// never overflow.
func overCapacity(reserved, requested int64) bool {
	return money.Add(reserved, requested) >= money.Ceiling
}

// Evaluate sets the verdict of a check from its numbers.
func (c *Check) Evaluate() {
	c.Verdict = Within
	if overCapacity(c.Reserved, c.Requested) {
		c.Verdict = Blocked
		return
	}
	if Exceeds(c.Limit.Amount, c.Used, c.Reserved, c.Requested) {
		if c.Limit.Enforcement == Warn {
			c.Verdict = Warned
		} else {
			c.Verdict = Blocked
		}
	}
}

// Decision is the outcome of checking a run against its limits.
type Decision struct {
	Checks   []Check // in check order
	Blocking *Check  // the first blocking check, nil when admitted
	Warnings []Check
}

// Admitted reports whether nothing blocks the run.
func (d Decision) Admitted() bool { return d.Blocking == nil }

// Decide evaluates checks (in order) and finds the first that blocks.
func Decide(checks []Check) Decision {
	d := Decision{Checks: checks}
	for i := range d.Checks {
		d.Checks[i].Evaluate()
		switch d.Checks[i].Verdict {
		case Blocked:
			if d.Blocking == nil {
				c := d.Checks[i]
				d.Blocking = &c
			}
		case Warned:
			d.Warnings = append(d.Warnings, d.Checks[i])
		}
	}
	return d
}
