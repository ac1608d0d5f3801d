package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/lifecycle"
	"github.com/governor-hq/governor/workers"
	"github.com/governor-hq/governor/workflows"
)

// Records one history per path through the alert delivery and anomaly batch workflows
// (replayed by workflows/replay_test.go): a delivery retried after a 503, and one
// organization's on-demand detection.
func TestRecordAlertAndAnomalyHistories(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	hook := newReceiver(t)
	hook.respond(http.StatusServiceUnavailable, "")
	ch := tn.webhookChannel(t, hook, "recorded endpoint", nil)
	id := raise(t, tn, incidentTrigger(1))
	eventually(t, patience, func() bool { return len(hook.all()) >= 1 })
	hook.respond(http.StatusOK, "")
	hook.waitSuccesses(1)
	keepHistory(t, "alert_delivery_retried", historyOf(t, tn, lifecycle.AlertDeliveryWorkflowID(id, ch.Id)))

	run := runDetection(t, tn, "")
	keepHistory(t, "anomaly_batch_org", historyOf(t, tn, run.WorkflowId))
}

// The worker creates the daily anomaly batch's Temporal Schedule (overlap Skip, an
// explicit catch-up window) and brings it to its options when started again; triggered,
// the schedule runs the batch over every organization, which finds what is due.
func TestWorkerCreatesTheDailyAnomalyScheduleIdempotently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn, _, queue := ownStack(t, func(d *workers.Deps) {
		d.AnomalySchedule = workflows.AnomalyScheduleOptions{Cron: "15 0 * * *", Catchup: 2 * time.Hour}
	})
	h := tn.temporal.ScheduleClient().GetHandle(ctx, lifecycle.AnomalyScheduleID(queue))
	var desc *client.ScheduleDescription
	eventually(t, patience, func() bool {
		var err error
		desc, err = h.Describe(ctx)
		return err == nil
	})
	require.Equal(t, enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, desc.Schedule.Policy.Overlap)
	require.Equal(t, 2*time.Hour, desc.Schedule.Policy.CatchupWindow)
	cal := desc.Schedule.Spec.Calendars // the server keeps cron expressions as calendars
	require.Len(t, cal, 1)
	require.Equal(t, 15, cal[0].Minute[0].Start)
	require.Equal(t, 0, cal[0].Hour[0].Start)
	require.Equal(t, 0, cal[0].Hour[0].End)
	action := desc.Schedule.Action.(*client.ScheduleWorkflowAction)
	require.Equal(t, lifecycle.AnomalyBatchWorkflowType, action.Workflow)
	require.Equal(t, queue, action.TaskQueue)

	// Another worker start with other options updates the same schedule.
	for range 2 {
		require.NoError(t, workflows.EnsureAnomalySchedule(ctx, tn.temporal, workflows.AnomalyScheduleOptions{TaskQueue: queue, Cron: "0 * * * *", Catchup: 3 * time.Hour}))
	}
	desc, err := h.Describe(ctx)
	require.NoError(t, err)
	require.Equal(t, 3*time.Hour, desc.Schedule.Policy.CatchupWindow)
	cal = desc.Schedule.Spec.Calendars
	require.Len(t, cal, 1)
	require.Equal(t, 0, cal[0].Minute[0].Start)
	require.Equal(t, 23, cal[0].Hour[0].End, "hourly now")
	require.Equal(t, enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, desc.Schedule.Policy.Overlap)

	// Something due: a budget gone over.
	ag := tn.newAgent(t, "spender")
	tn.createLimit(t, &v1.CreateLimitRequest{Name: "tiny budget", Scope: orgScope(), Metric: v1.LimitMetric_LIMIT_METRIC_COST,
		Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 10 * dollar})
	spend(t, tn, ag, 12*dollar)
	require.NoError(t, h.Trigger(ctx, client.ScheduleTriggerOptions{}))
	var run *v1.AnomalyDetectionRun
	eventually(t, patience, func() bool {
		r, err := tn.admin.anomalies.ListAnomalyDetectionRuns(ctx, connect.NewRequest(&v1.ListAnomalyDetectionRunsRequest{}))
		require.NoError(t, err)
		if len(r.Msg.Runs) == 0 {
			return false
		}
		run = r.Msg.Runs[0]
		return run.Status == v1.AnomalyRunStatus_ANOMALY_RUN_STATUS_SUCCEEDED
	})
	require.Equal(t, "schedule", run.Trigger)
	require.Len(t, run.Days, 1)
	require.Equal(t, time.Now().UTC().AddDate(0, 0, -1).Format("2006-01-02"), run.Days[0])
	require.EqualValues(t, 1, run.AnomaliesCreated)
	require.Regexp(t, `^anomaly-batch-`, run.WorkflowId)
	keepHistory(t, "anomaly_batch_scheduled", historyOf(t, tn, run.WorkflowId))
}
