package runs

import (
	"context"
	"slices"
	"time"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/limits"
	"github.com/governor-hq/governor/internal/money"
)

// Standing is where one limit stands in its current window: what admission would count
// against it now (reservations past their lease do not count).
type Standing struct {
	Limit       limits.Limit
	Enabled     bool
	WindowStart time.Time
	WindowEnd   time.Time
	Used        int64
	Reserved    int64
	// Percent is used as a whole percentage of the amount (money.Percent).
	Percent int64
	// Crossed are the alert thresholds used has reached, lowest first.
	Crossed []int32
}

// Standings are the current windows of the organization's limits of one scope type
// (limits.ScopeOrganization, ScopeProject, ScopeAgent, ScopeAPIKey), optionally only those
// of the given scope ids (nil: all), in the organization's time zone.
func Standings(ctx context.Context, db dbsqlc.DBTX, orgID, scopeType string, scopeIDs []string, loc *time.Location, now time.Time) ([]Standing, error) {
	q := dbsqlc.New()
	var ls []dbsqlc.Limit
	after := ""
	for {
		page, err := q.LimitList(ctx, db, dbsqlc.LimitListParams{OrgID: orgID, ScopeType: scopeType, AfterID: after, Max: 500})
		if err != nil {
			return nil, err
		}
		for _, l := range page {
			if scopeIDs == nil || slices.Contains(scopeIDs, l.ScopeID) {
				ls = append(ls, l)
			}
		}
		if len(page) < 500 {
			break
		}
		after = page[len(page)-1].ID
	}
	out := make([]Standing, 0, len(ls))
	var lids []string
	var wins []time.Time
	for _, l := range ls {
		start, err := limits.WindowStart(l.WindowKind, now, loc)
		if err != nil {
			return nil, err
		}
		out = append(out, Standing{Limit: FromRow(l), Enabled: l.Enabled, WindowStart: start.UTC(), WindowEnd: limits.WindowEnd(l.WindowKind, start, loc).UTC()})
		lids, wins = append(lids, l.ID), append(wins, start.UTC())
	}
	if len(out) == 0 {
		return out, nil
	}
	rows, err := q.CountersPeek(ctx, db, dbsqlc.CountersPeekParams{LimitIds: lids, WindowStarts: wins})
	if err != nil {
		return nil, err
	}
	got := map[counterKey]dbsqlc.CountersPeekRow{}
	for _, r := range rows {
		got[counterKey{r.LimitID, r.WindowStart.UTC()}] = r
	}
	for i := range out {
		c := got[counterKey{out[i].Limit.ID, out[i].WindowStart}]
		out[i].Used, out[i].Reserved = c.Used, max(c.Reserved, 0)
		out[i].Percent = money.Percent(c.Used, out[i].Limit.Amount)
		for _, th := range slices.Sorted(slices.Values(out[i].Limit.Thresholds)) {
			if money.ReachedPercent(c.Used, out[i].Limit.Amount, th) {
				out[i].Crossed = append(out[i].Crossed, th)
			}
		}
	}
	return out, nil
}
