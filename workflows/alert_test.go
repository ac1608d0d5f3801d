package workflows

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/governor-hq/governor/activities"
	"github.com/governor-hq/governor/internal/alerts"
	"github.com/governor-hq/governor/internal/anomaly"
	"github.com/governor-hq/governor/internal/lifecycle"
)

// The workflow waits exactly as long as each attempt says (backoff, Retry-After), days if
// need be, and ends when the delivery is done.
func TestAlertDeliveryWaitsBetweenAttemptsForAsLongAsItTakes(t *testing.T) {
	t.Parallel()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	start := env.Now()
	var calls []time.Time
	waits := []time.Duration{5 * time.Second, time.Hour, 20 * time.Hour} // then delivered, a day later
	env.OnActivity(a.DeliverAlert, mock.Anything, "dlv_1").Return(func(context.Context, string) (alerts.AttemptResult, error) {
		now := env.Now()
		calls = append(calls, now)
		if len(calls) <= len(waits) {
			return alerts.AttemptResult{Status: alerts.StatusPending, Attempt: int32(len(calls)), NextAttemptAt: now.Add(waits[len(calls)-1])}, nil
		}
		return alerts.AttemptResult{Done: true, Status: alerts.StatusDelivered, Attempt: int32(len(calls))}, nil
	})
	env.ExecuteWorkflow(AlertDelivery, lifecycle.AlertDeliveryInput{DeliveryID: "dlv_1", AlertID: "alr_1", ChannelID: "chn_1"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var status string
	require.NoError(t, env.GetWorkflowResult(&status))
	require.Equal(t, alerts.StatusDelivered, status)
	require.Len(t, calls, 4)
	for i, w := range waits {
		require.GreaterOrEqual(t, calls[i+1].Sub(calls[i]), w)
	}
	require.GreaterOrEqual(t, calls[3].Sub(start), 21*time.Hour)
}

// A digest waits for its send time before its first attempt; a redelivery signal wakes a
// waiting workflow at once, and one that arrives as a delivery gives up sends it again.
func TestAlertDeliveryDigestWaitsAndRedeliverySignalWakesIt(t *testing.T) {
	t.Parallel()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	sendAt := env.Now().Add(time.Hour)
	var calls []time.Time
	env.OnActivity(a.DeliverAlert, mock.Anything, "dlv_d").Return(func(context.Context, string) (alerts.AttemptResult, error) {
		calls = append(calls, env.Now())
		switch len(calls) {
		case 1:
			return alerts.AttemptResult{Status: alerts.StatusPending, Attempt: 1, NextAttemptAt: env.Now().Add(48 * time.Hour)}, nil
		case 2:
			// Gave up; the redelivery below arrives while this attempt runs.
			env.SignalWorkflow(lifecycle.SignalAlertRedeliver, "dlv_d")
			return alerts.AttemptResult{Done: true, Status: alerts.StatusFailed, Attempt: 2}, nil
		}
		return alerts.AttemptResult{Done: true, Status: alerts.StatusDelivered, Attempt: 3}, nil
	})
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(lifecycle.SignalAlertRedeliver, "dlv_d") }, 2*time.Hour)
	env.ExecuteWorkflow(AlertDelivery, lifecycle.AlertDeliveryInput{DeliveryID: "dlv_d", Kind: alerts.KindDigest, NotBefore: sendAt})
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, calls, 3)
	require.False(t, calls[0].Before(sendAt), "not before the digest's time")
	require.Less(t, calls[1].Sub(calls[0]), 2*time.Hour, "woken by the signal, not after 48 h")
	var status string
	require.NoError(t, env.GetWorkflowResult(&status))
	require.Equal(t, alerts.StatusDelivered, status)
}

// A scheduled batch pages through every organization; one organization's failure is
// recorded against its run and does not stop the others.
func TestAnomalyBatchPagesThroughOrganizationsAndIsolatesFailures(t *testing.T) {
	t.Parallel()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	var orgs []string
	for i := range 130 {
		orgs = append(orgs, "org_"+string(rune('a'+i/26))+string(rune('a'+i%26)))
	}
	env.OnActivity(a.AnomalyOrgs, mock.Anything, mock.Anything, int32(100)).Return(func(_ context.Context, after string, n int32) ([]string, error) {
		i := 0
		for i < len(orgs) && orgs[i] <= after {
			i++
		}
		return orgs[i:min(i+int(n), len(orgs))], nil
	})
	var mu sync.Mutex // activities of different organizations run at once
	detected := map[string]int{}
	env.OnActivity(a.DetectAnomalies, mock.Anything, mock.Anything).Return(func(_ context.Context, req anomaly.Request) (anomaly.Summary, error) {
		mu.Lock()
		defer mu.Unlock()
		detected[req.OrgID]++
		if !req.Scheduled {
			return anomaly.Summary{}, errors.New("not scheduled")
		}
		if req.OrgID == "org_bb" {
			return anomaly.Summary{}, errors.New("boom")
		}
		return anomaly.Summary{AnomaliesFound: 1, AnomaliesCreated: 1}, nil
	})
	var failed []string
	env.OnActivity(a.FailAnomalyRun, mock.Anything, mock.Anything, mock.Anything).Return(func(_ context.Context, req anomaly.Request, _ string) error {
		mu.Lock()
		defer mu.Unlock()
		failed = append(failed, req.OrgID)
		return nil
	})
	env.ExecuteWorkflow(AnomalyBatch, lifecycle.AnomalyBatchInput{})
	require.NoError(t, env.GetWorkflowError())
	var res AnomalyBatchResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, 130, res.Organizations)
	require.Equal(t, 1, res.Failed)
	require.Equal(t, 129, res.Created)
	require.Len(t, detected, 130)
	require.Equal(t, 8, detected["org_bb"], "retried (8 attempts) before giving up")
	require.Equal(t, []string{"org_bb"}, failed)
}
