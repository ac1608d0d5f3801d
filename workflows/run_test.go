package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/governor-hq/governor/activities"
	"github.com/governor-hq/governor/internal/lifecycle"
)

func runInput(lease time.Duration, now time.Time) lifecycle.RunInput {
	return lifecycle.RunInput{OrgID: "org_1", RunID: "run_1", ProjectID: "prj_1", AgentID: "agt_1", APIKeyID: "key_1", LeaseExpiresAt: now.Add(lease)}
}

func TestRunSettlesWhenReported(t *testing.T) {
	t.Parallel()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	env.OnActivity(a.SettleRun, mock.Anything, "run_1").Return(activities.SettleRunResult{Settled: true, Status: "succeeded", CostMicros: 42}, nil).Once()
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(lifecycle.SignalRunReported, nil) }, time.Minute)
	start := env.Now()
	env.ExecuteWorkflow(RunLifecycle, runInput(15*time.Minute, start))
	require.True(t, env.IsWorkflowCompleted())
	require.Less(t, env.Now().Sub(start), 2*time.Minute, "settled at the report, not at the lease's end")
	require.NoError(t, env.GetWorkflowError())
	var status string
	require.NoError(t, env.GetWorkflowResult(&status))
	require.Equal(t, "succeeded", status)
	env.AssertExpectations(t)
}

// No report: the workflow looks again when the lease would end; a heartbeat extended it
// once, so the second look finds the run expired.
func TestRunExpiresAfterItsExtendedLease(t *testing.T) {
	t.Parallel()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	start := env.Now()
	var looks []time.Duration
	env.OnActivity(a.SettleRun, mock.Anything, "run_1").Return(func(_ context.Context, _ string) (activities.SettleRunResult, error) {
		looks = append(looks, env.Now().Sub(start))
		if len(looks) == 1 {
			return activities.SettleRunResult{LeaseExpiresAt: start.Add(25 * time.Minute)}, nil
		}
		return activities.SettleRunResult{Settled: true, Status: "expired"}, nil
	})
	env.ExecuteWorkflow(RunLifecycle, runInput(15*time.Minute, start))
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var status string
	require.NoError(t, env.GetWorkflowResult(&status))
	require.Equal(t, "expired", status)
	require.Len(t, looks, 2)
	require.InDelta(t, (15 * time.Minute).Seconds(), looks[0].Seconds(), 1)
	require.InDelta(t, (25 * time.Minute).Seconds(), looks[1].Seconds(), 1)
}

// Settlement is retried until it succeeds (the database may be down for a while).
func TestRunSettlementIsRetried(t *testing.T) {
	t.Parallel()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	calls := 0
	env.OnActivity(a.SettleRun, mock.Anything, "run_1").Return(func(_ context.Context, _ string) (activities.SettleRunResult, error) {
		calls++
		if calls < 4 {
			return activities.SettleRunResult{}, errTransient
		}
		return activities.SettleRunResult{Settled: true, Status: "failed"}, nil
	})
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(lifecycle.SignalRunReported, nil) }, time.Second)
	env.ExecuteWorkflow(RunLifecycle, runInput(time.Minute, env.Now()))
	requireRunFailed(t, env.GetWorkflowError())
	require.Equal(t, 4, calls)
}

// requireRunFailed asserts the workflow ended Failed because its run failed (and was
// settled), as operators see it in the Temporal UI.
func requireRunFailed(t *testing.T, err error) {
	t.Helper()
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	require.Equal(t, ErrTypeRunFailed, appErr.Type())
	require.True(t, appErr.NonRetryable())
}

// A failed run's workflow ends Failed, with the run's error, once it is settled.
func TestFailedRunEndsItsWorkflowFailed(t *testing.T) {
	t.Parallel()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	env.OnActivity(a.SettleRun, mock.Anything, "run_1").Return(activities.SettleRunResult{Settled: true, Status: "failed",
		ErrorCode: "tool_timeout", ErrorMessage: "search timed out"}, nil).Once()
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(lifecycle.SignalRunReported, nil) }, time.Second)
	env.ExecuteWorkflow(RunLifecycle, runInput(time.Minute, env.Now()))
	err := env.GetWorkflowError()
	requireRunFailed(t, err)
	require.Contains(t, err.Error(), "run failed: tool_timeout: search timed out")
	env.AssertExpectations(t)
}

var errTransient = transientError("database unavailable")

type transientError string

func (e transientError) Error() string { return string(e) }
