package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/api"
	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/alerts"
	"github.com/governor-hq/governor/internal/config"
	"github.com/governor-hq/governor/internal/envelope"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/testenv"
)

// Not parallel: it clears the KEK variables of the environment.
func TestAPIAndWorkerRefuseToStartWithoutAKEK(t *testing.T) {
	t.Setenv("GOVERNOR_KEK", "")
	t.Setenv("GOVERNOR_KEK_FILE", "")
	for _, sub := range []string{"api", "worker"} {
		_, err := run(t, sub, "--database-url", "postgres://nobody@127.0.0.1:1/none", "--http-addr", "127.0.0.1:0")
		require.ErrorContains(t, err, "no key-encryption key", sub)
		require.ErrorContains(t, err, "GOVERNOR_KEK", sub)
	}
	bad := filepath.Join(t.TempDir(), "bad-kek")
	require.NoError(t, os.WriteFile(bad, []byte("not a key\n"), 0o600))
	_, err := run(t, "api", "--database-url", "postgres://nobody@127.0.0.1:1/none", "--kek-file", bad)
	require.ErrorContains(t, err, "base64 of 32 random bytes")
	t.Setenv("GOVERNOR_KEK", envelope.GenerateKEK()[:20])
	_, err = run(t, "worker", "--database-url", "postgres://nobody@127.0.0.1:1/none")
	require.ErrorContains(t, err, "GOVERNOR_KEK")
}

func TestGenerateKEKNeverReplacesAKey(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "keys", "kek")
	out, err := run(t, "admin", "generate-kek", "--out", f)
	require.NoError(t, err)
	require.Contains(t, out, "wrote a new key-encryption key kek_")
	first, err := os.ReadFile(f)
	require.NoError(t, err)
	st, err := os.Stat(f)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	k, err := envelope.ParseKEK(string(first))
	require.NoError(t, err)
	out, err = run(t, "admin", "generate-kek", "--out", f)
	require.NoError(t, err)
	require.Contains(t, out, "exists and was kept: key-encryption key "+k.ID())
	again, err := os.ReadFile(f)
	require.NoError(t, err)
	require.Equal(t, first, again)
}

// governor dev makes its key file on first start and keeps using it, and allows loopback
// and http for alert channels — saying so.
func TestDevMakesItsKEKAndAllowsLoopbackVisibly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	cfg := config.Config{DataDir: dir}
	kr, err := devSecurity(&cfg, log)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "kek"), cfg.KEKFile)
	st, err := os.Stat(cfg.KEKFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	require.Equal(t, devLoopback, cfg.AlertAllowCIDRs)
	require.True(t, cfg.AlertAllowHTTP)
	require.Contains(t, logs.String(), "made a key-encryption key")
	require.Contains(t, logs.String(), "alert channels may reach loopback")

	logs.Reset()
	cfg2 := config.Config{DataDir: dir, AlertAllowCIDRs: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}}
	kr2, err := devSecurity(&cfg2, log)
	require.NoError(t, err)
	require.Equal(t, kr.Primary().ID(), kr2.Primary().ID(), "the same key on the next start")
	require.Contains(t, logs.String(), "using governor dev's key-encryption key")
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}, cfg2.AlertAllowCIDRs, "an explicit allowlist is kept")
}

// signedReceiver verifies every request with the Standard Webhooks library and the
// channel's secret.
type signedReceiver struct {
	srv    *httptest.Server
	secret string
	mu     sync.Mutex
	good   int
	bad    []error
}

func newSignedReceiver(t *testing.T, secret string) *signedReceiver {
	r := &signedReceiver{secret: secret}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		wh, err := standardwebhooks.NewWebhook(r.secret)
		if err == nil {
			err = wh.Verify(body, req.Header)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			r.bad = append(r.bad, err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		r.good++
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *signedReceiver) verified() (int, []error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.good, append([]error(nil), r.bad...)
}

// deliverOnce raises an alert for the organization's channels and makes its webhook
// delivery's next attempt with a deliverer holding kr (the body of the real activity).
func deliverOnce(t *testing.T, pool *pgxpool.Pool, kr *envelope.Keyring, org, channelID string) alerts.AttemptResult {
	t.Helper()
	ctx := context.Background()
	var alertID string
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		alertID, _, err = alerts.Raise(ctx, tx, alerts.Trigger{OrgID: org, Kind: alerts.KindIncident, Severity: alerts.SeverityHigh,
			DedupeKey: "rotate/" + ids.New("k"), Title: "Incident opened", Entity: events.Ref{Type: "incident", ID: "inc_x"}})
		return err
	}))
	dels, err := dbsqlc.New().DeliveriesOfAlert(ctx, pool, dbsqlc.DeliveriesOfAlertParams{OrgID: org, AlertID: alertID})
	require.NoError(t, err)
	deliverer := alerts.NewDeliverer(pool, slog.New(slog.NewTextHandler(io.Discard, nil)), alerts.DeliverOptions{Keyring: kr,
		Endpoints: alerts.EndpointPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, AllowHTTP: true}})
	for _, d := range dels {
		if d.ChannelID == channelID {
			res, err := deliverer.Attempt(ctx, d.ID)
			require.NoError(t, err)
			return res
		}
	}
	t.Fatalf("no delivery of %s to %s", alertID, channelID)
	return alerts.AttemptResult{}
}

