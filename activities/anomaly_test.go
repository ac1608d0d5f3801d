package activities

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"

	"github.com/governor-hq/governor/api"
	"github.com/governor-hq/governor/internal/anomaly"
	"github.com/governor-hq/governor/internal/testenv"
)

// DetectAnomalies heartbeats its progress and, retried with heartbeat details (as
// Temporal retries it after a worker crash), resumes from them instead of starting over.
func TestDetectAnomaliesHeartbeatsProgressAndResumesFromIt(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.FreshDB(t)
	res, err := api.Bootstrap(context.Background(), pool, "test", api.BootstrapInput{OrgName: "acts", AdminEmail: "a@example.com"})
	require.NoError(t, err)
	acts := New(pool, slog.Default(), Options{})
	req := anomaly.Request{OrgID: res.Organization.Id, WorkflowID: "wf-acts"}

	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	var mu sync.Mutex
	var beats []anomaly.Progress
	env.SetOnActivityHeartbeatListener(func(_ *activity.Info, d converter.EncodedValues) {
		var p anomaly.Progress
		if d.HasValues() && d.Get(&p) == nil {
			mu.Lock()
			beats = append(beats, p)
			mu.Unlock()
		}
	})
	v, err := env.ExecuteActivity(acts.DetectAnomalies, req)
	require.NoError(t, err)
	var first anomaly.Summary
	require.NoError(t, v.Get(&first))
	require.Equal(t, 29, first.DaysRolledUp)
	require.NotEmpty(t, beats, "progress is heartbeated")
	require.Equal(t, first.RunID, beats[0].RunID, "from the first step on")

	// A retry that finds the work done in its heartbeat does none of it again.
	retry := s.NewTestActivityEnvironment()
	retry.RegisterActivity(acts)
	retry.SetHeartbeatDetails(anomaly.Progress{RunID: first.RunID, Days: first.Days, DayIndex: len(first.Days), Pages: 7, BudgetsDone: true})
	v, err = retry.ExecuteActivity(acts.DetectAnomalies, req)
	require.NoError(t, err)
	var resumed anomaly.Summary
	require.NoError(t, v.Get(&resumed))
	require.Equal(t, first.RunID, resumed.RunID)
	require.Zero(t, resumed.DaysRolledUp)
	require.Equal(t, 7, resumed.Pages, "picked up where the heartbeat left off")
}
