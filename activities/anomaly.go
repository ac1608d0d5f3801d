package activities

import (
	"context"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/governor-hq/governor/internal/anomaly"
)

// DetectAnomalies runs anomaly detection for one organization. Its progress (days rolled
// up, pages committed) is its heartbeat: a retry after a worker crash starts from the
// last committed page, not from the beginning. Pages are idempotent anyway (anomalies
// have unique keys), so a page redone after a crash between commit and heartbeat adds
// nothing.
func (a *Activities) DetectAnomalies(ctx context.Context, req anomaly.Request) (anomaly.Summary, error) {
	var p anomaly.Progress
	if activity.HasHeartbeatDetails(ctx) {
		if err := activity.GetHeartbeatDetails(ctx, &p); err != nil {
			a.log.Warn("anomaly detection: unreadable heartbeat details; starting over", "org", req.OrgID, "err", err)
			p = anomaly.Progress{}
		}
	}
	if req.WorkflowID == "" {
		req.WorkflowID = activity.GetInfo(ctx).WorkflowExecution.ID
	}
	var mu sync.Mutex
	last := p
	stop := heartbeatEvery(ctx, 5*time.Second, func() {
		mu.Lock()
		defer mu.Unlock()
		activity.RecordHeartbeat(ctx, last)
	})
	defer stop()
	return a.detector.Run(ctx, req, p, func(np anomaly.Progress) {
		mu.Lock()
		defer mu.Unlock()
		last = np
		activity.RecordHeartbeat(ctx, np)
	})
}

// AnomalyOrgs returns the next page of organizations for a scheduled batch.
func (a *Activities) AnomalyOrgs(ctx context.Context, after string, limit int32) ([]string, error) {
	return anomaly.Orgs(ctx, a.pool, after, limit)
}

// FailAnomalyRun marks an organization's run failed after its workflow gave up on it.
func (a *Activities) FailAnomalyRun(ctx context.Context, req anomaly.Request, msg string) error {
	if req.WorkflowID == "" {
		req.WorkflowID = activity.GetInfo(ctx).WorkflowExecution.ID
	}
	return anomaly.Fail(ctx, a.pool, req.OrgID, req.RunID, req.WorkflowID, msg)
}
