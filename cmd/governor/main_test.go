package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// run executes the CLI as a user would and returns what it printed.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := root()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// The operator's path: migrate, bootstrap, verify the audit chain, notice tampering.
func TestMigrateBootstrapAndVerifyAudit(t *testing.T) {
	t.Parallel()
	_, url := testenv.FreshDB(t)

	out, err := run(t, "migrate", "status", "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, "0001_foundation")
	require.NotContains(t, out, "pending")
	out, err = run(t, "migrate", "up", "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, "already up to date")

	out, err = run(t, "admin", "bootstrap", "--database-url", url, "--org", "Acme", "--email", "ops@example.com", "--time-zone", "Asia/Tokyo")
	require.NoError(t, err)
	require.Contains(t, out, "time zone Asia/Tokyo")
	require.Regexp(t, `gvk_[A-Za-z0-9]{8}_[A-Za-z0-9]{32}`, out, "the secret is printed once")
	_, err = run(t, "admin", "bootstrap", "--database-url", url, "--org", "Bad", "--email", "x@example.com", "--time-zone", "Mars/Base")
	require.ErrorContains(t, err, "time zone")

	out, err = run(t, "admin", "verify-audit", "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, "intact: 4 entries", "organization, in-app channel, admin user, admin key")

	// Someone with database access edits the ledger behind the application's back.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "SET session_replication_role = replica")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "UPDATE audit_entries SET action = 'user.delete' WHERE seq = 2")
	require.NoError(t, err)

	out, err = run(t, "admin", "verify-audit", "--database-url", url)
	require.Error(t, err)
	require.Contains(t, out, "BROKEN at entry 2")
	require.Contains(t, out, "content does not match its hash")
	require.True(t, strings.Contains(err.Error(), "1 of 1 audit chains are broken"), err.Error())
}

func TestAPIRefusesAnUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	_, url := testenv.FreshDB(t)
	_, err := run(t, "migrate", "down", "--database-url", url)
	require.NoError(t, err)
	kek := filepath.Join(t.TempDir(), "kek")
	_, err = run(t, "admin", "generate-kek", "--out", kek)
	require.NoError(t, err)
	_, err = run(t, "api", "--database-url", url, "--http-addr", "127.0.0.1:0", "--kek-file", kek)
	require.ErrorContains(t, err, "governor migrate up")
}
