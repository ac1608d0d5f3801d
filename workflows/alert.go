package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/governor-hq/governor/internal/alerts"
	"github.com/governor-hq/governor/internal/lifecycle"
)

// AlertDelivery delivers one alert to one channel (workflow ID "alert/<alert>/<channel>").
// Each attempt is an activity that records itself and says when to try again: exponential
// backoff, or the receiver's Retry-After, until the channel's retry period ends. The
// workflow only waits between attempts, so a worker lost mid-attempt costs one attempt
// (heartbeat timeout, then another worker retries it), never the delivery. It ends when
// the delivery is delivered or failed; RedeliverAlert starts it again with a signal.
func AlertDelivery(ctx workflow.Context, in lifecycle.AlertDeliveryInput) (string, error) {
	w := &alertDelivery{in: in}
	w.setup(ctx)
	return w.run(ctx)
}

type alertDelivery struct {
	in        lifecycle.AlertDeliveryInput
	redeliver workflow.ReceiveChannel
	status    string
}

func (w *alertDelivery) setup(ctx workflow.Context) {
	w.redeliver = workflow.GetSignalChannel(ctx, lifecycle.SignalAlertRedeliver)
}

func (w *alertDelivery) run(ctx workflow.Context) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// The receiver has 15 s; the rest is the database.
		StartToCloseTimeout: alerts.DeliveryTimeout + 15*time.Second,
		HeartbeatTimeout:    10 * time.Second,
		// Errors here are the database's: retry for as long as it takes.
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	})
	if !w.in.NotBefore.IsZero() {
		w.waitUntil(ctx, w.in.NotBefore)
	}
	for {
		var res alerts.AttemptResult
		if err := workflow.ExecuteActivity(ctx, a.DeliverAlert, w.in.DeliveryID).Get(ctx, &res); err != nil {
			return "", err
		}
		if err := w.setStatus(ctx, res); err != nil {
			return "", err
		}
		if res.Done {
			// A redelivery requested while this attempt ran: go again.
			if w.redeliver.ReceiveAsync(nil) {
				for w.redeliver.ReceiveAsync(nil) {
				}
				continue
			}
			workflow.GetLogger(ctx).Info("alert delivery done", "delivery", w.in.DeliveryID, "status", res.Status, "attempts", res.Attempt)
			return res.Status, nil
		}
		if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			in := w.in
			in.NotBefore = res.NextAttemptAt
			return "", workflow.NewContinueAsNewError(ctx, AlertDelivery, in)
		}
		w.waitUntil(ctx, res.NextAttemptAt)
	}
}

// waitUntil sleeps until t, or until a redelivery signal asks for an attempt now.
func (w *alertDelivery) waitUntil(ctx workflow.Context, t time.Time) {
	d := t.Sub(workflow.Now(ctx))
	if d <= 0 {
		return
	}
	timerCtx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	sel := workflow.NewSelector(ctx)
	sel.AddFuture(workflow.NewTimer(timerCtx, d), func(workflow.Future) {})
	sel.AddReceive(w.redeliver, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
	sel.Select(ctx)
}

// setStatus mirrors the delivery's status into the GovernorStatus search attribute:
// pending, retrying, delivered or failed.
func (w *alertDelivery) setStatus(ctx workflow.Context, res alerts.AttemptResult) error {
	status := res.Status
	if status == alerts.StatusPending && res.Attempt > 0 {
		status = "retrying"
	}
	if status == "" || status == w.status {
		return nil
	}
	w.status = status
	return workflow.UpsertTypedSearchAttributes(ctx, lifecycle.SearchStatus.ValueSet(status))
}
