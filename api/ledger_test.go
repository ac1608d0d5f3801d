package api_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/api"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/audit"
)

// A change whose audit entry cannot be written does not happen: the failure is injected
// in the database (a trigger refusing this organization's project.create entries).
func TestChangeWithoutAuditEntryDoesNotHappen(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	fn := "refuse_audit_" + b.org.Organization.Id
	_, err := b.pool.Exec(ctx, fmt.Sprintf(`
CREATE FUNCTION %[1]s() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'injected audit failure'; END $$;
CREATE TRIGGER %[1]s BEFORE INSERT ON audit_entries FOR EACH ROW
WHEN (NEW.org_id = '%[2]s' AND NEW.action = 'project.create') EXECUTE FUNCTION %[1]s();`, fn, b.org.Organization.Id))
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = b.pool.Exec(context.Background(), fmt.Sprintf("DROP TRIGGER %[1]s ON audit_entries; DROP FUNCTION %[1]s();", fn))
	})

	_, err = b.admin.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: "doomed"}))
	requireCode(t, connect.CodeInternal, err)
	require.NotContains(t, err.Error(), "injected", "internal details stay on the server")

	projects, err := b.admin.accounts.ListProjects(ctx, connect.NewRequest(&v1.ListProjectsRequest{}))
	require.NoError(t, err)
	require.Empty(t, projects.Msg.Projects, "the project must not exist without its audit entry")
	evs, err := b.admin.timeline.ListEvents(ctx, connect.NewRequest(&v1.ListEventsRequest{Filter: &v1.EventFilter{Types: []string{"project_created"}}}))
	require.NoError(t, err)
	require.Empty(t, evs.Msg.Events, "nor its event")

	// Other changes still go through.
	_, err = b.admin.accounts.CreateUser(ctx, connect.NewRequest(&v1.CreateUserRequest{Email: "ok@example.com", Role: v1.Role_ROLE_VIEWER}))
	require.NoError(t, err)
}

func TestLedgerIsAppendOnly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	_, err := b.pool.Exec(ctx, "UPDATE audit_entries SET action = 'nothing' WHERE org_id = $1", b.org.Organization.Id)
	require.ErrorContains(t, err, "append-only")
	_, err = b.pool.Exec(ctx, "DELETE FROM audit_entries WHERE org_id = $1", b.org.Organization.Id)
	require.ErrorContains(t, err, "append-only")
}

// tamper runs SQL as someone with direct database access who bypasses the append-only
// trigger (session_replication_role skips triggers for this session only).
func tamper(t *testing.T, b *testBundle, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, b.pool.Config().ConnConfig.ConnString())
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "SET session_replication_role = replica")
	require.NoError(t, err)
	tag, err := conn.Exec(ctx, sql, args...)
	require.NoError(t, err)
	require.EqualValues(t, 1, tag.RowsAffected(), sql)
}

func TestAuditChainDetectsTampering(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		sql    string
		seq    int64
		reason string
	}{
		{"edited entry", `UPDATE audit_entries SET after = jsonb_set(after, '{name}', '"nobody"') WHERE org_id = $1 AND seq = 4`, 4, "content does not match its hash"},
		{"edited actor", `UPDATE audit_entries SET actor_user_id = 'usr_someoneelse' WHERE org_id = $1 AND seq = 2`, 2, "content does not match its hash"},
		{"deleted entry", `DELETE FROM audit_entries WHERE org_id = $1 AND seq = 3`, 3, "entry missing"},
		{"deleted newest entry", `DELETE FROM audit_entries WHERE org_id = $1 AND seq = 7`, 7, "missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := context.Background()
			for i := range 3 {
				_, err := b.admin.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: fmt.Sprintf("p%d", i)}))
				require.NoError(t, err)
			}
			before, err := b.admin.audit.VerifyAuditChain(ctx, connect.NewRequest(&v1.VerifyAuditChainRequest{}))
			require.NoError(t, err)
			require.True(t, before.Msg.Intact)
			// Bootstrap's four (organization, in-app channel, admin, key) and three projects.
			require.EqualValues(t, 7, before.Msg.EntriesChecked)
			require.EqualValues(t, 7, before.Msg.HeadSequence)

			tamper(t, b, c.sql, b.org.Organization.Id)

			after, err := b.admin.audit.VerifyAuditChain(ctx, connect.NewRequest(&v1.VerifyAuditChainRequest{}))
			require.NoError(t, err)
			require.False(t, after.Msg.Intact)
			require.Equal(t, c.seq, after.Msg.FirstBreak.Sequence)
			require.Contains(t, after.Msg.FirstBreak.Reason, c.reason)
			require.EqualValues(t, c.seq-1, after.Msg.EntriesChecked)
		})
	}
}

