// Package workflows holds Governor's Temporal workflows: deterministic functions that
// drive the durable lifecycles, with every side effect in an activity.
package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/governor-hq/governor/activities"
	"github.com/governor-hq/governor/internal/lifecycle"
)

// The activities, referred to by method value on a nil pointer (the worker holds the
// real one).
var a *activities.Activities

// RunLifecycle owns one admitted run from admission to settlement. It waits until the
// run's completion is reported or its lease runs out, then settles it: releases its
// reservations, records its cost, updates usage and emits the run's closing event. A
// lease extended by heartbeats is noticed when the old one would have ended.
func RunLifecycle(ctx workflow.Context, in lifecycle.RunInput) (string, error) {
	w := &runWorkflow{in: in}
	w.setup(ctx)
	return w.run(ctx)
}

type runWorkflow struct {
	in       lifecycle.RunInput
	reported workflow.ReceiveChannel
	retry    workflow.ReceiveChannel
}

func (w *runWorkflow) setup(ctx workflow.Context) {
	w.reported = workflow.GetSignalChannel(ctx, lifecycle.SignalRunReported)
	w.retry = workflow.GetSignalChannel(ctx, lifecycle.SignalSettlementRetry)
}

// Versions of the run workflow (workflow.GetVersion), so that runs started by an older
// binary replay unchanged.
const (
	runVersionChange = "settle-dead-letter"
	// runVersionDeadLetter bounds settlement retries and dead-letters what cannot settle.
	runVersionDeadLetter workflow.Version = 1
)

// SettleRetryWindow is how long a settlement is retried (a database outage, a lock held
// too long) before it is dead-lettered. Errors that retrying cannot fix dead-letter at
// once.
const SettleRetryWindow = 6 * time.Hour

func (w *runWorkflow) run(ctx workflow.Context) (string, error) {
	if workflow.GetVersion(ctx, runVersionChange, workflow.DefaultVersion, runVersionDeadLetter) == workflow.DefaultVersion {
		return w.runUnbounded(ctx)
	}
	settleCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: SettleRetryWindow,
		// Bounded by the window; the attempt cap (more than the window holds at one a
		// minute) only makes the bound explicit.
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
			MaximumAttempts: 1000, NonRetryableErrorTypes: []string{activities.ErrTypeSettlementInvalid}},
	})
	// Recording the dead letter is a small write; it is retried for as long as it takes.
	recordCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute},
	})
	deadline := w.in.LeaseExpiresAt
	settleNow := false
	for {
		if !settleNow {
			w.waitForReportOrDeadline(ctx, deadline)
		}
		settleNow = false
		var res activities.SettleRunResult
		err := workflow.ExecuteActivity(settleCtx, a.SettleRun, w.in.RunID).Get(ctx, &res)
		if err != nil {
			if ctx.Err() != nil {
				return "", err
			}
			if err := w.deadLetter(ctx, recordCtx, err); err != nil {
				return "", err
			}
			settleNow = true
			continue
		}
		if res.Settled {
			return w.settled(ctx, res)
		}
		deadline = res.LeaseExpiresAt
		if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			in := w.in
			in.LeaseExpiresAt = deadline
			return "", workflow.NewContinueAsNewError(ctx, RunLifecycle, in)
		}
	}
}

// deadLetter records a settlement that gave up, shows it in the Temporal UI
// (GovernorStatus = "dead_letter") and waits for an operator's retry signal.
func (w *runWorkflow) deadLetter(ctx, recordCtx workflow.Context, cause error) error {
	msg := cause.Error()
	var appErr *temporal.ApplicationError
	if errors.As(cause, &appErr) {
		msg = appErr.Message()
	}
	workflow.GetLogger(ctx).Error("run settlement dead-lettered", "run", w.in.RunID, "err", msg)
	in := activities.DeadLetterSettlementInput{RunID: w.in.RunID, Error: msg}
	var deadLettered bool
	if err := workflow.ExecuteActivity(recordCtx, a.DeadLetterSettlement, in).Get(ctx, &deadLettered); err != nil {
		return err
	}
	if !deadLettered {
		return nil // settled meanwhile: the next attempt finds it settled
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, lifecycle.SearchStatus.ValueSet(lifecycle.RunStatusDeadLetter)); err != nil {
		return err
	}
	w.retry.Receive(ctx, nil)
	for w.retry.ReceiveAsync(nil) { // retries sent together count once
	}
	return workflow.UpsertTypedSearchAttributes(ctx, lifecycle.SearchStatus.ValueSet("admitted"))
}

func (w *runWorkflow) settled(ctx workflow.Context, res activities.SettleRunResult) (string, error) {
	if err := workflow.UpsertTypedSearchAttributes(ctx, lifecycle.SearchStatus.ValueSet(res.Status)); err != nil {
		return "", err
	}
	workflow.GetLogger(ctx).Info("run settled", "run", w.in.RunID, "status", res.Status, "cost_micros", res.CostMicros)
	// Reports that arrived more than once (a relay retry) need no action.
	for w.reported.ReceiveAsync(nil) {
	}
	if res.Status == "failed" && workflow.GetVersion(ctx, runVersionFailedChange, workflow.DefaultVersion, runVersionFailedFails) >= runVersionFailedFails {
		// A failed run's workflow ends Failed, so operators find failed runs in the Temporal
		// UI by its own status filter (ExecutionStatus = "Failed"), with the run's error as
		// the failure. It is settled: nothing retries it.
		msg := "run failed"
		if res.ErrorCode != "" {
			msg += ": " + res.ErrorCode
		}
		if res.ErrorMessage != "" {
			msg += ": " + res.ErrorMessage
		}
		return "", temporal.NewNonRetryableApplicationError(msg, ErrTypeRunFailed, nil, res.ErrorCode)
	}
	return res.Status, nil
}

// ErrTypeRunFailed is the failure type a failed run's workflow ends with.
const ErrTypeRunFailed = "RunFailed"

// runVersionFailedFails makes a failed run's workflow end Failed instead of Completed.
const (
	runVersionFailedChange                  = "failed-run-fails-workflow"
	runVersionFailedFails  workflow.Version = 1
)

// runUnbounded is the run workflow as it was before runVersionDeadLetter: settlement is
// retried for as long as it takes. Runs started by older binaries finish this way.
func (w *runWorkflow) runUnbounded(ctx workflow.Context) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	})
	deadline := w.in.LeaseExpiresAt
	for {
		w.waitForReportOrDeadline(ctx, deadline)
		var res activities.SettleRunResult
		if err := workflow.ExecuteActivity(ctx, a.SettleRun, w.in.RunID).Get(ctx, &res); err != nil {
			return "", err
		}
		if res.Settled {
			return w.settled(ctx, res)
		}
		deadline = res.LeaseExpiresAt
		if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			in := w.in
			in.LeaseExpiresAt = deadline
			return "", workflow.NewContinueAsNewError(ctx, RunLifecycle, in)
		}
	}
}

// waitForReportOrDeadline returns when a report signal arrives or the lease deadline
// passes, whichever is first.
func (w *runWorkflow) waitForReportOrDeadline(ctx workflow.Context, deadline time.Time) {
	timerCtx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	wait := max(deadline.Sub(workflow.Now(ctx)), 0)
	timer := workflow.NewTimer(timerCtx, wait)
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(w.reported, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
	sel.AddFuture(timer, func(workflow.Future) {})
	sel.Select(ctx)
}

func asApplicationError(err error, target **temporal.ApplicationError) bool {
	return errors.As(err, target)
}
