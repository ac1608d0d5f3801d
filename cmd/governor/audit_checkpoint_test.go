package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/internal/config"
	"github.com/governor-hq/governor/internal/testenv"
)

// checkpointed is a bootstrapped organization whose chain head is signed and exported.
type checkpointed struct {
	url, keyFile, publicKey, file string
	conn                          *pgx.Conn
}

func newCheckpointed(t *testing.T) checkpointed {
	t.Helper()
	_, url := testenv.FreshDB(t)
	dir := t.TempDir()
	c := checkpointed{url: url, keyFile: filepath.Join(dir, "audit-key"), file: filepath.Join(dir, "checkpoint.json")}
	_, err := run(t, "admin", "bootstrap", "--database-url", url, "--org", "Acme", "--email", "ops@example.com")
	require.NoError(t, err)
	out, err := run(t, "admin", "generate-audit-key", "--out", c.keyFile)
	require.NoError(t, err)
	require.Contains(t, out, "wrote a new audit signing key")
	out, err = run(t, "admin", "audit-public-key", "--audit-signing-key-file", c.keyFile)
	require.NoError(t, err)
	c.publicKey = regexp.MustCompile(`ed25519:\S+`).FindString(out)
	require.NotEmpty(t, c.publicKey, out)

	out, err = run(t, "admin", "audit-checkpoint", "--database-url", url, "--audit-signing-key-file", c.keyFile, "--sign", "--out", c.file)
	require.NoError(t, err)
	require.Contains(t, out, "signed 1 new checkpoints")
	require.Contains(t, out, "wrote 1 checkpoints")
	ctx := context.Background()
	c.conn, err = pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { c.conn.Close(ctx) })
	var stored int
	require.NoError(t, c.conn.QueryRow(ctx, `SELECT count(*) FROM audit_checkpoints WHERE seq = 4`).Scan(&stored))
	require.Equal(t, 1, stored, "the checkpoint is stored in the database too")
	return c
}

func (c checkpointed) verify(t *testing.T, extra ...string) (string, error) {
	t.Helper()
	return run(t, append([]string{"admin", "verify-audit", "--database-url", c.url, "--checkpoint", c.file}, extra...)...)
}

// An untouched chain passes both checks, also after it grew past the checkpoint.
func TestUntouchedChainMatchesItsCheckpoint(t *testing.T) {
	t.Parallel()
	c := newCheckpointed(t)
	out, err := c.verify(t, "--public-key", c.publicKey)
	require.NoError(t, err, out)
	require.Contains(t, out, "intact: 4 entries")
	require.Contains(t, out, "matches checkpoint: entry 4")

	// More governance changes; signing again moves the checkpoint; both files still hold.
	old := c.file + ".old"
	b, err := os.ReadFile(c.file)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(old, b, 0o644))
	_, err = run(t, "admin", "bootstrap", "--database-url", c.url, "--org", "Other", "--email", "o@example.com")
	require.NoError(t, err)
	out, err = run(t, "admin", "audit-checkpoint", "--database-url", c.url, "--audit-signing-key-file", c.keyFile, "--sign", "--out", c.file)
	require.NoError(t, err)
	require.Contains(t, out, "signed 1 new checkpoints", "only the head that moved (the new organization's) is signed")
	require.Contains(t, out, "wrote 2 checkpoints")
	out, err = c.verify(t, "--audit-signing-key-file", c.keyFile) // the public key from the configured signing key
	require.NoError(t, err, out)
	require.Regexp(t, `(?s)matches checkpoint.*matches checkpoint`, out)
	out, err = run(t, "admin", "verify-audit", "--database-url", c.url, "--checkpoint", old, "--public-key", c.publicKey)
	require.NoError(t, err, out)
}

// The database's owner rewrites the whole chain consistently: every entry changed, every
// hash and link recomputed with the database's own function, the head moved along. The
// chain checks out in the database; the checkpoint kept outside it exposes the rewrite.
func TestRewrittenChainFailsTheCheckpoint(t *testing.T) {
	t.Parallel()
	c := newCheckpointed(t)
	ctx := context.Background()
	_, err := c.conn.Exec(ctx, `SET session_replication_role = replica`) // past the append-only triggers
	require.NoError(t, err)
	_, err = c.conn.Exec(ctx, `
DO $$
DECLARE
    prev bytea := '\x0000000000000000000000000000000000000000000000000000000000000000';
    e record;
BEGIN
    FOR e IN SELECT * FROM audit_entries ORDER BY org_id, seq LOOP
        UPDATE audit_entries
        SET actor_system = 'rewritten', prev_hash = prev,
            hash = audit_entry_hash(prev, e.org_id, e.seq, e.id, e.created_at, e.actor_kind, e.actor_api_key_id,
                                    e.actor_user_id, 'rewritten', e.action, e.entity_type, e.entity_id, e.before,
                                    e.after, e.request_id)
        WHERE org_id = e.org_id AND seq = e.seq
        RETURNING hash INTO prev;
        UPDATE audit_heads SET last_seq = e.seq, last_hash = prev WHERE org_id = e.org_id;
    END LOOP;
END $$`)
	require.NoError(t, err)
	var rewritten int
	require.NoError(t, c.conn.QueryRow(ctx, `SELECT count(*) FROM audit_entries WHERE actor_system = 'rewritten'`).Scan(&rewritten))
	require.Equal(t, 4, rewritten)

	out, err := run(t, "admin", "verify-audit", "--database-url", c.url)
	require.NoError(t, err, "the rewrite is consistent: the in-database check cannot see it")
	require.Contains(t, out, "intact: 4 entries")

	out, err = c.verify(t, "--public-key", c.publicKey)
	require.Error(t, err)
	require.Contains(t, out, "DOES NOT MATCH CHECKPOINT at entry 4")
	require.Contains(t, out, "the chain was rewritten")
	require.ErrorContains(t, err, "1 of 1 checkpoints do not hold")
}

