package db_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/db"
	"github.com/governor-hq/governor/internal/testenv"
)

// Migration 0006 on a database with history: the response bodies stored with failed
// attempts (attempts, deliveries, delivery-failed events) are cut down to their status,
// old attempts get a classification from their outcome and status, and channels stay
// as they were until a process with the KEK seals them. Reverting is refused once a
// channel holds sealed credentials (SQL could not give them back).
func TestMigration0006ScrubsStoredResponseBodies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := testenv.FreshDB(t)
	all, err := db.Migrations()
	require.NoError(t, err)
	_, err = db.MigrateDown(ctx, pool, len(all)-5) // back to before 0006
	require.NoError(t, err)

	for _, q := range []string{
		`INSERT INTO organizations (id, name) VALUES ('org_m', 'm')`,
		`INSERT INTO alert_channels (org_id, id, name, type, url, secret) VALUES ('org_m', 'chn_m', 'hook', 'webhook', 'https://h.example.com/x?t=1', 'whsec_legacy')`,
		`INSERT INTO alerts (org_id, id, dedupe_key, kind, severity, title) VALUES ('org_m', 'alr_m', 'k', 'test', 'info', 't')`,
		`INSERT INTO alert_deliveries (org_id, id, alert_id, channel_id, status, retry_until, last_status_code, last_error)
		 VALUES ('org_m', 'dlv_m', 'alr_m', 'chn_m', 'failed', now(), 400, 'not retried: HTTP 400: {"error":"db password is hunter2"}')`,
		`INSERT INTO alert_delivery_attempts (delivery_id, number, outcome, status_code, error) VALUES
		 ('dlv_m', 1, 'retry', 503, 'HTTP 503: upstream hunter2 down'),
		 ('dlv_m', 2, 'failed', 400, 'HTTP 400: {"error":"db password is hunter2"}'),
		 ('dlv_m', 3, 'retry', 0, 'dial tcp 203.0.113.1:443: connect: connection refused')`,
		`INSERT INTO domain_events (id, org_id, occurred_at, domain, type, entity_type, entity_id, summary, data, actor_kind)
		 VALUES ('evt_m', 'org_m', now(), 'alerts', 'alert_delivery_failed', 'alert', 'alr_m',
		         'Delivery of an alert to hook (webhook) failed after 2 attempts: not retried: HTTP 400: hunter2',
		         '{"attempts": 2, "error": "not retried: HTTP 400: hunter2"}', 'system')`,
	} {
		_, err := pool.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	_, err = db.MigrateUp(ctx, pool)
	require.NoError(t, err)

	rows, err := pool.Query(ctx, `SELECT error, classification FROM alert_delivery_attempts WHERE delivery_id = 'dlv_m' ORDER BY number`)
	require.NoError(t, err)
	var got [][2]string
	for rows.Next() {
		var e, c string
		require.NoError(t, rows.Scan(&e, &c))
		got = append(got, [2]string{e, c})
	}
	require.NoError(t, rows.Err())
	require.Equal(t, [][2]string{{"HTTP 503", "http_5xx"}, {"HTTP 400", "http_4xx"},
		{"dial tcp 203.0.113.1:443: connect: connection refused", ""}}, got)
	var lastError, summary, evError, secret string
	require.NoError(t, pool.QueryRow(ctx, `SELECT last_error FROM alert_deliveries WHERE id = 'dlv_m'`).Scan(&lastError))
	require.Equal(t, "not retried: HTTP 400", lastError)
	require.NoError(t, pool.QueryRow(ctx, `SELECT summary, data->>'error' FROM domain_events WHERE id = 'evt_m'`).Scan(&summary, &evError))
	require.Equal(t, "Delivery of an alert to hook (webhook) failed after 2 attempts: not retried: HTTP 400", summary)
	require.Equal(t, "not retried: HTTP 400", evError)
	require.NoError(t, pool.QueryRow(ctx, `SELECT secret FROM alert_channels WHERE id = 'chn_m'`).Scan(&secret))
	require.Equal(t, "whsec_legacy", secret, "sealed by the first api or worker to start, not by SQL")

	// Plaintext and ciphertext of one secret never coexist.
	_, err = pool.Exec(ctx, `UPDATE alert_channels SET secret_enc = '\x01' WHERE id = 'chn_m'`)
	require.ErrorContains(t, err, "alert_channels_secret_sealed")
	_, err = pool.Exec(ctx, `UPDATE alert_channels SET secret = '', secret_enc = '\x0102' WHERE id = 'chn_m'`)
	require.NoError(t, err)
	_, err = db.MigrateDown(ctx, pool, len(all)-5) // down through 0006
	require.ErrorContains(t, err, "encrypted credentials")
	st, err := db.MigrationStatuses(ctx, pool)
	require.NoError(t, err)
	require.NotNil(t, st[5].AppliedAt, "0006 stays applied")
}
