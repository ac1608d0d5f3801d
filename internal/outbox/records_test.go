package outbox

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/lifecycle"
	"github.com/governor-hq/governor/internal/systemrecords"
	"github.com/governor-hq/governor/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func org(t *testing.T) string {
	t.Helper()
	o, err := dbsqlc.New().OrgCreate(context.Background(), testenv.DB(t), dbsqlc.OrgCreateParams{ID: ids.New(ids.Org), Name: t.Name(), TimeZone: "UTC"})
	require.NoError(t, err)
	return o.ID
}

func records(t *testing.T, orgID, kind string) []systemrecords.Stored {
	t.Helper()
	got, _, err := systemrecords.List(context.Background(), testenv.DB(t), orgID, systemrecords.Filter{Kinds: []string{kind}}, false, nil, 100)
	require.NoError(t, err)
	return got
}

func relay(t *testing.T) *Relay {
	return New(testenv.DB(t), nil, "q", slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
}

// Rows older than LagAfter when claimed make one lag record per organization, at most
// once per LagEvery; fresh rows make none.
func TestRelayRecordsItsLagPerOrganization(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := org(t), org(t)
	r := relay(t)
	now := time.Now()
	rows := []dbsqlc.WorkflowOutbox{
		{OrgID: a, WorkflowID: "run/1", CreatedAt: now.Add(-5 * time.Minute)},
		{OrgID: a, WorkflowID: "run/2", CreatedAt: now.Add(-10 * time.Minute)},
		{OrgID: b, WorkflowID: "run/3", CreatedAt: now.Add(-time.Second)}, // fresh
	}
	r.noticeLag(ctx, rows, now)
	got := records(t, a, systemrecords.KindOutboxRelayLag)
	require.Len(t, got, 1)
	require.Equal(t, "run/2", got[0].WorkflowID, "the oldest row")
	require.Equal(t, systemrecords.Warning, got[0].Severity)
	require.Contains(t, got[0].Message, "2 workflow starts or signals")
	require.Empty(t, records(t, b, systemrecords.KindOutboxRelayLag))

	r.noticeLag(ctx, rows, now.Add(30*time.Second))
	require.Len(t, records(t, a, systemrecords.KindOutboxRelayLag), 1, "not again within LagEvery")
	r.noticeLag(ctx, rows, now.Add(2*time.Minute))
	require.Len(t, records(t, a, systemrecords.KindOutboxRelayLag), 2)
}

// A started workflow is recorded once per outbox row, with its run (or alert); signals are
// not starts.
func TestRelayRecordsEachStartOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := org(t)
	r := relay(t)
	runID := ids.New(ids.Run)
	row := dbsqlc.WorkflowOutbox{ID: 7_000_001, OrgID: o, Kind: "start", WorkflowType: lifecycle.RunWorkflowType,
		WorkflowID: lifecycle.RunWorkflowID(runID), CreatedAt: time.Now()}
	r.recordStart(ctx, row)
	r.recordStart(ctx, row) // delivered again (its deletion failed)
	alert := dbsqlc.WorkflowOutbox{ID: 7_000_002, OrgID: o, Kind: "start", WorkflowType: lifecycle.AlertDeliveryWorkflowType,
		WorkflowID: lifecycle.AlertDeliveryWorkflowID("alr_x", "chn_y"), CreatedAt: time.Now()}
	r.recordStart(ctx, alert)
	r.recordStart(ctx, dbsqlc.WorkflowOutbox{ID: 7_000_003, OrgID: o, Kind: "signal_with_start", WorkflowType: lifecycle.RunWorkflowType,
		WorkflowID: lifecycle.RunWorkflowID(runID), CreatedAt: time.Now()})
	got := records(t, o, systemrecords.KindWorkflowStarted)
	require.Len(t, got, 2)
	require.Equal(t, runID, got[0].RunID)
	require.Equal(t, "alr_x", got[1].AlertID)
}
