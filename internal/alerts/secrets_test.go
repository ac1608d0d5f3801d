package alerts_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/api"
	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/alerts"
	"github.com/governor-hq/governor/internal/envelope"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/testenv"
)

func newKeyring(t *testing.T) *envelope.Keyring {
	t.Helper()
	k, err := envelope.ParseKEK(envelope.GenerateKEK())
	require.NoError(t, err)
	kr, err := envelope.NewKeyring(k)
	require.NoError(t, err)
	return kr
}

func newOrg(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	res, err := api.Bootstrap(context.Background(), pool, "test", api.BootstrapInput{OrgName: t.Name() + ids.New("o"), AdminEmail: "a@example.com"})
	require.NoError(t, err)
	return res.Organization.Id
}

// sealedChannel stores a webhook channel the way CreateChannel does.
func sealedChannel(t *testing.T, pool *pgxpool.Pool, kr *envelope.Keyring, org string, c alerts.Credentials) dbsqlc.AlertChannel {
	t.Helper()
	ctx := context.Background()
	id := ids.New(ids.Channel)
	s, err := alerts.Seal(ctx, pool, kr, org, id, alerts.ChannelWebhook, c)
	require.NoError(t, err)
	ch, err := dbsqlc.New().ChannelCreate(ctx, pool, dbsqlc.ChannelCreateParams{OrgID: org, ID: id, Name: "hook " + id, Type: alerts.ChannelWebhook,
		Url: s.DisplayURL, UrlEnc: s.URL, SecretEnc: s.Secret, EmailTo: []string{}, RetryInitialMs: 1000, RetryMaxIntervalMs: 1000,
		RetryMaxAgeMs: 60000, DisableAfterMs: 60000})
	require.NoError(t, err)
	return ch
}

func rowText(t *testing.T, pool *pgxpool.Pool, id string) string {
	t.Helper()
	var s string
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT to_jsonb(c)::text FROM alert_channels c WHERE id = $1", id).Scan(&s))
	return s
}

// A stored channel holds no credential in the clear, and a sealed credential opens only in
// the row, organization and field it was sealed for: copied to another channel of the
// same organization, to another organization's channel or to another field, it does not.
func TestSealedCredentialsOpenOnlyWhereTheyWereSealed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.DB(t)
	kr := newKeyring(t)
	orgA, orgB := newOrg(t, pool), newOrg(t, pool)
	creds := alerts.Credentials{URL: "https://ops:hunter2@hooks.example.com/governor?token=tok_4f9a", Secret: alerts.NewSecret()}
	a1 := sealedChannel(t, pool, kr, orgA, creds)
	a2 := sealedChannel(t, pool, kr, orgA, alerts.Credentials{URL: "https://other.example.com/", Secret: alerts.NewSecret()})
	b1 := sealedChannel(t, pool, kr, orgB, alerts.Credentials{URL: "https://b.example.com/", Secret: alerts.NewSecret()})

	row := rowText(t, pool, a1.ID)
	for _, plain := range []string{creds.Secret, strings.TrimPrefix(creds.Secret, alerts.SecretPrefix), "hunter2", "tok_4f9a"} {
		require.NotContains(t, row, plain)
	}
	require.Equal(t, "https://****@hooks.example.com/governor?****", a1.Url)
	require.Empty(t, a1.Secret)
	got, err := alerts.Open(ctx, pool, kr, a1)
	require.NoError(t, err)
	require.Equal(t, creds, got)

	moved := func(ch dbsqlc.AlertChannel, mut func(*dbsqlc.AlertChannel)) error {
		mut(&ch)
		_, err := alerts.Open(ctx, pool, kr, ch)
		return err
	}
	require.ErrorIs(t, moved(a2, func(c *dbsqlc.AlertChannel) { c.SecretEnc = a1.SecretEnc }), envelope.ErrDecrypt, "another channel of the organization")
	require.ErrorIs(t, moved(b1, func(c *dbsqlc.AlertChannel) { c.SecretEnc = a1.SecretEnc }), envelope.ErrDecrypt, "another organization")
	require.ErrorIs(t, moved(a1, func(c *dbsqlc.AlertChannel) { c.SecretEnc = a1.UrlEnc }), envelope.ErrDecrypt, "another field")
	require.ErrorIs(t, moved(a1, func(c *dbsqlc.AlertChannel) { c.OrgID = orgB }), envelope.ErrDecrypt, "the row claiming another organization")

	// Another process's KEK cannot unwrap the organization's data key at all.
	_, err = alerts.Open(ctx, pool, newKeyring(t), a1)
	require.ErrorIs(t, err, envelope.ErrUnknownKEK)
	var kekID string
	require.NoError(t, pool.QueryRow(ctx, "SELECT kek_id FROM org_data_keys WHERE org_id = $1", orgA).Scan(&kekID))
	require.Equal(t, kr.Primary().ID(), kekID)
}