func keyring(t *testing.T, primary string, accepted ...string) *envelope.Keyring {
	t.Helper()
	p, err := readKEKFile(primary)
	require.NoError(t, err)
	var acc []envelope.KEK
	for _, f := range accepted {
		k, err := readKEKFile(f)
		require.NoError(t, err)
		acc = append(acc, k)
	}
	kr, err := envelope.NewKeyring(p, acc...)
	require.NoError(t, err)
	return kr
}

// rotate-kek end to end: channels sealed under the old KEK keep delivering, signed as
// before (verified by the Standard Webhooks library), once every data key is re-wrapped
// under the new one; a process with only the old KEK can no longer open them; a second run
// changes nothing; each re-wrap is on its organization's (intact) audit ledger.
func TestRotateKEKRewrapsEveryDataKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, url := testenv.FreshDB(t)
	dir := t.TempDir()
	oldFile, newFile := filepath.Join(dir, "old"), filepath.Join(dir, "new")
	for _, f := range []string{oldFile, newFile} {
		_, err := run(t, "admin", "generate-kek", "--out", f)
		require.NoError(t, err)
	}
	oldKR, newKR := keyring(t, oldFile), keyring(t, newFile)

	var orgs, channels []string
	var receivers []*signedReceiver
	for i := range 2 {
		res, err := api.Bootstrap(ctx, pool, "test", api.BootstrapInput{OrgName: "org " + string(rune('A'+i)), AdminEmail: "a@example.com"})
		require.NoError(t, err)
		org := res.Organization.Id
		secret := alerts.NewSecret()
		r := newSignedReceiver(t, secret)
		id := ids.New(ids.Channel)
		s, err := alerts.Seal(ctx, pool, oldKR, org, id, alerts.ChannelWebhook, alerts.Credentials{URL: r.srv.URL + "/hook", Secret: secret})
		require.NoError(t, err)
		_, err = dbsqlc.New().ChannelCreate(ctx, pool, dbsqlc.ChannelCreateParams{OrgID: org, ID: id, Name: "hook", Type: alerts.ChannelWebhook,
			Url: s.DisplayURL, UrlEnc: s.URL, SecretEnc: s.Secret, EmailTo: []string{}, RetryInitialMs: 1000, RetryMaxIntervalMs: 1000,
			RetryMaxAgeMs: 60000, DisableAfterMs: 3600000})
		require.NoError(t, err)
		orgs, channels, receivers = append(orgs, org), append(channels, id), append(receivers, r)
		require.Equal(t, alerts.StatusDelivered, deliverOnce(t, pool, oldKR, org, id).Status)
	}

	out, err := run(t, "admin", "rotate-kek", "--database-url", url, "--kek-file", oldFile, "--new-kek-file", newFile)
	require.NoError(t, err, out)
	require.Contains(t, out, "re-wrapped 2 data keys under "+newKR.Primary().ID()+" (0 were under it already)")
	var under int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM org_data_keys WHERE kek_id = $1", newKR.Primary().ID()).Scan(&under))
	require.Equal(t, 2, under)

	for i, org := range orgs {
		stale := deliverOnce(t, pool, oldKR, org, channels[i])
		require.Equal(t, alerts.StatusPending, stale.Status, "retried, so that a process with the new key delivers it")
		require.Contains(t, stale.Error, "unknown key-encryption key")
		require.Equal(t, alerts.StatusDelivered, deliverOnce(t, pool, newKR, org, channels[i]).Status)
		require.Equal(t, alerts.StatusDelivered, deliverOnce(t, pool, keyring(t, newFile, oldFile), org, channels[i]).Status, "during the switch")
		good, bad := receivers[i].verified()
		require.Empty(t, bad)
		require.Equal(t, 3, good, "every delivery verified with the channel's secret")
	}

	out, err = run(t, "admin", "rotate-kek", "--database-url", url, "--kek-file", newFile, "--kek-accept-files", oldFile, "--new-kek-file", newFile)
	require.NoError(t, err, out)
	require.Contains(t, out, "re-wrapped 0 data keys under "+newKR.Primary().ID()+" (2 were under it already)")

	// A KEK that wrapped nothing here cannot be the source.
	stranger := filepath.Join(dir, "stranger")
	_, err = run(t, "admin", "generate-kek", "--out", stranger)
	require.NoError(t, err)
	third := filepath.Join(dir, "third")
	_, err = run(t, "admin", "generate-kek", "--out", third)
	require.NoError(t, err)
	_, err = run(t, "admin", "rotate-kek", "--database-url", url, "--kek-file", stranger, "--new-kek-file", third)
	require.ErrorContains(t, err, "do not hold")
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM org_data_keys WHERE kek_id = $1", newKR.Primary().ID()).Scan(&under))
	require.Equal(t, 2, under, "a failed rotation changes nothing")

	var entries int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM audit_entries WHERE action = 'data_key.rewrap'
		AND actor_kind = 'system' AND actor_system = 'cli:admin rotate-kek'`).Scan(&entries))
	require.Equal(t, 2, entries, "one per organization")
	out, err = run(t, "admin", "verify-audit", "--database-url", url)
	require.NoError(t, err, out)
	require.Equal(t, 2, strings.Count(out, "intact"))
}
