package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/governor-hq/governor/activities"
	"github.com/governor-hq/governor/internal/lifecycle"
)

// A settlement failing with an error retrying might fix (the database is down) is
// retried for SettleRetryWindow, then dead-lettered; an operator's retry signal settles it.
func TestRunSettlementRetriesAreBoundedThenDeadLettered(t *testing.T) {
	t.Parallel()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	start := env.Now()
	fixed := false
	var attempts int
	env.OnActivity(a.SettleRun, mock.Anything, "run_1").Return(func(context.Context, string) (activities.SettleRunResult, error) {
		attempts++
		if !fixed {
			return activities.SettleRunResult{}, errors.New("connection refused")
		}
		return activities.SettleRunResult{Settled: true, Status: "succeeded", CostMicros: 7}, nil
	})
	var deadLetteredAt time.Duration
	env.OnActivity(a.DeadLetterSettlement, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.DeadLetterSettlementInput) (bool, error) {
		deadLetteredAt = env.Now().Sub(start)
		require.Equal(t, "run_1", in.RunID)
		require.Contains(t, in.Error, "connection refused")
		env.RegisterDelayedCallback(func() {
			fixed = true
			env.SignalWorkflow(lifecycle.SignalSettlementRetry, nil)
		}, time.Hour)
		return true, nil
	}).Once()
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(lifecycle.SignalRunReported, nil) }, time.Minute)
	env.ExecuteWorkflow(RunLifecycle, runInput(15*time.Minute, start))
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var status string
	require.NoError(t, env.GetWorkflowResult(&status))
	require.Equal(t, "succeeded", status)
	// Retried for the whole window (about a minute apart at most), not forever.
	require.GreaterOrEqual(t, deadLetteredAt, SettleRetryWindow)
	require.Less(t, deadLetteredAt, SettleRetryWindow+5*time.Minute)
	require.Greater(t, attempts, int(SettleRetryWindow/time.Minute)/2)
	env.AssertExpectations(t)
}

// An error retrying cannot fix dead-letters at once.
func TestRunSettlementInvalidDeadLettersAtOnce(t *testing.T) {
	t.Parallel()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	start := env.Now()
	attempts := 0
	env.OnActivity(a.SettleRun, mock.Anything, "run_1").Return(func(context.Context, string) (activities.SettleRunResult, error) {
		attempts++
		if attempts == 1 {
			return activities.SettleRunResult{}, temporal.NewNonRetryableApplicationError("bigint out of range", activities.ErrTypeSettlementInvalid, nil)
		}
		return activities.SettleRunResult{Settled: true, Status: "failed"}, nil
	})
	env.OnActivity(a.DeadLetterSettlement, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.DeadLetterSettlementInput) (bool, error) {
		require.Equal(t, "bigint out of range", in.Error)
		require.Less(t, env.Now().Sub(start), 2*time.Minute, "no retries first")
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(lifecycle.SignalSettlementRetry, nil) }, time.Minute)
		return true, nil
	}).Once()
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(lifecycle.SignalRunReported, nil) }, time.Minute)
	env.ExecuteWorkflow(RunLifecycle, runInput(15*time.Minute, start))
	require.True(t, env.IsWorkflowCompleted())
	requireRunFailed(t, env.GetWorkflowError())
	require.Equal(t, 2, attempts)
	env.AssertExpectations(t)
}