// Concurrent changes in one organization still form a single unbroken chain.
func TestAuditChainUnderConcurrency(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 24) // one per goroutine, asserted once all are done
	for i := range 24 {
		wg.Go(func() {
			_, errs[i] = b.admin.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: fmt.Sprintf("c%d", i)}))
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	v, err := audit.Verify(ctx, b.pool, b.org.Organization.Id)
	require.NoError(t, err)
	require.Nil(t, v.First)
	require.EqualValues(t, 4+24, v.Checked)
}

func TestIdempotencyKeys(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	create := func(key, name string) (*connect.Response[v1.CreateProjectResponse], error) {
		req := connect.NewRequest(&v1.CreateProjectRequest{Name: name})
		req.Header().Set("Idempotency-Key", key)
		return b.admin.accounts.CreateProject(ctx, req)
	}
	first, err := create("k-1", "once")
	require.NoError(t, err)
	require.Empty(t, first.Header().Get(api.ReplayedHeader))
	again, err := create("k-1", "once")
	require.NoError(t, err)
	require.Equal(t, "true", again.Header().Get(api.ReplayedHeader))
	require.Equal(t, first.Msg.Project.Id, again.Msg.Project.Id)

	_, err = create("k-1", "different")
	requireCode(t, connect.CodeInvalidArgument, err)
	require.Contains(t, err.Error(), "Idempotency-Key")

	// Ten concurrent retries of one request make one project.
	var wg sync.WaitGroup
	ids := make([]string, 10)
	errs := make([]error, len(ids)) // one per goroutine, asserted once all are done
	for i := range ids {
		wg.Go(func() {
			resp, err := create("k-2", "raced")
			if errs[i] = err; err == nil {
				ids[i] = resp.Msg.Project.Id
			}
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	for _, id := range ids {
		require.Equal(t, ids[0], id)
	}
	list, err := b.admin.accounts.ListProjects(ctx, connect.NewRequest(&v1.ListProjectsRequest{}))
	require.NoError(t, err)
	require.Len(t, list.Msg.Projects, 2)
	entries, err := b.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{Action: "project.create"}))
	require.NoError(t, err)
	require.Len(t, entries.Msg.Entries, 2, "one audit entry per change, not per retry")

	// A retried key creation returns the same key and secret; the database holds neither
	// the secret nor the idempotency key in the clear.
	mk := func() *connect.Response[v1.CreateApiKeyResponse] {
		req := connect.NewRequest(&v1.CreateApiKeyRequest{Name: "retry-safe", Kind: v1.ApiKeyKind_API_KEY_KIND_INGEST})
		req.Header().Set("Idempotency-Key", "k-3-secret-bearing")
		resp, err := b.admin.keys.CreateApiKey(ctx, req)
		require.NoError(t, err)
		return resp
	}
	k1, k2 := mk(), mk()
	require.Equal(t, k1.Msg.ApiKey.Id, k2.Msg.ApiKey.Id)
	require.Equal(t, k1.Msg.Secret, k2.Msg.Secret)
	var leaked int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM idempotency_records
		WHERE position($1::bytea in response) > 0 OR position($2::bytea in key_hash) > 0`,
		[]byte(k1.Msg.Secret), []byte("k-3-secret-bearing")).Scan(&leaked))
	require.Zero(t, leaked)

	// A request that fails leaves its key free for a corrected retry.
	req := connect.NewRequest(&v1.CreateAgentRequest{ProjectId: "prj_00000000000000000000000000", Name: "a"})
	req.Header().Set("Idempotency-Key", "k-4")
	_, err = b.admin.accounts.CreateAgent(ctx, req)
	requireCode(t, connect.CodeNotFound, err)
	req = connect.NewRequest(&v1.CreateAgentRequest{ProjectId: first.Msg.Project.Id, Name: "a"})
	req.Header().Set("Idempotency-Key", "k-4")
	_, err = b.admin.accounts.CreateAgent(ctx, req)
	require.NoError(t, err)
}