// Channels stored before encryption at rest are sealed by SealPlaintext: plaintext
// columns cleared, URL reduced to its display form, credentials unchanged when opened.
// Two processes sealing at once share the work; a second pass finds nothing.
func TestSealPlaintextSealsChannelsStoredBeforeEncryption(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := testenv.FreshDB(t)
	kr := newKeyring(t)
	org := newOrg(t, pool)
	const n = 230 // more than two batches
	want := map[string]alerts.Credentials{}
	for i := range n {
		id := ids.New(ids.Channel)
		typ, c := alerts.ChannelWebhook, alerts.Credentials{URL: fmt.Sprintf("https://hooks.example.com/%d?token=t%d", i, i), Secret: alerts.NewSecret(), PrevSecret: alerts.NewSecret()}
		if i%3 == 0 {
			typ, c = alerts.ChannelSlack, alerts.Credentials{URL: fmt.Sprintf("https://hooks.slack.com/services/T/B/secret%d", i)}
		}
		// As the service wrote channels before migration 0006.
		_, err := pool.Exec(ctx, `INSERT INTO alert_channels (org_id, id, name, type, url, secret, prev_secret, prev_secret_expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, now() + interval '1 hour')`, org, id, "legacy "+id, typ, c.URL, c.Secret, c.PrevSecret)
		require.NoError(t, err)
		want[id] = c
	}
	_, err := pool.Exec(ctx, `INSERT INTO alert_channels (org_id, id, name, type, email_to) VALUES ($1, $2, 'mail', 'email', '{a@example.com}')`, org, ids.New(ids.Channel))
	require.NoError(t, err)

	// Unsealed rows still deliver meanwhile.
	for id, c := range want {
		ch, err := dbsqlc.New().ChannelGetByID(ctx, pool, id)
		require.NoError(t, err)
		got, err := alerts.Open(ctx, pool, kr, ch)
		require.NoError(t, err)
		require.Equal(t, c, got)
		break
	}

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var wg sync.WaitGroup
	counts := make([]int, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { counts[i], errs[i] = alerts.SealPlaintext(ctx, pool, kr, log) })
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.Equal(t, n, counts[0]+counts[1], "every legacy channel sealed once")
	again, err := alerts.SealPlaintext(ctx, pool, kr, log)
	require.NoError(t, err)
	require.Zero(t, again)

	for id, c := range want {
		ch, err := dbsqlc.New().ChannelGetByID(ctx, pool, id)
		require.NoError(t, err)
		require.Empty(t, ch.Secret)
		require.Empty(t, ch.PrevSecret)
		require.NotNil(t, ch.UrlEnc)
		require.Equal(t, alerts.DisplayURL(ch.Type, c.URL), ch.Url)
		row := rowText(t, pool, id)
		for _, plain := range []string{c.URL, c.Secret, c.PrevSecret} {
			if plain != "" {
				require.NotContains(t, row, plain)
			}
		}
		got, err := alerts.Open(ctx, pool, kr, ch)
		require.NoError(t, err)
		require.Equal(t, c, got)
	}
}
