package db_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/db"
	"github.com/governor-hq/governor/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func tables(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations' ORDER BY 1`)
	require.NoError(t, err)
	var out []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		out = append(out, n)
	}
	return out
}

// Every migration goes down cleanly and up again to the same schema; the migrator is
// idempotent and reports what it did.
func TestMigrationsDownAndUp(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.FreshDB(t) // migrated from the template
	ctx := context.Background()
	all, err := db.Migrations()
	require.NoError(t, err)
	before := tables(t, pool)
	require.Contains(t, before, "audit_entries")

	again, err := db.MigrateUp(ctx, pool)
	require.NoError(t, err)
	require.Empty(t, again, "up is idempotent")

	down, err := db.MigrateDown(ctx, pool, len(all))
	require.NoError(t, err)
	require.Len(t, down, len(all))
	require.Empty(t, tables(t, pool), "down removes everything up created")
	st, err := db.MigrationStatuses(ctx, pool)
	require.NoError(t, err)
	for _, s := range st {
		require.Nil(t, s.AppliedAt)
	}

	up, err := db.MigrateUp(ctx, pool)
	require.NoError(t, err)
	require.Len(t, up, len(all))
	require.Equal(t, before, tables(t, pool))
}

func TestMigrationFilesArePaired(t *testing.T) {
	t.Parallel()
	ms, err := db.Migrations()
	require.NoError(t, err)
	for i, m := range ms {
		require.Equal(t, i+1, m.Version)
		require.NotEmpty(t, m.Up)
		require.NotEmpty(t, m.Down)
	}
}
