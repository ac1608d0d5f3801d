package db_test

import (
	"context"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/db"
	"github.com/governor-hq/governor/internal/testenv"
)

// Migration 0009 (ledger_anchors) gives every organization made before it its in-app channel (ListChannels
// used to make it on first call; now reads never write), and leaves alone one that has
// it. Its id looks like any channel's.
func TestMigration0009MakesMissingInAppChannels(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := testenv.FreshDB(t)
	all, err := db.Migrations()
	require.NoError(t, err)
	at := -1
	for i, m := range all {
		if m.Name == "ledger_anchors" {
			at = i
		}
	}
	require.NotEqual(t, -1, at)
	_, err = db.MigrateDown(ctx, pool, len(all)-at) // back to before it
	require.NoError(t, err)
	for _, q := range []string{
		`INSERT INTO organizations (id, name) VALUES ('org_without', 'w'), ('org_with', 'h'), ('org_deleted', 'd')`,
		`INSERT INTO alert_channels (org_id, id, name, type) VALUES ('org_with', 'chn_kept', 'In-app notifications', 'in_app')`,
		// A deleted in-app channel does not count as one.
		`INSERT INTO alert_channels (org_id, id, name, type, deleted_at) VALUES ('org_deleted', 'chn_gone', 'In-app notifications', 'in_app', now())`,
	} {
		_, err := pool.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	_, err = db.MigrateUp(ctx, pool)
	require.NoError(t, err)

	rows, err := pool.Query(ctx, `SELECT org_id, id FROM alert_channels WHERE type = 'in_app' AND deleted_at IS NULL ORDER BY org_id`)
	require.NoError(t, err)
	got := map[string]string{}
	for rows.Next() {
		var org, id string
		require.NoError(t, rows.Scan(&org, &id))
		_, dup := got[org]
		require.False(t, dup, "one in-app channel per organization")
		got[org] = id
	}
	require.NoError(t, rows.Err())
	require.Len(t, got, 3)
	require.Equal(t, "chn_kept", got["org_with"])
	id := regexp.MustCompile(`^chn_00[0-9a-f]{24}$`)
	require.Regexp(t, id, got["org_without"])
	require.Regexp(t, id, got["org_deleted"])
	require.NotEqual(t, got["org_without"], got["org_deleted"])

	// And back: the checkpoints table goes, the channels stay.
	_, err = db.MigrateDown(ctx, pool, len(all)-at)
	require.NoError(t, err)
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM alert_channels WHERE type = 'in_app' AND deleted_at IS NULL`).Scan(&n))
	require.Equal(t, 3, n)
	var exists bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT to_regclass('audit_checkpoints') IS NOT NULL`).Scan(&exists))
	require.False(t, exists)
}
