package runs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/actor"
	"github.com/governor-hq/governor/internal/authz"
	"github.com/governor-hq/governor/internal/change"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/lifecycle"
	"github.com/governor-hq/governor/internal/systemrecords"
)

// ErrNotDeadLettered: RetrySettlement was asked for a run whose settlement has not given up.
var ErrNotDeadLettered = errors.New("the run's settlement is not dead-lettered")

// DeadLetterHook runs in the transaction that dead-letters a settlement (the alert
// raises itself here).
type DeadLetterHook func(ctx context.Context, tx pgx.Tx, run dbsqlc.Run) error

// DeadLetter records that a run's settlement gave up after its retries: the run shows it
// (GetRun), the ledger and the timeline say so with the system as actor, and the hooks
// alert people. The run's reservations keep counting until an operator's retry settles
// it: releasing them without charging could let the budget overspend. Calling it again
// changes nothing. changed says whether this call dead-lettered the run; deadLettered
// whether it is dead-lettered now (false: it settled meanwhile, nothing to wait for).
func (st *Settler) DeadLetter(ctx context.Context, runID, by, cause string) (changed, deadLettered bool, err error) {
	err = pgx.BeginFunc(ctx, st.pool, func(tx pgx.Tx) error {
		q := dbsqlc.New()
		run, err := q.RunDeadLetter(ctx, tx, dbsqlc.RunDeadLetterParams{ID: runID, Error: clip(cause, 2000)})
		if errors.Is(err, pgx.ErrNoRows) {
			cur, err := q.RunGetForUpdate(ctx, tx, runID)
			if err != nil {
				return err
			}
			deadLettered = cur.DeadLetteredAt != nil
			return nil
		}
		if err != nil {
			return err
		}
		changed, deadLettered = true, true
		c := change.On(tx, change.Scope{OrgID: run.OrgID, Actor: actor.System(by)})
		if err := c.Record(ctx, "run.settlement_dead_lettered", nil, map[string]any{"error": run.DeadLetterError}, events.Event{
			Domain: events.DomainRuns, Type: "run_settlement_dead_lettered", Entity: events.Ref{Type: "run", ID: run.ID},
			Related:       []events.Ref{{Type: "agent", ID: run.AgentID}, {Type: "project", ID: run.ProjectID}, {Type: "api_key", ID: run.ApiKeyID}},
			CorrelationID: run.ID,
			Summary: fmt.Sprintf("Settlement of run %s gave up after its retries: %s. Its reservation still counts; "+
				"fix the cause and call RunService.RetrySettlement", run.ID, clip(cause, 200)),
			Data: map[string]any{"error": run.DeadLetterError, "workflow_id": lifecycle.RunWorkflowID(run.ID)},
		}); err != nil {
			return err
		}
		if err := systemrecords.Write(ctx, tx, systemrecords.Record{OrgID: run.OrgID, Kind: systemrecords.KindSettlementDeadLettered,
			Severity: systemrecords.Error, RunID: run.ID, WorkflowID: lifecycle.RunWorkflowID(run.ID),
			Message: "Settlement gave up after its retries and was dead-lettered: " + run.DeadLetterError,
			Data:    map[string]any{"error": run.DeadLetterError, "by": by}}); err != nil {
			return err
		}
		for _, h := range st.deadLetterHooks {
			if err := h(ctx, tx, run); err != nil {
				return err
			}
		}
		return nil
	})
	return changed, deadLettered, err
}

// RetrySettlement clears a run's dead letter and signals its workflow to settle again
// (through the outbox, so a crash cannot lose the signal). Audited as the caller.
func RetrySettlement(ctx context.Context, pool *pgxpool.Pool, caller authz.Principal, requestID, runID string) (dbsqlc.Run, error) {
	var out dbsqlc.Run
	err := change.Run(ctx, pool, change.Scope{OrgID: caller.OrgID, Actor: caller.Actor(), RequestID: requestID}, func(c *change.Tx) error {
		before, err := c.Q.RunGet(ctx, c.DB, dbsqlc.RunGetParams{OrgID: caller.OrgID, ID: runID})
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrRunNotFound
		}
		if err != nil {
			return err
		}
		out, err = c.Q.RunClearDeadLetter(ctx, c.DB, dbsqlc.RunClearDeadLetterParams{OrgID: caller.OrgID, ID: runID})
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotDeadLettered
		}
		if err != nil {
			return err
		}
		payload, err := json.Marshal(lifecycle.RunInput{
			OrgID: out.OrgID, RunID: out.ID, ProjectID: out.ProjectID, AgentID: out.AgentID, APIKeyID: out.ApiKeyID,
			LeaseExpiresAt: deref(out.LeaseExpiresAt),
		})
		if err != nil {
			return err
		}
		if err := c.Q.OutboxAdd(ctx, c.DB, dbsqlc.OutboxAddParams{
			OrgID: out.OrgID, Kind: "signal_with_start", WorkflowType: lifecycle.RunWorkflowType,
			WorkflowID: lifecycle.RunWorkflowID(out.ID), SignalName: lifecycle.SignalSettlementRetry, Payload: payload,
		}); err != nil {
			return err
		}
		if err := systemrecords.Write(ctx, c.DB, systemrecords.Record{OrgID: out.OrgID, Kind: systemrecords.KindSettlementRetried,
			RunID: out.ID, WorkflowID: lifecycle.RunWorkflowID(out.ID),
			Message: "Settlement retried by API key " + caller.APIKeyID + " after: " + before.DeadLetterError,
			Data:    map[string]any{"dead_letter_error": before.DeadLetterError, "api_key_id": caller.APIKeyID, "request_id": requestID}}); err != nil {
			return err
		}
		return c.Record(ctx, "run.settlement_retried", map[string]any{"dead_letter_error": before.DeadLetterError}, nil, events.Event{
			Domain: events.DomainRuns, Type: "run_settlement_retried", Entity: events.Ref{Type: "run", ID: out.ID},
			CorrelationID: out.ID, Summary: fmt.Sprintf("Settlement of run %s retried by an operator", out.ID),
		})
	})
	return out, err
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
