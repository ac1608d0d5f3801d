package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/worker"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/lifecycle"
	"github.com/governor-hq/governor/workflows"
)

// historyOf fetches a closed workflow's full history (the latest run of the ID).
func historyOf(t *testing.T, tn *tenant, workflowID string) *historypb.History {
	t.Helper()
	ctx := context.Background()
	eventually(t, patience, func() bool {
		d, err := tn.temporal.DescribeWorkflowExecution(ctx, workflowID, "")
		return err == nil && d.WorkflowExecutionInfo.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	})
	it := tn.temporal.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, e)
	}
	return h
}

// keepHistory replays a fresh history against the current workflow code and, with
// GOVERNOR_UPDATE_HISTORIES=1, stores it in workflows/testdata for the replay test.
func keepHistory(t *testing.T, name string, h *historypb.History) {
	t.Helper()
	replayer := worker.NewWorkflowReplayer()
	workflows.Register(replayer)
	require.NoError(t, replayer.ReplayWorkflowHistory(nil, h))
	if os.Getenv("GOVERNOR_UPDATE_HISTORIES") == "" {
		return
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(h)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join("..", "workflows", "testdata", name+".json"), b, 0o644))
}

// Records one history per path through the run workflow: reported, expired after a
// heartbeat, and a late report that starts the workflow anew.
func TestRecordRunHistories(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "recorded")
	ctx := context.Background()

	ok, err := admit(t, ag.ingest, ag.agentID, dollar)
	require.NoError(t, err)
	complete(t, ag.ingest, ok.Id, v1.RunStatus_RUN_STATUS_SUCCEEDED, dollar)
	waitSettled(t, tn.admin, ok.Id)
	keepHistory(t, "run_reported", historyOf(t, tn, lifecycle.RunWorkflowID(ok.Id)))

	// Leases long enough for the heartbeat to land in time on a busy machine; the heartbeat
	// extends the lease past the first one's end, so the workflow waits twice.
	hb, err := ag.ingest.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: ag.agentID, Lease: durationOf(3 * time.Second)}))
	require.NoError(t, err)
	_, err = ag.ingest.runs.HeartbeatRun(ctx, connect.NewRequest(&v1.HeartbeatRunRequest{RunId: hb.Msg.Run.Id, Lease: durationOf(5 * time.Second)}))
	require.NoError(t, err)
	require.Equal(t, v1.RunStatus_RUN_STATUS_EXPIRED, waitSettled(t, tn.admin, hb.Msg.Run.Id).Status)
	keepHistory(t, "run_expired_after_heartbeat", historyOf(t, tn, lifecycle.RunWorkflowID(hb.Msg.Run.Id)))

	complete(t, ag.ingest, hb.Msg.Run.Id, v1.RunStatus_RUN_STATUS_FAILED, dollar)
	eventually(t, patience, func() bool {
		r, err := tn.admin.runs.GetRun(ctx, connect.NewRequest(&v1.GetRunRequest{Id: hb.Msg.Run.Id}))
		require.NoError(t, err)
		return r.Msg.Run.Status == v1.RunStatus_RUN_STATUS_FAILED
	})
	keepHistory(t, "run_late_report", historyOf(t, tn, lifecycle.RunWorkflowID(hb.Msg.Run.Id)))
}
