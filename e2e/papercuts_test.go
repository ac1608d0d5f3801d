package e2e

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/types/known/durationpb"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/lifecycle"
	"github.com/governor-hq/governor/workflows"
)

// CompleteRun says the run is settling instead of "admitted", and can wait for the
// settlement so a caller does not have to poll GetRun.
func TestCompleteRunSaysSettlingAndCanWaitForSettlement(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "reporter")
	ctx := context.Background()

	run, err := admit(t, ag.ingest, ag.agentID, dollar)
	require.NoError(t, err)
	cost := int64(700_000)
	resp, err := ag.ingest.runs.CompleteRun(ctx, connect.NewRequest(&v1.CompleteRunRequest{RunId: run.Id,
		Status: v1.RunStatus_RUN_STATUS_SUCCEEDED, CostMicros: &cost}))
	require.NoError(t, err)
	require.Equal(t, v1.RunStatus_RUN_STATUS_SETTLING, resp.Msg.Run.Status)
	require.False(t, resp.Msg.Settled)
	settling, err := tn.admin.runs.ListRuns(ctx, connect.NewRequest(&v1.ListRunsRequest{Statuses: []v1.RunStatus{v1.RunStatus_RUN_STATUS_ADMITTED}}))
	require.NoError(t, err)
	for _, r := range settling.Msg.Runs {
		require.NotEqual(t, run.Id, r.Id, "a reported run is not listed as admitted")
	}
	waitSettled(t, tn.admin, run.Id)

	run2, err := admit(t, ag.ingest, ag.agentID, dollar)
	require.NoError(t, err)
	start := time.Now()
	resp, err = ag.ingest.runs.CompleteRun(ctx, connect.NewRequest(&v1.CompleteRunRequest{RunId: run2.Id,
		Status: v1.RunStatus_RUN_STATUS_SUCCEEDED, CostMicros: &cost, WaitForSettlement: durationpb.New(60 * time.Second)}))
	require.NoError(t, err)
	t.Logf("CompleteRun with wait_for_settlement answered settled after %s", time.Since(start))
	require.True(t, resp.Msg.Settled)
	require.Equal(t, v1.RunStatus_RUN_STATUS_SUCCEEDED, resp.Msg.Run.Status)
	require.EqualValues(t, cost, resp.Msg.Run.Actual.CostMicros)
	require.NotNil(t, resp.Msg.Run.SettleTime)

	_, err = ag.ingest.runs.CompleteRun(ctx, connect.NewRequest(&v1.CompleteRunRequest{RunId: run2.Id,
		Status: v1.RunStatus_RUN_STATUS_SUCCEEDED, CostMicros: &cost, WaitForSettlement: durationpb.New(61 * time.Second)}))
	requireInvalidField(t, err, "wait_for_settlement")
}

// Refusals name the limit by its name and write money one way.
func TestRefusalsNameTheLimitAndFormatMoneyOneWay(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "named")
	lim := tn.createLimit(t, &v1.CreateLimitRequest{Name: "daily spend", Scope: orgScope(),
		Metric: v1.LimitMetric_LIMIT_METRIC_COST, Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 10 * dollar})
	_, err := admit(t, ag.ingest, ag.agentID, 12_500_000)
	blockedDetail(t, err)
	require.Contains(t, err.Error(), `limit "daily spend" (`+lim.Id+`) of $10.00`)
	require.Contains(t, err.Error(), "this run needs $12.50")
}

// In the Temporal UI a failed run's workflow is Failed (found without Governor's own
// attributes) and an incident's workflow is found by the incident's id.
func TestTemporalUIFindsFailedRunsAndIncidentsByID(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "fails")
	ctx := context.Background()
	run := fail(t, tn, ag, "tool_timeout", "search timed out after 30s", dollar, "gpt-4o", "search")
	eventually(t, patience, func() bool {
		d, err := tn.temporal.DescribeWorkflowExecution(ctx, lifecycle.RunWorkflowID(run.Id), "")
		return err == nil && d.WorkflowExecutionInfo.Status == enums.WORKFLOW_EXECUTION_STATUS_FAILED
	}, "the failed run's workflow ends Failed")
	err := tn.temporal.GetWorkflow(ctx, lifecycle.RunWorkflowID(run.Id), "").Get(ctx, nil)
	require.Error(t, err)
	require.Contains(t, err.Error(), "run failed: tool_timeout")
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	require.Equal(t, workflows.ErrTypeRunFailed, appErr.Type())

	inc := incidentOf(t, tn.admin, run.Id)
	eventually(t, patience, func() bool {
		return workflowAttr(tn.temporal, inc.WorkflowId, lifecycle.SearchIncident.GetName()) == inc.Id
	}, "the incident's workflow carries GovernorIncident")
}
