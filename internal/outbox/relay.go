// Package outbox relays workflow starts and signals from the workflow_outbox table to
// Temporal. Rows are written in the same transaction as the decision that owes them, so
// a process that dies after committing a decision leaves its row for any relay (in any
// API or worker process) to deliver. Delivery is idempotent: workflow IDs are fixed, an
// already running workflow is not started twice.
package outbox

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/lifecycle"
)

// Relay delivers outbox rows.
type Relay struct {
	pool      *pgxpool.Pool
	temporal  client.Client
	taskQueue string
	log       *slog.Logger
	wake      chan struct{}
	// Poll is how often the relay looks for rows nobody woke it for (rows of another
	// process, rows whose delivery failed); default 1s.
	Poll time.Duration
	// Parallel bounds concurrent deliveries; default 16.
	Parallel int
	// LagAfter is how old a row may be when claimed before the relay records that it is
	// behind (a system record per organization, at most once a LagEvery); default 1 min.
	LagAfter, LagEvery time.Duration
	lagNoted           time.Time
}

// New returns a relay; call Run.
func New(pool *pgxpool.Pool, c client.Client, taskQueue string, log *slog.Logger) *Relay {
	return &Relay{pool: pool, temporal: c, taskQueue: taskQueue, log: log, wake: make(chan struct{}, 1), Poll: time.Second, Parallel: 16,
		LagAfter: time.Minute, LagEvery: time.Minute}
}

// Notify wakes the relay (after a commit that wrote rows).
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

const claimFor = 30 * time.Second

// Run delivers until ctx ends.
func (r *Relay) Run(ctx context.Context) {
	q := dbsqlc.New()
	for {
		rows, err := q.OutboxClaim(ctx, r.pool, dbsqlc.OutboxClaimParams{ClaimSeconds: claimFor.Seconds(), Max: 256})
		if err != nil && ctx.Err() == nil {
			r.log.Warn("outbox claim failed", "err", err)
		}
		if len(rows) > 0 {
			r.noticeLag(ctx, rows, time.Now())
			r.deliverAll(ctx, rows)
			if len(rows) == 256 {
				continue // more may be waiting
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-time.After(r.Poll):
		}
	}
}

func (r *Relay) deliverAll(ctx context.Context, rows []dbsqlc.WorkflowOutbox) {
	sem := make(chan struct{}, r.Parallel)
	var wg sync.WaitGroup
	q := dbsqlc.New()
	for _, row := range rows {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := r.deliver(ctx, row)
			// The bookkeeping must happen even as the process shuts down.
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err == nil {
				r.recordStart(bctx, row)
				if err := q.OutboxDone(bctx, r.pool, row.ID); err != nil {
					r.log.Warn("outbox row delivered but not deleted; it will be delivered again (harmlessly)", "id", row.ID, "err", err)
				}
				return
			}
			delay := min(time.Duration(1<<min(row.Attempts, 8))*time.Second, 5*time.Minute)
			r.log.Warn("outbox delivery failed; will retry", "workflow_id", row.WorkflowID, "kind", row.Kind, "attempt", row.Attempts, "in", delay, "err", err)
			_ = q.OutboxRetryLater(bctx, r.pool, dbsqlc.OutboxRetryLaterParams{ID: row.ID, DelaySeconds: delay.Seconds(), LastError: err.Error()})
		})
	}
	wg.Wait()
}

func (r *Relay) deliver(ctx context.Context, row dbsqlc.WorkflowOutbox) error {
	start, err := lifecycle.DecodeStart(row.WorkflowType, row.Payload)
	if err != nil {
		return err
	}
	opts := client.StartWorkflowOptions{
		ID:                    row.WorkflowID,
		TaskQueue:             r.taskQueue,
		TypedSearchAttributes: start.SearchAttributes,
	}
	switch row.Kind {
	case "start":
		// Started once: a workflow that is running or already finished is not started again.
		opts.WorkflowIDReusePolicy = enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE
		opts.WorkflowIDConflictPolicy = enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING
		_, err = r.temporal.ExecuteWorkflow(ctx, opts, row.WorkflowType, start.Input)
		var already *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &already) {
			return nil
		}
		return err
	case "signal_with_start":
		// A finished workflow is started anew to handle the signal (a late report).
		opts.WorkflowIDReusePolicy = enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
		var arg any
		if row.SignalArg != "" {
			arg = row.SignalArg
		}
		_, err = r.temporal.SignalWithStartWorkflow(ctx, row.WorkflowID, row.SignalName, arg, opts, row.WorkflowType, start.Input)
		return err
	}
	return errors.New("unknown outbox row kind " + row.Kind)
}
