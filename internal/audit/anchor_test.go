package audit_test

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/actor"
	"github.com/governor-hq/governor/internal/audit"
	"github.com/governor-hq/governor/internal/audit/checkpoint"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func newOrg(t *testing.T, ctx context.Context, conn dbsqlc.DBTX) string {
	t.Helper()
	q := dbsqlc.New()
	id := ids.New(ids.Org)
	_, err := q.OrgCreate(ctx, conn, dbsqlc.OrgCreateParams{ID: id, Name: "org " + id, TimeZone: "UTC"})
	require.NoError(t, err)
	require.NoError(t, q.AuditHeadInit(ctx, conn, id))
	return id
}

func signer(t *testing.T) checkpoint.Signer {
	t.Helper()
	k, err := checkpoint.NewPrivateKey(rand.Reader)
	require.NoError(t, err)
	s, err := checkpoint.ParsePrivateKey(k)
	require.NoError(t, err)
	return s
}

// Entries written by the database's audit_entry_hash check out when hashed in Go, whatever
// they hold: escapes, control characters, non-ASCII, nested and numeric JSON, NULLs.
func TestGoHashAgreesWithTheDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.DB(t)
	org := newOrg(t, ctx, pool)
	values := []any{
		nil,
		map[string]any{"s": "quote \" backslash \\ newline \n tab \t bell \a nul-ish \x01 del \x7f", "n": 1.5, "big": int64(1) << 53},
		map[string]any{"unicode": "é 😀 日本 \u2028", "nested": []any{map[string]any{"a": nil}, true, false, 0.0001, -3}},
		[]string{"", "<>&'"},
		"plain string",
	}
	for i, v := range values {
		_, err := audit.Append(ctx, pool, audit.Entry{
			OrgID: org, Actor: actor.Actor{Kind: actor.KindAPIKey, APIKeyID: "key_\"x\"", UserID: "usr\\1"},
			RequestID: "req\r\n" + string(rune('a'+i)), Action: "thing.change", EntityType: "thing", EntityID: "t\u00e9",
			Before: v, After: values[len(values)-1-i],
		})
		require.NoError(t, err)
	}
	s := signer(t)
	n, err := audit.SignHeads(ctx, pool, s, time.Now())
	require.NoError(t, err)
	require.GreaterOrEqual(t, n, 1)
	cps, err := audit.LatestCheckpoints(ctx, pool, org, s.Public().ID())
	require.NoError(t, err)
	require.Len(t, cps, 1)
	require.Equal(t, int64(len(values)), cps[0].Seq)
	require.NoError(t, s.Public().Verify(cps[0]))
	v, err := audit.VerifyCheckpoint(ctx, pool, cps[0])
	require.NoError(t, err)
	require.Nil(t, v.First, "%+v", v.First)
	require.Equal(t, int64(len(values)), v.Checked)
}

// VerifyCheckpoint names each way a chain can fail to hold a checkpoint.
func TestVerifyCheckpointFindsEachBreak(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.DB(t)
	s := signer(t)
	cases := map[string]struct {
		tamper string
		reason string
	}{
		"entry deleted":      {`DELETE FROM audit_entries WHERE org_id = $1 AND seq = 2`, "entry missing"},
		"newest deleted":     {`DELETE FROM audit_entries WHERE org_id = $1 AND seq = 3`, "entries 3 to 3 missing"},
		"link broken":        {`UPDATE audit_entries SET prev_hash = sha256('x') WHERE org_id = $1 AND seq = 2`, "link to previous entry broken"},
		"content edited":     {`UPDATE audit_entries SET entity_id = 'other' WHERE org_id = $1 AND seq = 1`, "content does not match its hash"},
		"timestamp moved":    {`UPDATE audit_entries SET created_at = created_at + interval '1 microsecond' WHERE org_id = $1 AND seq = 2`, "content does not match its hash"},
		"after json changed": {`UPDATE audit_entries SET after = '{"n": 5}' WHERE org_id = $1 AND seq = 3`, "content does not match its hash"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			org := newOrg(t, ctx, pool)
			for i := range 3 {
				_, err := audit.Append(ctx, pool, audit.Entry{OrgID: org, Actor: actor.System("test"), Action: "thing.change",
					EntityType: "thing", EntityID: "t", After: map[string]int{"n": i}})
				require.NoError(t, err)
			}
			head, err := dbsqlc.New().AuditHeadGet(ctx, pool, org)
			require.NoError(t, err)
			cp, err := s.Sign(org, head.LastSeq, head.LastHash, time.Now())
			require.NoError(t, err)
			v, err := audit.VerifyCheckpoint(ctx, pool, cp)
			require.NoError(t, err)
			require.Nil(t, v.First, "untouched")

			err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, tc.tamper, org)
				return err
			})
			require.NoError(t, err)
			v, err = audit.VerifyCheckpoint(ctx, pool, cp)
			require.NoError(t, err)
			require.NotNil(t, v.First)
			require.Contains(t, v.First.Reason, tc.reason)
		})
	}
}

// The worker's loop signs each head that moves, once per head and key.
func TestCheckpointLoopSignsHeadsAsTheyMove(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	pool := testenv.DB(t)
	org := newOrg(t, ctx, pool)
	appendOne := func() {
		_, err := audit.Append(ctx, pool, audit.Entry{OrgID: org, Actor: actor.System("test"), Action: "thing.change", EntityType: "thing", EntityID: "t"})
		require.NoError(t, err)
	}
	appendOne()
	s := signer(t)
	var wg sync.WaitGroup
	wg.Go(func() {
		audit.CheckpointLoop(ctx, pool, slog.New(slog.NewTextHandler(io.Discard, nil)), s, 50*time.Millisecond)
	})
	defer func() { cancel(); wg.Wait() }()

	latest := func() int64 {
		cps, err := audit.LatestCheckpoints(ctx, pool, org, s.Public().ID())
		if err != nil || len(cps) == 0 {
			return 0
		}
		return cps[0].Seq
	}
	require.Eventually(t, func() bool { return latest() == 1 }, 60*time.Second, 20*time.Millisecond)
	appendOne()
	appendOne()
	require.Eventually(t, func() bool { return latest() == 3 }, 60*time.Second, 20*time.Millisecond)
	var rows int
	// Other tests' signers sign this organization's heads too (they sign every head): count this key's.
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM audit_checkpoints WHERE org_id = $1 AND key_id = $2`, org, s.Public().ID()).Scan(&rows))
	require.LessOrEqual(t, rows, 3, "a head is signed once per key, however many passes ran")
	cps, err := audit.LatestCheckpoints(ctx, pool, org, s.Public().ID())
	require.NoError(t, err)
	require.NoError(t, s.Public().Verify(cps[0]))
	v, err := audit.VerifyCheckpoint(ctx, pool, cps[0])
	require.NoError(t, err)
	require.Nil(t, v.First)
}
