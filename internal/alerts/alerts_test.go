package alerts_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/api"
	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/alerts"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestCrossings(t *testing.T) {
	t.Parallel()
	th := []int32{80, 90, 100}
	cases := []struct {
		before, after int64
		want          []alerts.Crossing
	}{
		{0, 79, nil},
		{79, 80, []alerts.Crossing{{Threshold: 80}}},
		{80, 85, nil},
		{50, 95, []alerts.Crossing{{Threshold: 80}, {Threshold: 90}}},
		{95, 100, []alerts.Crossing{{Threshold: 100}}},                                  // reached exactly
		{95, 105, []alerts.Crossing{{Exceeded: true}}},                                  // past it: one alert, not two
		{0, 120, []alerts.Crossing{{Threshold: 80}, {Threshold: 90}, {Exceeded: true}}}, // all at once
		{100, 101, []alerts.Crossing{{Exceeded: true}}},
		{101, 150, nil},
		{90, 85, nil}, // a refund
	}
	for _, c := range cases {
		require.Equal(t, c.want, alerts.Crossings(100, th, c.before, c.after), "%d -> %d", c.before, c.after)
	}
	require.Equal(t, []alerts.Crossing{{Threshold: 120}}, alerts.Crossings(100, []int32{120}, 110, 121))
}

func TestSelectRoutes(t *testing.T) {
	t.Parallel()
	inApp := dbsqlc.AlertChannel{ID: "chn_app", Type: alerts.ChannelInApp, Enabled: true}
	hook := dbsqlc.AlertChannel{ID: "chn_hook", Type: alerts.ChannelWebhook, Enabled: true}
	mail := dbsqlc.AlertChannel{ID: "chn_mail", Type: alerts.ChannelEmail, Enabled: true}
	off := dbsqlc.AlertChannel{ID: "chn_off", Type: alerts.ChannelSlack, Enabled: false}
	chans := []dbsqlc.AlertChannel{inApp, hook, mail, off}
	ids := func(cs []dbsqlc.AlertChannel) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}
	// No routes: in-app always, external channels for high and critical.
	require.Equal(t, []string{"chn_app"}, ids(alerts.Select(alerts.KindAnomaly, alerts.SeverityWarning, chans, nil)))
	require.Equal(t, []string{"chn_app", "chn_hook", "chn_mail"}, ids(alerts.Select(alerts.KindAnomaly, alerts.SeverityHigh, chans, nil)))
	// Routes by kind and severity; in-app keeps everything while no route names it.
	routes := []dbsqlc.AlertRoute{
		{ID: "r1", Kinds: []string{alerts.KindLimitThreshold}, MinSeverity: alerts.SeverityInfo, ChannelIds: []string{"chn_hook"}, Enabled: true},
		{ID: "r2", MinSeverity: alerts.SeverityCritical, ChannelIds: []string{"chn_mail", "chn_off"}, Enabled: true},
		{ID: "r3", MinSeverity: alerts.SeverityInfo, ChannelIds: []string{"chn_mail"}, Enabled: false},
	}
	require.Equal(t, []string{"chn_app", "chn_hook"}, ids(alerts.Select(alerts.KindLimitThreshold, alerts.SeverityWarning, chans, routes)))
	require.Equal(t, []string{"chn_app"}, ids(alerts.Select(alerts.KindAnomaly, alerts.SeverityHigh, chans, routes)))
	require.Equal(t, []string{"chn_app", "chn_mail"}, ids(alerts.Select(alerts.KindAnomaly, alerts.SeverityCritical, chans, routes)), "disabled channels get nothing")
	// A route naming the in-app channel makes routes decide for it too.
	routes = append(routes, dbsqlc.AlertRoute{ID: "r4", MinSeverity: alerts.SeverityHigh, ChannelIds: []string{"chn_app"}, Enabled: true})
	require.Empty(t, ids(alerts.Select(alerts.KindAnomaly, alerts.SeverityWarning, chans, routes)))
	require.Equal(t, []string{"chn_app"}, ids(alerts.Select(alerts.KindAnomaly, alerts.SeverityHigh, chans, routes)))
}

