package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/governor-hq/governor/internal/alerts"
)

// DeliverAlert makes the next attempt of an alert's delivery to a channel and records it
// (see alerts.Deliverer.Attempt). Receivers' failures are results, not errors: the
// workflow decides when to try again from the returned next attempt time. Errors are the
// database's (retried by Temporal). It heartbeats while the receiver takes its time, so a
// worker that dies mid-attempt is noticed within the heartbeat timeout and another one
// takes over (marking the cut-short attempt abandoned).
func (a *Activities) DeliverAlert(ctx context.Context, deliveryID string) (alerts.AttemptResult, error) {
	stop := heartbeatEvery(ctx, 2*time.Second, func() { activity.RecordHeartbeat(ctx) })
	defer stop()
	return a.deliverer.Attempt(ctx, deliveryID)
}

// heartbeatEvery calls beat every interval until the returned stop is called.
func heartbeatEvery(ctx context.Context, interval time.Duration, beat func()) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				beat()
			}
		}
	}()
	return func() { close(done) }
}
