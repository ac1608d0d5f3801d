package e2e

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/retention"
)

// count runs a count query for the tenant's organization.
func (tn *tenant) count(t *testing.T, sql string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, tn.pool.QueryRow(context.Background(), sql, tn.org.Organization.Id).Scan(&n))
	return n
}

// A retention pass deletes what is past its period and keeps what is not, and what
// analytics reads (cost records, runs, rollups, the audit ledger) is untouched.
func TestRetentionDeletesOldRowsKeepsRecentOnesAndTotals(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "kept")
	ctx := context.Background()
	hour := tn.createLimit(t, &v1.CreateLimitRequest{Name: "hourly", Scope: orgScope(), Metric: v1.LimitMetric_LIMIT_METRIC_COST,
		Window: v1.LimitWindow_LIMIT_WINDOW_HOUR, Amount: 100 * dollar})
	day := tn.createLimit(t, &v1.CreateLimitRequest{Name: "daily", Scope: orgScope(), Metric: v1.LimitMetric_LIMIT_METRIC_COST,
		Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 100 * dollar})
	hook := newReceiver(t)
	tn.webhookChannel(t, hook, "kept hook", nil)

	// Three settled runs; two of them (and everything they left) will be made old.
	var ids []string
	for i := range 3 {
		run, err := admit(t, ag.ingest, ag.agentID, dollar)
		require.NoError(t, err)
		complete(t, ag.ingest, run.Id, v1.RunStatus_RUN_STATUS_SUCCEEDED, int64(i+1)*dollar)
		waitSettled(t, tn.admin, run.Id)
		ids = append(ids, run.Id)
	}
	for i := range 2 {
		raise(t, tn, incidentTrigger(100+i))
	}
	hook.waitSuccesses(2)
	eventually(t, patience, func() bool {
		return tn.count(t, `SELECT count(*) FROM alert_deliveries WHERE org_id = $1 AND status = 'pending'`) == 0
	}, "deliveries finished")
	costsBefore, err := tn.admin.runs.ListCostRecords(ctx, connect.NewRequest(&v1.ListCostRecordsRequest{}))
	require.NoError(t, err)
	require.EqualValues(t, 6*dollar, costsBefore.Msg.TotalCostMicros)
	auditBefore := tn.count(t, `SELECT count(*) FROM audit_entries WHERE org_id = $1`)

	// Age two runs' reservations and events, one alert, and the counters of an hour and a
	// day window long past; add an expired idempotency record.
	old := ids[:2]
	tx := func(sql string, args ...any) {
		t.Helper()
		_, err := tn.pool.Exec(ctx, sql, args...)
		require.NoError(t, err, sql)
	}
	tx(`UPDATE run_reservations SET expires_at = now() - interval '40 days' WHERE run_id = ANY ($1)`, old)
	tx(`UPDATE domain_events SET occurred_at = now() - interval '500 days' WHERE org_id = $1 AND correlation_id = ANY ($2)`, tn.org.Organization.Id, old)
	var oldAlert string
	require.NoError(t, tn.pool.QueryRow(ctx, `SELECT id FROM alerts WHERE org_id = $1 ORDER BY created_at LIMIT 1`, tn.org.Organization.Id).Scan(&oldAlert))
	tx(`UPDATE alerts SET created_at = now() - interval '200 days' WHERE id = $1`, oldAlert)
	for _, c := range []struct {
		limit string
		age   string
	}{{hour.Id, "9 days"}, {hour.Id, "1 day"}, {day.Id, "401 days"}, {day.Id, "300 days"}} {
		tx(`INSERT INTO limit_counters (limit_id, window_start, used) VALUES ($1, date_trunc('hour', now() - $2::interval), 5)`, c.limit, c.age)
	}
	tx(`INSERT INTO idempotency_records (org_id, key_hash, procedure, request_hash, response, expires_at)
	    VALUES ($1, '\x01', 'x', '\x02', '', now() - interval '1 hour')`, tn.org.Organization.Id)

	oldEvents := tn.count(t, `SELECT count(*) FROM domain_events WHERE org_id = $1 AND occurred_at < now() - interval '400 days'`)
	require.Positive(t, oldEvents)
	// Batches of 2 rows: the pass loops until each table is done.
	rep, err := retention.Run(ctx, tn.pool, retention.DefaultPeriods, time.Now(), 2)
	require.NoError(t, err)
	require.GreaterOrEqual(t, rep["domain_events"], oldEvents)
	require.GreaterOrEqual(t, rep["run_reservations"], int64(4), "two runs × two limits")
	require.GreaterOrEqual(t, rep["limit_counters"], int64(2))
	require.GreaterOrEqual(t, rep["alerts"], int64(1))
	require.GreaterOrEqual(t, rep["idempotency_records"], int64(1))

	// Old rows are gone…
	require.Zero(t, tn.count(t, `SELECT count(*) FROM domain_events WHERE org_id = $1 AND occurred_at < now() - interval '400 days'`))
	require.Zero(t, tn.count(t, `SELECT count(*) FROM run_reservations r JOIN runs u ON u.id = r.run_id WHERE u.org_id = $1 AND r.expires_at < now() - interval '35 days'`))
	require.Zero(t, tn.count(t, `SELECT count(*) FROM limit_counters c JOIN limits l ON l.id = c.limit_id
		WHERE l.org_id = $1 AND c.window_start < now() - CASE WHEN l.window_kind = 'hour' THEN interval '8 days' ELSE interval '400 days' END`))
	require.Zero(t, tn.count(t, `SELECT count(*) FROM alerts WHERE org_id = $1 AND created_at < now() - interval '180 days'`))
	require.Zero(t, tn.count(t, `SELECT count(*) FROM idempotency_records WHERE org_id = $1 AND expires_at <= now()`))
	// …recent ones stay…
	require.EqualValues(t, 2, tn.count(t, `SELECT count(*) FROM run_reservations r JOIN runs u ON u.id = r.run_id WHERE u.org_id = $1`), "the recent run's two")
	require.EqualValues(t, 2, tn.count(t, `SELECT count(*) FROM limit_counters c JOIN limits l ON l.id = c.limit_id
		WHERE l.org_id = $1 AND c.used = 5`), "of the four aged counters, the 1-day-old hour window and the 300-day-old day window stay")
	require.EqualValues(t, 1, tn.count(t, `SELECT count(*) FROM alerts WHERE org_id = $1`))
	require.EqualValues(t, 1, tn.count(t, `SELECT count(*) FROM notifications WHERE org_id = $1`))
	require.Positive(t, tn.count(t, `SELECT count(*) FROM domain_events WHERE org_id = $1`))
	// …and what analytics and the ledger read is untouched.
	costsAfter, err := tn.admin.runs.ListCostRecords(ctx, connect.NewRequest(&v1.ListCostRecordsRequest{}))
	require.NoError(t, err)
	require.Equal(t, costsBefore.Msg.TotalCostMicros, costsAfter.Msg.TotalCostMicros)
	require.Equal(t, costsBefore.Msg.RecordCount, costsAfter.Msg.RecordCount)
	require.Equal(t, auditBefore, tn.count(t, `SELECT count(*) FROM audit_entries WHERE org_id = $1`))
	for _, id := range ids {
		r, err := tn.admin.runs.GetRun(ctx, connect.NewRequest(&v1.GetRunRequest{Id: id}))
		require.NoError(t, err)
		require.NotNil(t, r.Msg.Run.SettleTime)
	}
	v, err := tn.admin.audit.VerifyAuditChain(ctx, connect.NewRequest(&v1.VerifyAuditChainRequest{}))
	require.NoError(t, err)
	require.True(t, v.Msg.Intact)

	// Admission still works on the current windows.
	_, err = admit(t, ag.ingest, ag.agentID, dollar)
	require.NoError(t, err)
	// A second pass finds nothing more of this tenant's to delete.
	before := tn.count(t, `SELECT count(*) FROM domain_events WHERE org_id = $1`)
	_, err = retention.Run(ctx, tn.pool, retention.DefaultPeriods, time.Now(), 2)
	require.NoError(t, err)
	require.Equal(t, before, tn.count(t, `SELECT count(*) FROM domain_events WHERE org_id = $1`))
}

