package workflows

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/governor-hq/governor/activities"
	"github.com/governor-hq/governor/internal/lifecycle"
)

// Histories recorded from real runs of the workflows (by the e2e package with
// GOVERNOR_UPDATE_HISTORIES=1) must replay against the current code: a change that would
// break running workflows fails here, in CI.
func TestReplayRecordedHistories(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files, "no recorded histories in workflows/testdata")
	for _, f := range files {
		replayer := worker.NewWorkflowReplayer()
		Register(replayer)
		require.NoError(t, replayer.ReplayWorkflowHistoryFromJSONFile(nil, f), f)
	}
}

// The replay test is only worth having if it catches a non-deterministic change: a version
// of the run workflow that waits differently must fail to replay the recorded histories.
func TestReplayCatchesANondeterministicChange(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/run_*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		replayer := worker.NewWorkflowReplayer()
		replayer.RegisterWorkflowWithOptions(changedRunLifecycle, workflow.RegisterOptions{Name: lifecycle.RunWorkflowType})
		err := replayer.ReplayWorkflowHistoryFromJSONFile(nil, f)
		require.Error(t, err, f)
		require.Contains(t, err.Error(), "nondeterministic", f)
	}
}

// changedRunLifecycle is RunLifecycle with one deliberate non-deterministic edit: it
// settles before waiting.
func changedRunLifecycle(ctx workflow.Context, in lifecycle.RunInput) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	var res activities.SettleRunResult
	if err := workflow.ExecuteActivity(ctx, a.SettleRun, in.RunID).Get(ctx, &res); err != nil {
		return "", err
	}
	return RunLifecycle(ctx, in)
}
