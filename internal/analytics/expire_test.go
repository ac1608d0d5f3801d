package analytics_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/internal/runs"
)

func TestExpiredThenReportedLateCountsOnce(t *testing.T) {
	t.Parallel()
	f := setup(t, "UTC", 1)
	ctx := context.Background()
	adm := runs.NewAdmitter(f.pool, quiet(), runs.AdmitterOptions{})
	actx, stop := context.WithCancel(ctx)
	defer stop()
	go adm.Run(actx)
	res, err := adm.Admit(ctx, runs.AdmitRequest{Caller: f.caller, AgentID: f.agents[0], Model: "m", Lease: 200 * time.Millisecond, Estimate: runs.Estimate{CostMicros: 5}})
	require.NoError(t, err)
	run := res.Run.ID
	require.NoError(t, insertCall(ctx, f.pool, f.org, "c1", &run, f.agents[0], "gemini", 100, 1, 0, 10, false, time.Now()))
	time.Sleep(300 * time.Millisecond)
	st := runs.NewSettler(f.pool)
	s, err := st.Settle(ctx, run, "t")
	require.NoError(t, err)
	require.Equal(t, "expired", s.Status)
	r0, err := f.svc.Roll(ctx, f.org, 1000, true)
	require.NoError(t, err)
	require.Equal(t, 2, r0.Records, "admitted and expired")
	var n int64
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT runs_expired FROM analytics_rollups WHERE org_id = $1 AND cube = 1 AND grain = 60`, f.org).Scan(&n))
	require.EqualValues(t, 1, n)
	cost := int64(50)
	_, err = runs.RecordReport(ctx, f.pool, f.caller, run, runs.Report{Status: "succeeded", CostMicros: &cost})
	require.NoError(t, err)
	_, err = st.Settle(ctx, run, "t")
	require.NoError(t, err)
	r, err := f.svc.Roll(ctx, f.org, 1000, true)
	require.NoError(t, err)
	require.True(t, r.Drained)
	raw := rawTotals(t, f.pool, f.org)
	require.EqualValues(t, 50, raw["cost"])
}