// One stuck transaction holding an organization's counter rows cannot stall admissions:
// that organization's admissions fail fast with Unavailable and a clear message, other
// organizations' admissions go on, and everything recovers when the lock is released.
func TestAHeldCounterLockFailsFastAndRecovers(t *testing.T) {
	t.Parallel()
	stuck := newTenant(t, "UTC")
	fine := newTenant(t, "UTC")
	sa := stuck.newAgent(t, "stuck")
	fa := fine.newAgent(t, "fine")
	ctx := context.Background()
	lim := stuck.createLimit(t, &v1.CreateLimitRequest{Scope: orgScope(), Metric: v1.LimitMetric_LIMIT_METRIC_COST,
		Window: v1.LimitWindow_LIMIT_WINDOW_MONTH, Amount: 100 * dollar})
	fine.createLimit(t, &v1.CreateLimitRequest{Scope: orgScope(), Metric: v1.LimitMetric_LIMIT_METRIC_COST,
		Window: v1.LimitWindow_LIMIT_WINDOW_MONTH, Amount: 100 * dollar})
	_, err := admit(t, sa.ingest, sa.agentID, dollar) // creates the counter
	require.NoError(t, err)

	// Another connection locks the counter and sits in its transaction.
	conn, err := stuck.pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	holder, err := conn.Begin(ctx)
	require.NoError(t, err)
	rows, err := holder.Query(ctx, `SELECT 1 FROM limit_counters WHERE limit_id = $1 FOR UPDATE`, lim.Id)
	require.NoError(t, err)
	rows.Close()
	released := false
	release := func() {
		if !released {
			require.NoError(t, holder.Rollback(ctx))
			released = true
		}
	}
	defer release()

	type result struct {
		err     error
		elapsed time.Duration
	}
	stuckDone := make(chan result, 1)
	go func() {
		start := time.Now()
		_, err := admit(t, sa.ingest, sa.agentID, dollar)
		stuckDone <- result{err, time.Since(start)}
	}()
	// Meanwhile another organization admits normally.
	start := time.Now()
	run, err := admit(t, fa.ingest, fa.agentID, dollar)
	require.NoError(t, err)
	require.Equal(t, v1.RunStatus_RUN_STATUS_ADMITTED, run.Status)
	t.Logf("the other organization's admission took %s while the lock was held", time.Since(start))
	r := <-stuckDone
	requireCode(t, connect.CodeUnavailable, r.err)
	require.Contains(t, r.err.Error(), "could not lock the organization's limit counters in time")
	require.Less(t, r.elapsed, 30*time.Second, "failed fast, not stalled")
	t.Logf("the stuck organization's admission failed after %s: %v", r.elapsed, r.err)
	var ce *connect.Error
	require.ErrorAs(t, r.err, &ce)
	require.Equal(t, "1", ce.Meta().Get("Retry-After"))

	// Once it has timed out, the stuck organization is decided beside the main batches:
	// its next admissions wait on the lock without holding up the other organization.
	more := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := admit(t, sa.ingest, sa.agentID, dollar)
			more <- err
		}()
	}
	var slowest time.Duration
	for range 5 {
		start := time.Now()
		_, err := admit(t, fa.ingest, fa.agentID, dollar)
		require.NoError(t, err)
		slowest = max(slowest, time.Since(start))
	}
	t.Logf("slowest of 5 admissions of the other organization while 3 of the stuck one waited: %s", slowest)
	require.Less(t, slowest, 2*time.Second, "not held up behind the stuck organization's lock wait")
	for range 3 {
		requireCode(t, connect.CodeUnavailable, <-more)
	}

	release()
	eventually(t, patience, func() bool {
		_, err := admit(t, sa.ingest, sa.agentID, dollar)
		return err == nil
	}, "admissions recover once the lock is released")
	var used, reserved int64
	require.NoError(t, stuck.pool.QueryRow(ctx, `SELECT used, reserved FROM limit_counters WHERE limit_id = $1`, lim.Id).Scan(&used, &reserved))
	require.EqualValues(t, 2*dollar, reserved, "the failed admission reserved nothing")
}
