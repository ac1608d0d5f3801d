package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/governor-hq/governor/internal/anomaly"
	"github.com/governor-hq/governor/internal/lifecycle"
)

// AnomalyBatchResult is what a batch did.
type AnomalyBatchResult struct {
	Organizations int `json:"organizations"`
	Failed        int `json:"failed"`
	Anomalies     int `json:"anomalies"`
	Created       int `json:"created"`
}

// How many organizations a scheduled batch reads per page, and evaluates at once.
const (
	anomalyOrgPage     = 100
	anomalyParallelism = 4
)

// AnomalyBatch runs anomaly detection. Started by RunAnomalyDetection it evaluates one
// organization; started by the daily schedule, every organization (a page of them at a
// time, a few at once), each for the days it has due. One organization's failure does not
// stop the others: its run is marked failed and the batch goes on.
func AnomalyBatch(ctx workflow.Context, in lifecycle.AnomalyBatchInput) (AnomalyBatchResult, error) {
	w := &anomalyBatch{in: in}
	return w.run(ctx)
}

type anomalyBatch struct {
	in  lifecycle.AnomalyBatchInput
	res AnomalyBatchResult
}

var (
	detectOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Hour,
		// Progress is heartbeated after every page: a lost worker is noticed within this,
		// and the retry resumes from the last page.
		HeartbeatTimeout: 30 * time.Second,
		RetryPolicy:      &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute, MaximumAttempts: 8},
	}
	smallOptions = workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	}
)

func (w *anomalyBatch) run(ctx workflow.Context) (AnomalyBatchResult, error) {
	smallCtx := workflow.WithActivityOptions(ctx, smallOptions)
	wfID := workflow.GetInfo(ctx).WorkflowExecution.ID
	if w.in.OrgID != "" {
		req := anomaly.Request{OrgID: w.in.OrgID, RunID: w.in.RunID, WorkflowID: wfID, Day: w.in.Day}
		err := w.detect(ctx, req)
		status := "succeeded"
		if w.res.Failed > 0 {
			status = "failed"
		}
		if uerr := workflow.UpsertTypedSearchAttributes(ctx, lifecycle.SearchStatus.ValueSet(status)); uerr != nil {
			return w.res, uerr
		}
		return w.res, err
	}
	after := w.in.AfterOrg
	for {
		var orgs []string
		if err := workflow.ExecuteActivity(smallCtx, a.AnomalyOrgs, after, int32(anomalyOrgPage)).Get(ctx, &orgs); err != nil {
			return w.res, err
		}
		for i := 0; i < len(orgs); i += anomalyParallelism {
			wg := workflow.NewWaitGroup(ctx)
			for _, org := range orgs[i:min(i+anomalyParallelism, len(orgs))] {
				wg.Add(1)
				workflow.Go(ctx, func(gctx workflow.Context) {
					defer wg.Done()
					req := anomaly.Request{OrgID: org, WorkflowID: wfID, Scheduled: true}
					_ = w.detect(gctx, req) // failures are recorded per organization
				})
			}
			wg.Wait(ctx)
		}
		if len(orgs) < anomalyOrgPage {
			break
		}
		after = orgs[len(orgs)-1]
		if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			in := w.in
			in.AfterOrg = after
			return w.res, workflow.NewContinueAsNewError(ctx, AnomalyBatch, in)
		}
	}
	workflow.GetLogger(ctx).Info("anomaly batch done", "organizations", w.res.Organizations, "failed", w.res.Failed, "anomalies", w.res.Anomalies)
	return w.res, workflow.UpsertTypedSearchAttributes(ctx, lifecycle.SearchStatus.ValueSet("succeeded"))
}

// detect runs one organization's detection and, if it fails for good, marks its run
// failed.
func (w *anomalyBatch) detect(ctx workflow.Context, req anomaly.Request) error {
	detectCtx := workflow.WithActivityOptions(ctx, detectOptions)
	smallCtx := workflow.WithActivityOptions(ctx, smallOptions)
	var sum anomaly.Summary
	err := workflow.ExecuteActivity(detectCtx, a.DetectAnomalies, req).Get(detectCtx, &sum)
	w.res.Organizations++
	if err != nil {
		w.res.Failed++
		workflow.GetLogger(detectCtx).Error("anomaly detection failed", "org", req.OrgID, "err", err)
		return workflow.ExecuteActivity(smallCtx, a.FailAnomalyRun, req, err.Error()).Get(smallCtx, nil)
	}
	w.res.Anomalies += sum.AnomaliesFound
	w.res.Created += sum.AnomaliesCreated
	return nil
}
