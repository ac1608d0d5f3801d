package runs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/actor"
	"github.com/governor-hq/governor/internal/authz"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/lifecycle"
	"github.com/governor-hq/governor/internal/limits"
	"github.com/governor-hq/governor/internal/money"
	"github.com/governor-hq/governor/internal/pricing"
)

var (
	// ErrRunNotActive: the run is blocked, settled or past its lease.
	ErrRunNotActive = errors.New("run is not active")
	// ErrConflictingReport: the run's completion was already reported differently.
	ErrConflictingReport = errors.New("the run's completion was already reported with a different result")
)

// Report is how a run ended, as its client says.
type Report struct {
	Status       string // succeeded, failed, cancelled
	InputTokens  int64
	OutputTokens int64
	CostMicros   *int64 // nil: computed from tokens at settlement
	LatencyMs    int64
	ErrorCode    string
	ErrorMessage string
}

func (r Report) matches(run dbsqlc.Run) bool {
	eq := func(a *int64, b int64) bool { return a != nil && *a == b }
	sameCost := (r.CostMicros == nil && run.ReportedCostMicros == nil) ||
		(r.CostMicros != nil && run.ReportedCostMicros != nil && *r.CostMicros == *run.ReportedCostMicros)
	return run.ReportedStatus != nil && *run.ReportedStatus == r.Status && eq(run.InputTokens, r.InputTokens) &&
		eq(run.OutputTokens, r.OutputTokens) && sameCost && eq(run.LatencyMs, r.LatencyMs) &&
		run.ErrorCode == r.ErrorCode && run.ErrorMessage == r.ErrorMessage
}

// lockRun locks a run of the caller's organization that the caller may act for.
func lockRun(ctx context.Context, tx pgx.Tx, caller authz.Principal, runID string) (dbsqlc.Run, error) {
	run, err := dbsqlc.New().RunGetForUpdate(ctx, tx, runID)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && run.OrgID != caller.OrgID) {
		return run, ErrRunNotFound
	}
	if err != nil {
		return run, err
	}
	if !caller.MayActForAgent(run.ProjectID, run.AgentID) {
		return run, ErrNotPermitted
	}
	return run, nil
}

// RecordReport stores a run's completion and asks its workflow (through the outbox) to
// settle it. Reporting the same completion again changes nothing; a different one is
// refused. A run whose lease already expired is still accepted: its cost was incurred, so
// settlement records it.
func RecordReport(ctx context.Context, pool *pgxpool.Pool, caller authz.Principal, runID string, r Report) (dbsqlc.Run, error) {
	var out dbsqlc.Run
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		run, err := lockRun(ctx, tx, caller, runID)
		if err != nil {
			return err
		}
		if run.Status == "blocked" {
			return fmt.Errorf("%w: it was blocked at admission", ErrRunNotActive)
		}
		if run.ReportedAt != nil {
			if r.matches(run) {
				out = run
				return nil
			}
			return ErrConflictingReport
		}
		q := dbsqlc.New()
		if err := checkReportPriceable(ctx, tx, run, r); err != nil {
			return err
		}
		out, err = q.RunReport(ctx, tx, dbsqlc.RunReportParams{
			ID: run.ID, ReportedStatus: &r.Status, InputTokens: &r.InputTokens, OutputTokens: &r.OutputTokens,
			ReportedCostMicros: r.CostMicros, LatencyMs: &r.LatencyMs, ErrorCode: r.ErrorCode, ErrorMessage: r.ErrorMessage,
		})
		if err != nil {
			return err
		}
		payload, _ := json.Marshal(lifecycle.RunInput{
			OrgID: run.OrgID, RunID: run.ID, ProjectID: run.ProjectID, AgentID: run.AgentID, APIKeyID: run.ApiKeyID,
			LeaseExpiresAt: deref(run.LeaseExpiresAt),
		})
		return q.OutboxAdd(ctx, tx, dbsqlc.OutboxAddParams{
			OrgID: run.OrgID, Kind: "signal_with_start", WorkflowType: lifecycle.RunWorkflowType,
			WorkflowID: lifecycle.RunWorkflowID(run.ID), SignalName: lifecycle.SignalRunReported, Payload: payload,
		})
	})
	return out, err
}

