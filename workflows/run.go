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
}

func (w *runWorkflow) setup(ctx workflow.Context) {
	w.reported = workflow.GetSignalChannel(ctx, lifecycle.SignalRunReported)
}

func (w *runWorkflow) run(ctx workflow.Context) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		// Settlement must happen: retry for as long as it takes (the database may be down).
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	})
	deadline := w.in.LeaseExpiresAt
	for {
		w.waitForReportOrDeadline(ctx, deadline)
		var res activities.SettleRunResult
		if err := workflow.ExecuteActivity(ctx, a.SettleRun, w.in.RunID).Get(ctx, &res); err != nil {
			return "", err
		}
		if res.Settled {
			if err := workflow.UpsertTypedSearchAttributes(ctx, lifecycle.SearchStatus.ValueSet(res.Status)); err != nil {
				return "", err
			}
			workflow.GetLogger(ctx).Info("run settled", "run", w.in.RunID, "status", res.Status, "cost_micros", res.CostMicros)
			// Reports that arrived more than once (a relay retry) need no action.
			for w.reported.ReceiveAsync(nil) {
			}
			return res.Status, nil
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
