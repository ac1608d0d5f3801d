package schedulewatch_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/schedulewatch"
	"github.com/governor-hq/governor/internal/systemrecords"
	"github.com/governor-hq/governor/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestRecordsReportGrowthOnceKeyedByCount(t *testing.T) {
	t.Parallel()
	require.Empty(t, schedulewatch.Records("s", nil, schedulewatch.Counts{}))
	first := schedulewatch.Records("s", nil, schedulewatch.Counts{SkippedOverlap: 2})
	require.Len(t, first, 1)
	require.Equal(t, systemrecords.KindScheduleSkipped, first[0].Kind)
	require.Equal(t, "schedule/s/skipped_overlap/2", first[0].Key)
	require.Equal(t, 2, first[0].Data["skipped"])
	require.Empty(t, schedulewatch.Records("s", &schedulewatch.Counts{SkippedOverlap: 2}, schedulewatch.Counts{SkippedOverlap: 2}))
	both := schedulewatch.Records("s", &schedulewatch.Counts{SkippedOverlap: 2}, schedulewatch.Counts{SkippedOverlap: 3, MissedCatchupWindow: 1})
	require.Len(t, both, 2)
	require.Equal(t, 1, both[0].Data["skipped"])
	require.Equal(t, "schedule/s/missed_catchup_window/1", both[1].Key)
}

// A real schedule on a real Temporal server: its action starts a workflow nothing polls
// for, so it runs on, and a second action is skipped for overlap. Two watchers (two
// workers) record that once.
func TestAScheduleSkippedForOverlapIsRecordedOnce(t *testing.T) {
	ctx := context.Background()
	pool := testenv.DB(t)
	c, err := client.Dial(client.Options{HostPort: testenv.TemporalAddress(t), Namespace: testenv.TemporalNamespace(),
		Logger: slogAdapter{}})
	require.NoError(t, err)
	defer c.Close()
	id := "watch-test/" + ids.New("s")
	queue := "nobody-polls-" + id
	h, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{ID: id, Spec: client.ScheduleSpec{},
		Action:  &client.ScheduleWorkflowAction{ID: id + "/wf", Workflow: "NeverRuns", TaskQueue: queue},
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = h.Delete(context.Background())
	})
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	w1 := &schedulewatch.Watcher{Schedules: c.ScheduleClient(), Pool: pool, Log: log, ScheduleID: id}
	w2 := &schedulewatch.Watcher{Schedules: c.ScheduleClient(), Pool: pool, Log: log, ScheduleID: id}
	require.NoError(t, w1.Check(ctx))

	require.NoError(t, h.Trigger(ctx, client.ScheduleTriggerOptions{}))
	var running string
	require.Eventually(t, func() bool {
		d, err := h.Describe(ctx)
		if err != nil {
			return false
		}
		if len(d.Info.RunningWorkflows) != 1 {
			return false
		}
		running = d.Info.RunningWorkflows[0].WorkflowID
		return true
	}, 60*time.Second, 100*time.Millisecond, "the first action runs (and keeps running)")
	t.Cleanup(func() { _ = c.TerminateWorkflow(context.Background(), running, "", "test done") })
	require.NoError(t, h.Trigger(ctx, client.ScheduleTriggerOptions{}))
	require.Eventually(t, func() bool {
		d, err := h.Describe(ctx)
		if err != nil {
			return false
		}
		return d.Info.NumActionsSkippedOverlap == 1
	}, 60*time.Second, 100*time.Millisecond, "the second is skipped")
	require.NoError(t, w1.Check(ctx))
	require.NoError(t, w2.Check(ctx))
	require.NoError(t, w1.Check(ctx))

	var n int
	var msg string
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*), max(message) FROM system_records
		WHERE kind = 'schedule_skipped' AND workflow_id = $1 AND org_id IS NULL`, id).Scan(&n, &msg))
	require.Equal(t, 1, n, "recorded once, however many workers watch")
	require.Contains(t, msg, fmt.Sprintf("Schedule %s skipped 1 action", id))
}

type slogAdapter struct{}

func (slogAdapter) Debug(string, ...any) {}
func (slogAdapter) Info(string, ...any)  {}
func (slogAdapter) Warn(string, ...any)  {}
func (slogAdapter) Error(string, ...any) {}