// checkReportPriceable refuses a report whose tokens cannot become a cost: priced above
// the per-run maximum (InvalidArgument on the field), or, when the run holds a cost
// reservation, for a model without a price and no cost given (FailedPrecondition).
func checkReportPriceable(ctx context.Context, tx pgx.Tx, run dbsqlc.Run, r Report) error {
	if r.CostMicros != nil || r.InputTokens+r.OutputTokens == 0 {
		return nil
	}
	var prices map[string]map[string]pricing.Price
	if run.Model != "" {
		var err error
		if prices, err = pricesOf(ctx, tx, []string{run.OrgID}, []string{run.Model}); err != nil {
			return err
		}
	}
	_, priced, err := costOf("", r.InputTokens, r.OutputTokens, run.Model, prices[run.OrgID])
	if err != nil || priced {
		return err
	}
	res, err := dbsqlc.New().ReservationsOfRun(ctx, tx, run.ID)
	if err != nil {
		return err
	}
	for _, x := range res {
		if x.Metric == limits.MetricCost {
			return &UnpricedModelError{Model: run.Model, LimitID: x.LimitID, Field: "cost_micros"}
		}
	}
	return nil
}

// Heartbeat extends a run's lease (and its live reservations) to now+lease.
func Heartbeat(ctx context.Context, pool *pgxpool.Pool, caller authz.Principal, runID string, lease time.Duration) (time.Time, error) {
	var until time.Time
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		run, err := lockRun(ctx, tx, caller, runID)
		if err != nil {
			return err
		}
		now := time.Now()
		switch {
		case run.Status != "admitted" || run.ReportedAt != nil:
			return fmt.Errorf("%w: it is %s", ErrRunNotActive, statusWord(run))
		case run.LeaseExpiresAt == nil || !run.LeaseExpiresAt.After(now):
			return fmt.Errorf("%w: its lease expired at %s and its reservation no longer counts", ErrRunNotActive, run.LeaseExpiresAt.Format(time.RFC3339))
		}
		until = now.Add(lease).UTC().Truncate(time.Microsecond)
		q := dbsqlc.New()
		if _, err := q.RunExtendLease(ctx, tx, dbsqlc.RunExtendLeaseParams{ID: run.ID, LeaseExpiresAt: &until}); err != nil {
			return err
		}
		_, err = q.ReservationsExtend(ctx, tx, dbsqlc.ReservationsExtendParams{RunID: run.ID, ExpiresAt: until})
		return err
	})
	return until, err
}

