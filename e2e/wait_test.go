package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/governor-hq/governor/internal/lifecycle"
)

// Waits in these tests are for conditions, never for a fixed time. On a loaded 2-core
// machine (CI, with other packages' tests beside) a workflow task or a settlement can
// take many seconds, so deadlines are generous; a wait ends as soon as its condition
// holds, so they cost nothing when the machine is idle. Where a test asserts that
// something did NOT happen, it first waits for proof that whatever could have made it
// happen has run (the workflow closed, the signal was handled, the outbox row is gone).
const patience = 2 * time.Minute

// eventually polls cond until it holds or within passes. Unlike require.Eventually, it runs
// cond in the test's own goroutine, so cond may use require: a failure stops the test
// there and then instead of leaving a goroutine behind.
func eventually(t testing.TB, within time.Duration, cond func() bool, msgAndArgs ...any) {
	t.Helper()
	deadline := time.Now().Add(within)
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 250*time.Millisecond) {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			require.FailNow(t, fmt.Sprintf("condition not met within %s", within), msgAndArgs...)
		}
		// Back off between polls (10 ms up to 250 ms): quick when things are quick, light
		// on the database when they are not.
		time.Sleep(wait)
	}
}

// waitUntilClock waits until the wall clock has passed at: for scenarios that are about
// time itself (a lease running out, a window ending).
func waitUntilClock(t testing.TB, at time.Time) {
	t.Helper()
	if d := time.Until(at); d > 0 {
		require.Less(t, d, patience, "waiting for %s is longer than any test should", at)
		time.Sleep(d)
	}
	require.True(t, time.Now().After(at))
}

// history returns the events of the workflow's current run so far (nil while it does not
// exist yet).
func history(ctx context.Context, c client.Client, workflowID string) ([]*historypb.HistoryEvent, error) {
	it := c.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var out []*historypb.HistoryEvent
	for it.HasNext() {
		e, err := it.Next()
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// describe returns the workflow's description, or nil while it does not exist yet.
func describe(ctx context.Context, c client.Client, workflowID string) (*workflowDescription, error) {
	d, err := c.DescribeWorkflowExecution(ctx, workflowID, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &workflowDescription{
		status:  d.WorkflowExecutionInfo.GetStatus(),
		idle:    d.PendingWorkflowTask == nil && len(d.PendingActivities) == 0,
		pending: len(d.PendingActivities),
	}, nil
}

type workflowDescription struct {
	status  enumspb.WorkflowExecutionStatus
	idle    bool // no workflow task and no activity pending: it waits on a timer or a signal
	pending int  // activities pending
}

// waitWorkflowClosed waits until the workflow exists and has closed, and returns how.
func waitWorkflowClosed(t testing.TB, c client.Client, workflowID string) enumspb.WorkflowExecutionStatus {
	t.Helper()
	var status enumspb.WorkflowExecutionStatus
	eventually(t, patience, func() bool {
		d, err := describe(context.Background(), c, workflowID)
		require.NoError(t, err)
		if d == nil || d.status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return false
		}
		status = d.status
		return true
	}, "workflow %s closes", workflowID)
	return status
}

// waitSignalHandled waits until the workflow has received n signals called name and has
// finished reacting to the last of them: a workflow task completed after it, and no
// workflow task or activity is pending.
func waitSignalHandled(t testing.TB, c client.Client, workflowID, name string, n int) {
	t.Helper()
	ctx := context.Background()
	eventually(t, patience, func() bool {
		evs, err := history(ctx, c, workflowID)
		require.NoError(t, err)
		seen, handled := 0, false
		for _, e := range evs {
			switch e.GetEventType() {
			case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
				if e.GetWorkflowExecutionSignaledEventAttributes().GetSignalName() == name {
					seen++
					handled = false
				}
			case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
				handled = seen >= n
			}
		}
		if seen < n || !handled {
			return false
		}
		d, err := describe(ctx, c, workflowID)
		require.NoError(t, err)
		return d != nil && (d.idle || d.status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING)
	}, "workflow %s handles signal %s #%d", workflowID, name, n)
}

// waitSignalRecorded waits until the workflow's history holds n signals called name,
// whether or not any worker has processed them.
func waitSignalRecorded(t testing.TB, c client.Client, workflowID, name string, n int) {
	t.Helper()
	eventually(t, patience, func() bool {
		evs, err := history(context.Background(), c, workflowID)
		require.NoError(t, err)
		seen := 0
		for _, e := range evs {
			if e.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED &&
				e.GetWorkflowExecutionSignaledEventAttributes().GetSignalName() == name {
				seen++
			}
		}
		return seen >= n
	}, "workflow %s records signal %s #%d", workflowID, name, n)
}

// waitAsleepOnTimer waits until the workflow is running, idle, with a timer started that
// has not fired, and has not scheduled a single activity: it is waiting for its time and
// has done nothing yet.
func waitAsleepOnTimer(t testing.TB, c client.Client, workflowID string) {
	t.Helper()
	ctx := context.Background()
	eventually(t, patience, func() bool {
		evs, err := history(ctx, c, workflowID)
		require.NoError(t, err)
		timers := map[string]bool{}
		for _, e := range evs {
			switch e.GetEventType() {
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
				require.FailNow(t, "the workflow scheduled an activity", "%s: %v", workflowID, e)
			case enumspb.EVENT_TYPE_TIMER_STARTED:
				timers[e.GetTimerStartedEventAttributes().GetTimerId()] = true
			case enumspb.EVENT_TYPE_TIMER_FIRED:
				delete(timers, e.GetTimerFiredEventAttributes().GetTimerId())
			case enumspb.EVENT_TYPE_TIMER_CANCELED:
				delete(timers, e.GetTimerCanceledEventAttributes().GetTimerId())
			}
		}
		if len(timers) == 0 {
			return false
		}
		d, err := describe(ctx, c, workflowID)
		require.NoError(t, err)
		return d != nil && d.status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING && d.idle
	}, "workflow %s sleeps on a timer", workflowID)
}

// outboxRows counts the workflow starts and signals still owed to Temporal for a
// workflow id.
func (tn *tenant) outboxRows(t testing.TB, workflowID string) int {
	t.Helper()
	var n int
	require.NoError(t, tn.pool.QueryRow(context.Background(), "SELECT count(*) FROM workflow_outbox WHERE workflow_id = $1", workflowID).Scan(&n))
	return n
}

// waitDeliveriesDone waits until the alert's delivery workflow to each channel has
// completed and nothing more is owed to it in the outbox: from then on nothing can send
// that alert to those channels again.
func (tn *tenant) waitDeliveriesDone(t testing.TB, alertID string, channelIDs ...string) {
	t.Helper()
	for _, ch := range channelIDs {
		id := lifecycle.AlertDeliveryWorkflowID(alertID, ch)
		require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, waitWorkflowClosed(t, tn.temporal, id), id)
		require.Zero(t, tn.outboxRows(t, id), "nothing more owed to %s", id)
	}
}
