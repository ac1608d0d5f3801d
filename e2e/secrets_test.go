package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/alerts"
)

// A webhook channel's URL (with the credentials receivers put in it), signing secret and
// previous secret are stored encrypted: the row holds none of them in the clear, the API
// and the ledger show only the display form, and deliveries are still signed with both
// secrets per Standard Webhooks (verified by the project's own library).
func TestChannelCredentialsAreEncryptedAtRestAndStillSign(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	hook := newReceiver(t)
	url := "http://ops:pw_7c1e@" + hook.addr + "/hooks/governor?token=tok_91ab"
	created, err := tn.admin.alerts.CreateChannel(ctx, connect.NewRequest(&v1.CreateChannelRequest{Name: "sealed",
		Type: v1.ChannelType_CHANNEL_TYPE_WEBHOOK, Url: url}))
	require.NoError(t, err)
	ch := created.Msg.Channel
	first := created.Msg.Secret
	require.Equal(t, "http://****@"+hook.addr+"/hooks/governor?****", ch.Url)
	rot, err := tn.admin.alerts.RotateChannelSecret(ctx, connect.NewRequest(&v1.RotateChannelSecretRequest{Id: ch.Id}))
	require.NoError(t, err)
	second := rot.Msg.Secret

	var row string
	var secret, prev string
	var urlEnc, secretEnc, prevEnc []byte
	require.NoError(t, tn.pool.QueryRow(ctx, `SELECT to_jsonb(c)::text, secret, prev_secret, url_enc, secret_enc, prev_secret_enc
		FROM alert_channels c WHERE id = $1`, ch.Id).Scan(&row, &secret, &prev, &urlEnc, &secretEnc, &prevEnc))
	require.Empty(t, secret)
	require.Empty(t, prev)
	require.NotEmpty(t, urlEnc)
	require.NotEmpty(t, secretEnc)
	require.NotEmpty(t, prevEnc)
	for _, plain := range []string{first, second, strings.TrimPrefix(first, alerts.SecretPrefix), strings.TrimPrefix(second, alerts.SecretPrefix),
		"pw_7c1e", "tok_91ab"} {
		require.NotContains(t, row, plain, "the stored row")
	}
	entries, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{}))
	require.NoError(t, err)
	for _, e := range entries.Msg.Entries {
		for _, plain := range []string{"pw_7c1e", "tok_91ab", "whsec_"} {
			require.NotContains(t, e.BeforeJson+e.AfterJson, plain, "the audit ledger (%s)", e.Action)
		}
	}

	hook.verifyWith(first, second) // each signature must verify on its own
	test, err := tn.admin.alerts.TestChannel(ctx, connect.NewRequest(&v1.TestChannelRequest{Id: ch.Id}))
	require.NoError(t, err)
	got := hook.waitSuccesses(1)
	require.NoError(t, got[0].Verified)
	require.Len(t, strings.Fields(got[0].Signature), 2)
	require.Equal(t, test.Msg.Delivery.Id, got[0].ID)

	// The sealed secret copied into another channel's row does not open there: that
	// channel's delivery fails (classified config_error, not retried) and sends nothing.
	other := newReceiver(t)
	ch2 := tn.webhookChannel(t, other, "victim", nil)
	_, err = tn.pool.Exec(ctx, `UPDATE alert_channels SET secret_enc = (SELECT secret_enc FROM alert_channels WHERE id = $1) WHERE id = $2`, ch.Id, ch2.Id)
	require.NoError(t, err)
	test2, err := tn.admin.alerts.TestChannel(ctx, connect.NewRequest(&v1.TestChannelRequest{Id: ch2.Id}))
	require.NoError(t, err)
	d := waitDelivery(t, tn, test2.Msg.Alert.Id, ch2.Id)
	require.Equal(t, v1.DeliveryStatus_DELIVERY_STATUS_FAILED, d.Status)
	require.Equal(t, "config_error", d.LastClassification)
	require.Contains(t, d.Attempts[0].Error, "cannot open the channel's credentials")
	require.Empty(t, other.all())
}

// What a receiver answers is never stored or shown: a failure is recorded as its status
// and a classification.
func TestReceiverResponseBodiesAreNeverStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	const detail = "db password is hunter2 (internal stack trace)"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(detail))
	}))
	t.Cleanup(srv.Close)
	resp, err := tn.admin.alerts.CreateChannel(ctx, connect.NewRequest(&v1.CreateChannelRequest{Name: "chatty",
		Type: v1.ChannelType_CHANNEL_TYPE_WEBHOOK, Url: srv.URL + "/hook"}))
	require.NoError(t, err)
	test, err := tn.admin.alerts.TestChannel(ctx, connect.NewRequest(&v1.TestChannelRequest{Id: resp.Msg.Channel.Id}))
	require.NoError(t, err)
	d := waitDelivery(t, tn, test.Msg.Alert.Id, resp.Msg.Channel.Id)
	require.Equal(t, v1.DeliveryStatus_DELIVERY_STATUS_FAILED, d.Status)
	at := d.Attempts[0]
	require.Equal(t, "HTTP 400", at.Error)
	require.Equal(t, "http_4xx", at.Classification)
	require.EqualValues(t, 400, at.StatusCode)
	require.GreaterOrEqual(t, at.LatencyMs, int64(0))
	require.NotContains(t, d.LastError, "hunter2")
	var stored int
	require.NoError(t, tn.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM alert_delivery_attempts WHERE error LIKE '%hunter2%') +
		(SELECT count(*) FROM alert_deliveries WHERE last_error LIKE '%hunter2%' OR body::text LIKE '%hunter2%') +
		(SELECT count(*) FROM domain_events WHERE summary LIKE '%hunter2%' OR data::text LIKE '%hunter2%')`).Scan(&stored))
	require.Zero(t, stored, "the response body is nowhere in the database")
}