// Governor's signatures verify with the Standard Webhooks project's own Go library, with
// each of the secrets while a rotated-out one is still valid.
func TestSignaturesVerifyWithTheStandardWebhooksLibrary(t *testing.T) {
	t.Parallel()
	secret, prev := alerts.NewSecret(), alerts.NewSecret()
	require.Regexp(t, `^whsec_[A-Za-z0-9+/]{43}=$`, secret)
	body := []byte(`{"type":"alert.test","data":{}}`)
	now := time.Now()
	h := http.Header{}
	h.Set("webhook-id", "dlv_test")
	h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("webhook-signature", alerts.Sign(secret, "dlv_test", now, body)+" "+alerts.Sign(prev, "dlv_test", now, body))
	for _, s := range []string{secret, prev} {
		wh, err := standardwebhooks.NewWebhook(s)
		require.NoError(t, err)
		require.NoError(t, wh.Verify(body, h))
		require.Error(t, wh.Verify([]byte(`{"tampered":true}`), h))
	}
	other, _ := standardwebhooks.NewWebhook(alerts.NewSecret())
	require.Error(t, other.Verify(body, h))
	// And the library's signature is ours.
	wh, _ := standardwebhooks.NewWebhook(secret)
	theirs, err := wh.Sign("dlv_test", now, body)
	require.NoError(t, err)
	require.Equal(t, theirs, alerts.Sign(secret, "dlv_test", now, body))
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	for n, want := range map[int32]time.Duration{1: 5 * time.Second, 2: 10 * time.Second, 5: 80 * time.Second} {
		got := alerts.Backoff(n, 5*time.Second, time.Hour)
		require.InDelta(t, float64(want), float64(got), 0.2*float64(want)+1, "attempt %d", n)
	}
	require.LessOrEqual(t, alerts.Backoff(40, 5*time.Second, time.Hour), time.Hour)
	// Over a day of retries with the defaults: at least ~30 attempts before the 72 h end.
	var total time.Duration
	n := int32(0)
	for total < 24*time.Hour {
		n++
		total += alerts.Backoff(n, alerts.DefaultRetryInitial, alerts.DefaultRetryMaxInterval)
	}
	require.Greater(t, n, int32(25))
}

func TestMoney(t *testing.T) {
	t.Parallel()
	require.Equal(t, "$1,050.00", alerts.Money(1_050_000_000))
	require.Equal(t, "$0.005", alerts.Money(5_000), "one formatter for money: fractions of a cent are shown, not rounded away")
	require.Equal(t, "$82.00", alerts.Money(82_000_000))
	require.Equal(t, "$1,234,567.89", alerts.Money(1_234_567_890_000))
	require.Equal(t, "-$3.50", alerts.Money(-3_500_000))
}

// 50 transactions raise the same alert at once: one creates it, the others wait for it to
// commit and get it back. One delivery per channel, one workflow start per delivery.
func TestRaiseIsExactlyOnceUnderConcurrency(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.DB(t)
	res, err := api.Bootstrap(ctx, pool, "test", api.BootstrapInput{OrgName: t.Name(), AdminEmail: "a@example.com"})
	require.NoError(t, err)
	org := res.Organization.Id
	for i := range 2 {
		_, err := dbsqlc.New().ChannelCreate(ctx, pool, dbsqlc.ChannelCreateParams{OrgID: org, ID: ids.New(ids.Channel), Name: "hook " + strconv.Itoa(i),
			Type: alerts.ChannelWebhook, Url: "http://127.0.0.1:1/", EmailTo: []string{}, RetryInitialMs: 1000,
			RetryMaxIntervalMs: 1000, RetryMaxAgeMs: 60000, DisableAfterMs: 60000})
		require.NoError(t, err)
	}
	tr := alerts.Trigger{OrgID: org, Kind: alerts.KindIncident, Severity: alerts.SeverityCritical, DedupeKey: "incident/inc_x/opened",
		Title: "Incident opened", Entity: events.Ref{Type: "incident", ID: "inc_x"}}
	var mu sync.Mutex
	got := map[string]int{}
	created := 0
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, 50) // one per goroutine, asserted once all are done
	for i := range 50 {
		wg.Go(func() {
			<-start
			errs[i] = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				id, c, err := alerts.Raise(ctx, tx, tr)
				if err != nil {
					return err
				}
				mu.Lock()
				defer mu.Unlock()
				got[id]++
				if c {
					created++
				}
				return nil
			})
		})
	}
	close(start)
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	require.Len(t, got, 1, "one alert id")
	require.Equal(t, 1, created)
	var alertID string
	for id := range got {
		alertID = id
	}
	dels, err := dbsqlc.New().DeliveriesOfAlert(ctx, pool, dbsqlc.DeliveriesOfAlertParams{OrgID: org, AlertID: alertID})
	require.NoError(t, err)
	require.Len(t, dels, 3, "two webhooks and the in-app channel")
	var starts int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM workflow_outbox WHERE workflow_id LIKE $1", "alert/"+alertID+"/%").Scan(&starts))
	require.Equal(t, 2, starts)
	var notes int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM notifications WHERE alert_id = $1", alertID).Scan(&notes))
	require.Equal(t, 1, notes)

	_, _, err = alerts.Raise(ctx, nil, alerts.Trigger{OrgID: org, Kind: "nonsense", Severity: "info", DedupeKey: "k", Title: "t"})
	require.ErrorIs(t, err, alerts.ErrInvalidTrigger)
}