func statusWord(run dbsqlc.Run) string {
	if run.ReportedAt != nil && run.Status == "admitted" {
		return "completed (" + deref(run.ReportedStatus) + "), settling"
	}
	return run.Status
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// Charge is what a settlement added to one limit counter.
type Charge struct {
	LimitID     string
	WindowStart time.Time
	Metric      string
	UsedBefore  int64
	UsedAfter   int64
}

// SettleHook runs inside the transaction that settles a run, after the run is settled:
// what it writes commits with the settlement or not at all. Incidents for failed runs and
// limit-threshold alerts hook in here.
type SettleHook func(ctx context.Context, tx pgx.Tx, s Settlement) error

// Settler settles runs and runs its hooks.
type Settler struct {
	pool            *pgxpool.Pool
	hooks           []SettleHook
	deadLetterHooks []DeadLetterHook
}

// OnDeadLetter adds hooks that run when a settlement is dead-lettered.
func (st *Settler) OnDeadLetter(h ...DeadLetterHook) {
	st.deadLetterHooks = append(st.deadLetterHooks, h...)
}

// NewSettler returns a settler with the given hooks.
func NewSettler(pool *pgxpool.Pool, hooks ...SettleHook) *Settler {
	return &Settler{pool: pool, hooks: hooks}
}

// Settlement is what Settle did.
type Settlement struct {
	// Settled is false while the run is still running (not reported, lease not expired).
	Settled bool
	Status  string
	// LeaseExpiresAt is when to look again, for a run still running.
	LeaseExpiresAt time.Time
	CostMicros     int64
	// Changed is true when this call settled the run (false when it already was).
	Changed bool
	// The run as it stands.
	Run dbsqlc.Run
	// LateReport is true when a run already settled as expired was reported afterwards.
	LateReport bool
	// Charges are the counters this settlement changed (set when Changed).
	Charges []Charge
	// By is the actor that settled the run.
	By string
}

// Settle settles a run if it can be: a reported run is charged its actual usage and its
// reservations released; a run whose lease expired unreported is released and marked
// expired; a run still within its lease is left alone. It is idempotent, and safe to call
// from any number of workflow attempts. `by` names the actor (the workflow).
func (st *Settler) Settle(ctx context.Context, runID, by string) (Settlement, error) {
	var out Settlement
	err := pgx.BeginFunc(ctx, st.pool, func(tx pgx.Tx) error {
		q := dbsqlc.New()
		run, err := q.RunGetForUpdate(ctx, tx, runID)
		if err != nil {
			return err
		}
		out.Run = run
		now := time.Now()
		lateReport := run.Status == "expired" && run.ReportedAt != nil
		if run.SettledAt != nil && !lateReport {
			out.Settled, out.Status, out.CostMicros = true, run.Status, deref(run.CostMicros)
			return nil
		}
		if run.Status == "blocked" {
			out.Settled, out.Status = true, run.Status
			return nil
		}
		reported := run.ReportedAt != nil
		if !reported && run.LeaseExpiresAt != nil && run.LeaseExpiresAt.After(now) {
			out.LeaseExpiresAt = *run.LeaseExpiresAt
			return nil
		}
		status := "expired"
		var in, outTok, cost int64
		costSource := ""
		if reported {
			status = *run.ReportedStatus
			in, outTok = max(deref(run.InputTokens), 0), max(deref(run.OutputTokens), 0)
			var prices map[string]map[string]pricing.Price
			if run.ReportedCostMicros == nil && run.Model != "" && in+outTok > 0 {
				if prices, err = pricesOf(ctx, tx, []string{run.OrgID}, []string{run.Model}); err != nil {
					return err
				}
			}
			cost, costSource = settledCost(run, in, outTok, prices[run.OrgID])
			if costSource == CostNone {
				if cost, in, outTok, costSource, err = chargeCalls(ctx, tx, run); err != nil {
					return err
				}
			}
		}
		ran := int64(0)
		if status == "succeeded" || status == "failed" {
			ran = 1
		}

		res, err := q.ReservationsOfRun(ctx, tx, run.ID)
		if err != nil {
			return err
		}
		var charges []Charge
		if len(res) > 0 {
			keys := make([]counterKey, len(res))
			for i, r := range res {
				keys[i] = counterKey{r.LimitID, r.WindowStart}
			}
			lids, wins := keyArrays(keys) // already in (limit, window) order
			if _, err := q.CountersLock(ctx, tx, dbsqlc.CountersLockParams{LimitIds: lids, WindowStarts: wins}); err != nil {
				return err
			}
			// Re-read under the counter locks: an admission may have released some of
			// them as expired in the meantime.
			if res, err = q.ReservationsOfRun(ctx, tx, run.ID); err != nil {
				return err
			}
			releases := make([]int64, len(res))
			useds := make([]int64, len(res))
			for i, r := range res {
				if !r.Released {
					releases[i] = r.Amount
				}
				switch r.Metric {
				case limits.MetricCost:
					useds[i] = cost
				case limits.MetricTokens:
					useds[i] = money.Add(in, outTok)
				case limits.MetricRuns:
					useds[i] = ran
				case limits.MetricRequests:
					// An admission granted is spent whatever happened next, once.
					if !lateReport {
						useds[i] = r.Amount
					}
				}
			}
			if err := q.ReservationsReleaseRun(ctx, tx, run.ID); err != nil {
				return err
			}
			after, err := q.CountersSettle(ctx, tx, dbsqlc.CountersSettleParams{LimitIds: lids, WindowStarts: wins, Releases: releases, Useds: useds})
			if err != nil {
				return err
			}
			for _, a := range after {
				for i, r := range res {
					if r.LimitID == a.LimitID && r.WindowStart.Equal(a.WindowStart) {
						charges = append(charges, Charge{LimitID: r.LimitID, WindowStart: r.WindowStart, Metric: r.Metric,
							UsedBefore: a.Used - useds[i], UsedAfter: a.Used})
					}
				}
			}
		}
		settled, err := q.RunSettle(ctx, tx, dbsqlc.RunSettleParams{ID: run.ID, Status: status, CostMicros: &cost, InputTokens: &in, OutputTokens: &outTok})
		if err != nil {
			return err
		}
		if reported {
			if _, err := q.CostRecordInsert(ctx, tx, dbsqlc.CostRecordInsertParams{
				OrgID: run.OrgID, ID: ids.New(ids.CostRecord), RunID: run.ID, ProjectID: run.ProjectID, AgentID: run.AgentID,
				ApiKeyID: run.ApiKeyID, Model: run.Model, Feature: run.Feature, CostMicros: cost, InputTokens: in,
				OutputTokens: outTok, RunStatus: status, LatencyMs: run.LatencyMs,
			}); err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		evType := map[string]string{"succeeded": "run_completed", "failed": "run_failed", "cancelled": "run_cancelled", "expired": "run_expired"}[status]
		summary := fmt.Sprintf("Run %s %s", run.ID, status)
		if reported {
			summary += fmt.Sprintf(": cost %s, %d tokens", Dollars(cost), money.Add(in, outTok))
		} else {
			summary += ": its lease ran out before it completed; its reservation was released"
		}
		if status == "failed" && run.ErrorCode != "" {
			summary += " (" + run.ErrorCode + ")"
		}
		if _, err := events.Emit(ctx, tx, events.Event{
			OrgID: run.OrgID, Domain: events.DomainRuns, Type: evType, Entity: events.Ref{Type: "run", ID: run.ID},
			Related:       []events.Ref{{Type: "agent", ID: run.AgentID}, {Type: "project", ID: run.ProjectID}, {Type: "api_key", ID: run.ApiKeyID}},
			CorrelationID: run.ID, Summary: summary, Actor: actor.System(by),
			Data: map[string]any{"status": status, "cost_micros": cost, "input_tokens": in, "output_tokens": outTok,
				"latency_ms": deref(run.LatencyMs), "error_code": run.ErrorCode, "error_message": run.ErrorMessage,
				"model": run.Model, "feature": run.Feature, "late_report": lateReport, "cost_source": costSource},
		}); err != nil {
			return err
		}
		out = Settlement{Settled: true, Status: status, CostMicros: cost, Changed: true, Run: settled,
			LateReport: lateReport, Charges: charges, By: by}
		for _, h := range st.hooks {
			if err := h(ctx, tx, out); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// Where a settled cost came from (the settlement event's cost_source).
const (
	CostReported = "reported" // the client's cost_micros
	CostPriced   = "priced"   // the tokens at the model's price
	CostEstimate = "estimate" // the model lost its price after the report: the estimate
	CostCapped   = "capped"   // priced above money.MaxCostMicros: charged the maximum
	CostNone     = "none"     // no cost and no tokens
)

// settledCost is what a reported run is charged, never negative and never above
// money.MaxCostMicros, whatever the stored numbers say: a settlement must always be able
// to commit. CompleteRun refuses reports that cannot be priced under a cost limit, so the
// estimate fallback only serves a price deleted between report and settlement.
func settledCost(run dbsqlc.Run, in, out int64, prices map[string]pricing.Price) (int64, string) {
	if c := run.ReportedCostMicros; c != nil {
		return min(max(*c, 0), money.MaxCostMicros), CostReported
	}
	if in+out == 0 {
		return 0, CostNone
	}
	p, ok := pricing.Lookup(prices, run.Model)
	if !ok {
		return min(max(run.EstCostMicros, 0), money.MaxCostMicros), CostEstimate
	}
	c, err := p.Cost(in, out)
	if err != nil {
		return money.MaxCostMicros, CostCapped
	}
	return c, CostPriced
}

// Dollars renders micro-dollars as people read them (money.Dollars).
func Dollars(micros int64) string { return money.Dollars(micros) }
