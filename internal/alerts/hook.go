package alerts

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/limits"
	"github.com/governor-hq/governor/internal/money"
	"github.com/governor-hq/governor/internal/runs"
)

// Crossing is a threshold a limit's usage went over.
type Crossing struct {
	// Threshold in percent; 0 for the budget being exceeded.
	Threshold int32
	Exceeded  bool
}

// Crossings are the thresholds (percent of amount) usage went over from before to after,
// and whether it went past the amount itself. A threshold of 100 passed with usage above
// the amount is reported only as Exceeded (one alert, not two).
func Crossings(amount int64, thresholds []int32, before, after int64) []Crossing {
	if after <= before || amount <= 0 {
		return nil
	}
	reached := func(t int32, used int64) bool { return money.ReachedPercent(used, amount, t) }
	exceeded := before <= amount && after > amount
	var out []Crossing
	ts := slices.Clone(thresholds)
	slices.Sort(ts)
	for _, t := range slices.Compact(ts) {
		if t <= 0 || reached(t, before) || !reached(t, after) {
			continue
		}
		if t == 100 && exceeded {
			continue
		}
		out = append(out, Crossing{Threshold: t})
	}
	if exceeded {
		out = append(out, Crossing{Exceeded: true})
	}
	return out
}

// OnRunSettled is the settlement hook that raises limit-threshold and budget-exceeded
// alerts, in the settlement's transaction. Settlements of the same counter serialise on
// its row, so exactly one of any number of concurrent runs sees a threshold crossed, and
// the alert's key would make a second one a no-op anyway. Minute windows (request rate
// limits) are left out: they cross their thresholds every busy minute.
func OnRunSettled(ctx context.Context, tx pgx.Tx, s runs.Settlement) error {
	var limitIDs []string
	for _, c := range s.Charges {
		if c.UsedAfter > c.UsedBefore && !slices.Contains(limitIDs, c.LimitID) {
			limitIDs = append(limitIDs, c.LimitID)
		}
	}
	if len(limitIDs) == 0 {
		return nil
	}
	rows, err := dbsqlc.New().LimitsByIDs(ctx, tx, limitIDs)
	if err != nil {
		return err
	}
	byID := map[string]dbsqlc.Limit{}
	for _, l := range rows {
		byID[l.ID] = l
	}
	for _, c := range s.Charges {
		l, ok := byID[c.LimitID]
		if !ok || !l.Enabled || l.DeletedAt != nil || l.WindowKind == limits.WindowMinute {
			continue
		}
		for _, x := range Crossings(l.Amount, l.Thresholds, c.UsedBefore, c.UsedAfter) {
			if _, _, err := Raise(ctx, tx, LimitTrigger(l, c.WindowStart, c.UsedAfter, x, s.Run.ID)); err != nil {
				return err
			}
		}
	}
	return nil
}

// LimitTrigger is the alert for a limit's crossing in a window.
func LimitTrigger(l dbsqlc.Limit, ws time.Time, used int64, x Crossing, runID string) Trigger {
	name := l.Name
	if name == "" {
		name = l.WindowKind + " " + l.Metric + " limit " + l.ID
	}
	scope := l.ScopeType + " " + l.ScopeID
	data := map[string]any{
		"limit_id": l.ID, "metric": l.Metric, "window": l.WindowKind, "window_start": ws.UTC(), "amount": l.Amount,
		"used": used, "percent": percent(used, l.Amount), "scope_type": l.ScopeType, "scope_id": l.ScopeID,
		"enforcement": l.Enforcement,
	}
	related := []events.Ref{}
	if l.ScopeType != limits.ScopeOrganization {
		related = append(related, events.Ref{Type: l.ScopeType, ID: l.ScopeID})
	}
	if runID != "" {
		related = append(related, events.Ref{Type: "run", ID: runID})
		data["run_id"] = runID
	}
	t := Trigger{OrgID: l.OrgID, Entity: events.Ref{Type: "limit", ID: l.ID}, Related: related, Data: data}
	if x.Exceeded {
		t.Kind, t.Severity, t.DedupeKey = KindBudgetExceeded, SeverityHigh, BudgetKey(l.ID, ws)
		t.Title = fmt.Sprintf("Budget exceeded: %s at %s of %s (%d%%)", name, amount(l.Metric, used), amount(l.Metric, l.Amount), percent(used, l.Amount))
		t.Body = fmt.Sprintf("Usage of the %s %s limit on %s passed its amount in the window that started %s.",
			l.WindowKind, l.Metric, scope, ws.UTC().Format("2006-01-02 15:04 MST"))
		if l.Enforcement == limits.Block {
			t.Body += " Runs that would add to it are blocked until the window resets."
		}
		return t
	}
	data["threshold"] = x.Threshold
	t.Kind, t.DedupeKey = KindLimitThreshold, ThresholdKey(l.ID, ws, x.Threshold)
	t.Severity = SeverityWarning
	if x.Threshold >= 100 {
		t.Severity = SeverityHigh
	}
	t.Title = fmt.Sprintf("%s reached %d%%: %s of %s", name, x.Threshold, amount(l.Metric, used), amount(l.Metric, l.Amount))
	t.Body = fmt.Sprintf("Usage of the %s %s limit on %s is at %d%% of its amount (alert threshold %d%%) in the window that started %s.",
		l.WindowKind, l.Metric, scope, percent(used, l.Amount), x.Threshold, ws.UTC().Format("2006-01-02 15:04 MST"))
	return t
}

func percent(used, amount int64) int64 { return money.Percent(used, amount) }

func amount(metric string, n int64) string {
	if metric == limits.MetricCost {
		return Money(n)
	}
	return fmt.Sprintf("%d %s", n, metric)
}

// OnSettlementDeadLettered is the dead-letter hook that tells people a run's settlement
// gave up: a high alert (in-app, and to external channels by the default routing), one per
// dead letter.
func OnSettlementDeadLettered(ctx context.Context, tx pgx.Tx, run dbsqlc.Run) error {
	at := time.Now()
	if run.DeadLetteredAt != nil {
		at = *run.DeadLetteredAt
	}
	_, _, err := Raise(ctx, tx, Trigger{
		OrgID: run.OrgID, Kind: KindSettlementFailed, Severity: SeverityHigh,
		DedupeKey: fmt.Sprintf("run/%s/dead_letter/%d", run.ID, at.UnixMicro()),
		Title:     fmt.Sprintf("Settlement of run %s failed and needs an operator", run.ID),
		Body: fmt.Sprintf("The settlement of run %s (agent %s) gave up after its retries: %s. Its reservation still counts "+
			"against its limits. Fix the cause, then call RunService.RetrySettlement {\"run_id\": %q}.",
			run.ID, run.AgentID, run.DeadLetterError, run.ID),
		Entity:  events.Ref{Type: "run", ID: run.ID},
		Related: []events.Ref{{Type: "agent", ID: run.AgentID}, {Type: "project", ID: run.ProjectID}},
		Data:    map[string]any{"run_id": run.ID, "error": run.DeadLetterError},
	})
	return err
}
