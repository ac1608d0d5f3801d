package anomaly_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/internal/anomaly"
	"github.com/governor-hq/governor/internal/audit"
	"github.com/governor-hq/governor/internal/testenv"
)

// Every anomaly a batch records, and every incident it opens, is on the ledger with the
// batch's workflow as the actor, written in the same transaction as the row itself.
func TestBatchAuditsAnomaliesAndTheIncidentsItOpens(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.DB(t)
	tn := seedTenant(t, pool, 6, 2)
	sum, err := anomaly.NewDetector(pool, slog.Default()).Run(ctx, anomaly.Request{OrgID: tn.org, WorkflowID: "anomaly-batch/ledger"}, anomaly.Progress{}, nil)
	require.NoError(t, err)
	require.Positive(t, sum.AnomaliesCreated)
	require.Positive(t, sum.IncidentsLinked, "the spikes are severe enough to open incidents")

	type entry struct{ actorKind, actorSystem, xmin string }
	entries := func(action, entityType string) map[string]entry {
		rows, err := pool.Query(ctx, `SELECT entity_id, actor_kind, actor_system, xmin::text FROM audit_entries
			WHERE org_id = $1 AND action = $2 AND entity_type = $3`, tn.org, action, entityType)
		require.NoError(t, err)
		defer rows.Close()
		out := map[string]entry{}
		for rows.Next() {
			var id string
			var e entry
			require.NoError(t, rows.Scan(&id, &e.actorKind, &e.actorSystem, &e.xmin))
			out[id] = e
		}
		require.NoError(t, rows.Err())
		return out
	}
	detected := entries("anomaly.detect", "anomaly")
	rows, err := pool.Query(ctx, `SELECT id, xmin::text FROM anomalies WHERE org_id = $1`, tn.org)
	require.NoError(t, err)
	n := 0
	for rows.Next() {
		var id, xmin string
		require.NoError(t, rows.Scan(&id, &xmin))
		e, ok := detected[id]
		require.Truef(t, ok, "anomaly %s has no audit entry", id)
		require.Equal(t, "system", e.actorKind)
		require.Equal(t, "workflow:anomaly-batch/ledger", e.actorSystem)
		require.Equal(t, xmin, e.xmin, "the anomaly and its audit entry were committed together")
		n++
	}
	require.NoError(t, rows.Err())
	require.Equal(t, sum.AnomaliesCreated, n)
	require.Len(t, detected, n, "one entry per anomaly")

	opened := entries("incident.open", "incident")
	rows, err = pool.Query(ctx, `SELECT id, xmin::text FROM incidents WHERE org_id = $1`, tn.org)
	require.NoError(t, err)
	incs := 0
	for rows.Next() {
		var id, xmin string
		require.NoError(t, rows.Scan(&id, &xmin))
		e, ok := opened[id]
		require.Truef(t, ok, "incident %s opened by the batch has no audit entry", id)
		require.Equal(t, "system", e.actorKind)
		require.Equal(t, "workflow:anomaly-batch/ledger", e.actorSystem)
		// Nothing updated the incident since: its row is still the one the batch's
		// transaction wrote, and that transaction wrote the entry.
		require.Equal(t, xmin, e.xmin, "the incident and its audit entry were committed together")
		incs++
	}
	require.NoError(t, rows.Err())
	require.Positive(t, incs)
	v, err := audit.Verify(ctx, pool, tn.org)
	require.NoError(t, err)
	require.Nil(t, v.First)
}