// An owner who also replaces the database's hash function (so that edited entries
// "match" their old hashes) is caught too: the checkpoint check hashes in Go.
func TestReplacedHashFunctionFailsTheCheckpoint(t *testing.T) {
	t.Parallel()
	c := newCheckpointed(t)
	ctx := context.Background()
	_, err := c.conn.Exec(ctx, `SET session_replication_role = replica`)
	require.NoError(t, err)
	_, err = c.conn.Exec(ctx, `UPDATE audit_entries SET action = 'user.delete' WHERE seq = 3`)
	require.NoError(t, err)
	_, err = c.conn.Exec(ctx, `
CREATE OR REPLACE FUNCTION audit_entry_hash(
    p_prev_hash bytea, p_org_id text, p_seq bigint, p_id text, p_created_at timestamptz,
    p_actor_kind text, p_actor_api_key_id text, p_actor_user_id text, p_actor_system text,
    p_action text, p_entity_type text, p_entity_id text, p_before jsonb, p_after jsonb,
    p_request_id text
) RETURNS bytea LANGUAGE sql STABLE AS $$
    SELECT hash FROM audit_entries WHERE org_id = p_org_id AND seq = p_seq
$$`)
	require.NoError(t, err)

	out, err := run(t, "admin", "verify-audit", "--database-url", c.url)
	require.NoError(t, err, "the database's own check is fooled")
	require.Contains(t, out, "intact: 4 entries")

	out, err = c.verify(t, "--public-key", c.publicKey)
	require.Error(t, err)
	require.Contains(t, out, "DOES NOT MATCH CHECKPOINT at entry 3")
	require.Contains(t, out, "content does not match its hash")
}

// A checkpoint signed with another key is refused, and so is one whose signed head was
// edited in the file.
func TestCheckpointOfAnotherKeyIsRefused(t *testing.T) {
	t.Parallel()
	c := newCheckpointed(t)
	otherKey := filepath.Join(t.TempDir(), "other-key")
	out, err := run(t, "admin", "generate-audit-key", "--out", otherKey)
	require.NoError(t, err)
	otherPublic := regexp.MustCompile(`ed25519:\S+`).FindString(out)
	require.NotEqual(t, c.publicKey, otherPublic)

	// The file is genuine, but the operator trusts another key.
	out, err = c.verify(t, "--public-key", otherPublic)
	require.Error(t, err)
	require.Contains(t, out, "CHECKPOINT REFUSED")
	require.Contains(t, out, "signed with another key")

	// Someone signs the current heads with a key of their own and swaps the file.
	forged := filepath.Join(t.TempDir(), "forged.json")
	_, err = run(t, "admin", "audit-checkpoint", "--database-url", c.url, "--audit-signing-key-file", otherKey, "--sign", "--out", forged)
	require.NoError(t, err)
	out, err = run(t, "admin", "verify-audit", "--database-url", c.url, "--checkpoint", forged, "--public-key", c.publicKey)
	require.Error(t, err)
	require.Contains(t, out, "signed with another key")

	// An edited head in a genuine file fails its signature.
	b, err := os.ReadFile(c.file)
	require.NoError(t, err)
	edited := regexp.MustCompile(`"seq": 4`).ReplaceAll(b, []byte(`"seq": 3`))
	require.NotEqual(t, b, edited)
	require.NoError(t, os.WriteFile(c.file, edited, 0o644))
	out, err = c.verify(t, "--public-key", c.publicKey)
	require.Error(t, err)
	require.Contains(t, out, "signature does not verify")

	_, err = c.verify(t)
	require.ErrorContains(t, err, "--public-key", "without a key to check with, nothing is trusted")
}

// governor dev signs checkpoints with a key of its own, made once under its data folder
// and kept; audit-public-key prints its public half.
func TestDevMakesItsAuditSigningKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := config.Config{DataDir: dir}
	_, err := devSecurity(&cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "audit-signing-key"), cfg.AuditSigningKeyFile)
	st, err := os.Stat(cfg.AuditSigningKeyFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	first, err := run(t, "admin", "audit-public-key", "--audit-signing-key-file", cfg.AuditSigningKeyFile)
	require.NoError(t, err)
	require.Regexp(t, `^ed25519:\S+\n$`, first)

	cfg2 := config.Config{DataDir: dir}
	_, err = devSecurity(&cfg2, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	again, err := run(t, "admin", "audit-public-key", "--audit-signing-key-file", cfg2.AuditSigningKeyFile)
	require.NoError(t, err)
	require.Equal(t, first, again, "the same key on the next start")

	_, err = run(t, "admin", "audit-public-key")
	require.ErrorContains(t, err, "no audit signing key")
}
