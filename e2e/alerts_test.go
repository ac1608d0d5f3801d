package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/alerts"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/lifecycle"
)

// Seed 000, phase 5.3: "Set alert: notify when spend > 80% of budget. Spend reaches 82%.
// EXPECT: Webhook fired, in-app notification shown" — each exactly once.
func TestPhase53AlertAt80PercentFiresWebhookAndInAppOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "America/New_York")
	ag := tn.newAgent(t, "spender")
	hook := newReceiver(t)
	ch := tn.webhookChannel(t, hook, "ops webhook", nil)
	tn.route(t, v1.AlertSeverity_ALERT_SEVERITY_INFO, []v1.AlertKind{v1.AlertKind_ALERT_KIND_LIMIT_THRESHOLD}, ch.Id)
	lim := tn.createLimit(t, &v1.CreateLimitRequest{Name: "daily budget", Scope: orgScope(), Metric: v1.LimitMetric_LIMIT_METRIC_COST,
		Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 100 * dollar, AlertThresholdsPercent: []int32{80}})

	spend(t, tn, ag, 41*dollar)
	require.Empty(t, tn.alertsOf(t), "41% crosses nothing")
	spend(t, tn, ag, 41*dollar) // 82%

	got := hook.waitSuccesses(1)
	require.Equal(t, "alert.limit_threshold", got[0].Payload.Type)
	require.Equal(t, lim.Id, got[0].Payload.Data.Data["limit_id"])
	require.EqualValues(t, 80, got[0].Payload.Data.Data["threshold"])
	require.EqualValues(t, 82, got[0].Payload.Data.Data["percent"])
	require.Contains(t, got[0].Payload.Data.Title, "82.00")

	notes := tn.notifications(t)
	require.Len(t, notes, 1)
	require.Equal(t, v1.AlertKind_ALERT_KIND_LIMIT_THRESHOLD, notes[0].Kind)
	require.Equal(t, got[0].Payload.Data.ID, notes[0].AlertId)
	require.False(t, notes[0].Read)

	// More spend below the next threshold fires nothing more; nor does time. The spend has
	// settled (alerts are raised in that transaction) and the one delivery workflow is
	// over with nothing owed: nothing else can reach the receiver.
	spend(t, tn, ag, 5*dollar)
	alerts := tn.alertsOf(t)
	require.Len(t, alerts, 1)
	tn.waitDeliveriesDone(t, alerts[0].Id, ch.Id)
	require.Len(t, hook.all(), 1, "the webhook fired once")
	require.Len(t, tn.notifications(t), 1, "one in-app notification")

	dels := tn.deliveriesOf(t, alerts[0].Id)
	require.Len(t, dels, 2, "the webhook and the in-app channel")
	for _, d := range dels {
		require.Equal(t, v1.DeliveryStatus_DELIVERY_STATUS_DELIVERED, d.Status, d.ChannelType)
		require.Len(t, d.Attempts, 1)
		require.Equal(t, v1.AttemptOutcome_ATTEMPT_OUTCOME_DELIVERED, d.Attempts[0].Outcome)
		if d.ChannelType == v1.ChannelType_CHANNEL_TYPE_WEBHOOK {
			require.Equal(t, "alert/"+alerts[0].Id+"/"+ch.Id, d.WorkflowId)
			require.Equal(t, got[0].ID, d.MessageId)
			require.EqualValues(t, http.StatusOK, d.Attempts[0].StatusCode)
		}
	}

	// Reading it.
	marked, err := tn.admin.alerts.MarkNotificationRead(ctx, connect.NewRequest(&v1.MarkNotificationReadRequest{Ids: []string{notes[0].Id}}))
	require.NoError(t, err)
	require.EqualValues(t, 1, marked.Msg.Marked)
	require.EqualValues(t, 0, marked.Msg.UnreadCount)
	unread, err := tn.admin.alerts.ListNotifications(ctx, connect.NewRequest(&v1.ListNotificationsRequest{UnreadOnly: true}))
	require.NoError(t, err)
	require.Empty(t, unread.Msg.Notifications)
}

// raise raises an alert directly (as incidents and proposals do, in their transactions).
func raise(t *testing.T, tn *tenant, tr alerts.Trigger) string {
	t.Helper()
	tr.OrgID = tn.org.Organization.Id
	var id string
	require.NoError(t, pgx.BeginFunc(context.Background(), tn.pool, func(tx pgx.Tx) error {
		var err error
		id, _, err = alerts.Raise(context.Background(), tx, tr)
		return err
	}))
	return id
}

func incidentTrigger(n int) alerts.Trigger {
	return alerts.Trigger{Kind: alerts.KindIncident, Severity: alerts.SeverityHigh, DedupeKey: fmt.Sprintf("incident/inc_test_%d/opened", n),
		Title: fmt.Sprintf("Incident %d opened", n), Entity: events.Ref{Type: "incident", ID: fmt.Sprintf("inc_test_%d", n)}}
}

// The receiver answers 503 (with Retry-After) for a while, then is down altogether, then
// comes back. Every alert arrives, verified, exactly once with a 2xx, under the webhook-id
// it had from its first attempt; every attempt is on record; Retry-After was honoured.
func TestWebhookReceiverDownThenUpGetsEveryEventWithStableIDs(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	hook := newReceiver(t)
	hook.respond(http.StatusServiceUnavailable, "1")
	ch := tn.webhookChannel(t, hook, "flaky endpoint", nil)

	const n = 5
	ids := map[string]bool{}
	for i := range n {
		ids[raise(t, tn, incidentTrigger(i))] = true
	}
	// Phase 1: 503 with Retry-After: 1.
	eventually(t, patience, func() bool { return len(hook.all()) >= 2*n })
	firstIDs := map[string]string{} // alert id -> webhook-id seen first
	for _, g := range hook.all() {
		require.NoError(t, g.Verified)
		if _, ok := firstIDs[g.Payload.Data.ID]; !ok {
			firstIDs[g.Payload.Data.ID] = g.ID
		}
		require.Equal(t, firstIDs[g.Payload.Data.ID], g.ID, "webhook-id is stable across retries")
	}
	require.Len(t, firstIDs, n)
	// Phase 2: down, until every delivery has recorded an attempt that found nobody
	// listening (Retry-After and the backoff are at most 1 s).
	hook.down()
	eventually(t, patience, func() bool {
		for id := range ids {
			refused := false
			for _, d := range tn.deliveriesOf(t, id) {
				for _, at := range d.Attempts {
					refused = refused || (d.ChannelId == ch.Id && at.StatusCode == 0 && at.FinishTime != nil)
				}
			}
			if !refused {
				return false
			}
		}
		return true
	}, "every delivery tries while the receiver is down")
	// Phase 3: back.
	hook.respond(http.StatusOK, "")
	hook.up()
	hook.waitSuccesses(n)
	for id := range ids {
		tn.waitDeliveriesDone(t, id, ch.Id)
	}
	got := hook.successes()
	require.Len(t, got, n, "each event arrives once")
	for _, g := range got {
		require.True(t, ids[g.Payload.Data.ID])
		require.Equal(t, firstIDs[g.Payload.Data.ID], g.ID, "same webhook-id as the first attempt")
	}

	for id := range ids {
		var wh *v1.Delivery
		for _, d := range tn.deliveriesOf(t, id) {
			if d.ChannelId == ch.Id {
				wh = d
			}
		}
		require.NotNil(t, wh)
		require.Equal(t, v1.DeliveryStatus_DELIVERY_STATUS_DELIVERED, wh.Status)
		require.GreaterOrEqual(t, len(wh.Attempts), 3, "503s, connection refused, then delivered")
		require.EqualValues(t, len(wh.Attempts), wh.AttemptCount)
		last := wh.Attempts[len(wh.Attempts)-1]
		require.Equal(t, v1.AttemptOutcome_ATTEMPT_OUTCOME_DELIVERED, last.Outcome)
		refused := false
		for i, at := range wh.Attempts[:len(wh.Attempts)-1] {
			require.Equal(t, v1.AttemptOutcome_ATTEMPT_OUTCOME_RETRY, at.Outcome, "attempt %d", at.Number)
			require.EqualValues(t, i+1, at.Number)
			require.NotEmpty(t, at.Error)
			if at.StatusCode == http.StatusServiceUnavailable {
				require.Equal(t, time.Second, at.RetryAfter.AsDuration())
				next := wh.Attempts[i+1].StartTime.AsTime()
				require.GreaterOrEqual(t, next.Sub(at.FinishTime.AsTime()), 950*time.Millisecond, "Retry-After honoured")
			}
			if at.StatusCode == 0 {
				refused = true
			}
		}
		require.True(t, refused, "attempts while the receiver was down are recorded too")
	}
}

// A 4xx other than 429 is final: one attempt, then the delivery has failed. Once the
// receiver is fixed, RedeliverAlert sends it again, with the same webhook-id.
func TestWebhook4xxIsNotRetriedAndRedeliverAlertSendsAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	hook := newReceiver(t)
	hook.respond(http.StatusBadRequest, "")
	ch := tn.webhookChannel(t, hook, "strict endpoint", nil)
	id := raise(t, tn, incidentTrigger(1))

	var wh *v1.Delivery
	eventually(t, patience, func() bool {
		for _, d := range tn.deliveriesOf(t, id) {
			if d.ChannelId == ch.Id {
				wh = d
			}
		}
		return wh != nil && wh.Status == v1.DeliveryStatus_DELIVERY_STATUS_FAILED
	})
	require.Len(t, wh.Attempts, 1)
	require.Equal(t, v1.AttemptOutcome_ATTEMPT_OUTCOME_FAILED, wh.Attempts[0].Outcome)
	require.EqualValues(t, http.StatusBadRequest, wh.Attempts[0].StatusCode)
	require.Contains(t, wh.LastError, "not retried")
	tn.waitDeliveriesDone(t, id, ch.Id)
	require.Len(t, hook.all(), 1, "not retried")

	// Not failed: nothing to redeliver for the in-app channel.
	_, err := tn.admin.alerts.RedeliverAlert(ctx, connect.NewRequest(&v1.RedeliverAlertRequest{AlertId: id, ChannelId: "chn_nope"}))
	requireCode(t, connect.CodeFailedPrecondition, err)

	hook.respond(http.StatusNoContent, "")
	re, err := tn.admin.alerts.RedeliverAlert(ctx, connect.NewRequest(&v1.RedeliverAlertRequest{AlertId: id}))
	require.NoError(t, err)
	require.Len(t, re.Msg.Deliveries, 1)
	require.Equal(t, v1.DeliveryStatus_DELIVERY_STATUS_PENDING, re.Msg.Deliveries[0].Status)
	got := hook.waitSuccesses(1)
	require.Equal(t, hook.all()[0].ID, got[0].ID, "a redelivery keeps the webhook-id")
	eventually(t, patience, func() bool {
		for _, d := range tn.deliveriesOf(t, id) {
			if d.ChannelId == ch.Id {
				wh = d
			}
		}
		return wh.Status == v1.DeliveryStatus_DELIVERY_STATUS_DELIVERED
	})
	require.Len(t, wh.Attempts, 2)
	entries, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{Action: "alert.redeliver"}))
	require.NoError(t, err)
	require.Len(t, entries.Msg.Entries, 1)
	_, err = tn.admin.alerts.RedeliverAlert(ctx, connect.NewRequest(&v1.RedeliverAlertRequest{AlertId: id}))
	requireCode(t, connect.CodeFailedPrecondition, err)
}

// 429 with Retry-After is retried after (at least) the time asked for.
func TestWebhook429HonoursRetryAfter(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	hook := newReceiver(t)
	hook.respond(http.StatusTooManyRequests, "2")
	tn.webhookChannel(t, hook, "busy endpoint", nil)
	raise(t, tn, incidentTrigger(1))
	eventually(t, patience, func() bool { return len(hook.all()) >= 1 })
	hook.respond(http.StatusOK, "")
	got := hook.waitSuccesses(1)
	all := hook.all()
	require.Len(t, all, 2)
	require.GreaterOrEqual(t, got[0].At.Sub(all[0].At), 1900*time.Millisecond, "waited for Retry-After: 2")
	require.Equal(t, all[0].ID, got[0].ID)
}

// After a rotation, deliveries carry signatures by the new and the previous secret until
// the previous one expires: a receiver on either secret verifies them.
func TestSecretRotationSignsWithBothSecretsUntilThePreviousExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	hook := newReceiver(t)
	ch := tn.webhookChannel(t, hook, "rotating endpoint", nil)
	old := hook.secrets[0]
	rot, err := tn.admin.alerts.RotateChannelSecret(ctx, connect.NewRequest(&v1.RotateChannelSecretRequest{Id: ch.Id}))
	require.NoError(t, err)
	require.NotEqual(t, old, rot.Msg.Secret)
	require.NotNil(t, rot.Msg.Channel.PreviousSecretExpireTime)
	hook.verifyWith(old, rot.Msg.Secret) // must verify with each, separately
	raise(t, tn, incidentTrigger(1))
	got := hook.waitSuccesses(1)
	require.NoError(t, got[0].Verified)
	require.Len(t, strings.Fields(got[0].Signature), 2)

	// Previous secret retired at once: only the new one signs.
	_, err = tn.admin.alerts.RotateChannelSecret(ctx, connect.NewRequest(&v1.RotateChannelSecretRequest{Id: ch.Id, PreviousValidFor: durationpb.New(0)}))
	require.NoError(t, err)
	entries, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{Action: "alert_channel.rotate_secret"}))
	require.NoError(t, err)
	require.Len(t, entries.Msg.Entries, 2)
	for _, e := range entries.Msg.Entries {
		require.NotContains(t, e.AfterJson, "whsec_", "secrets stay out of the audit ledger")
	}
}

// An endpoint that fails for longer than the channel's disable_after is disabled; that
// is itself an in-app alert, and the delivery gives up saying why.
func TestFailingChannelIsDisabledAndThatIsAnInAppAlert(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	hook := newReceiver(t)
	hook.respond(http.StatusInternalServerError, "")
	ch := tn.webhookChannel(t, hook, "dead endpoint", func(r *v1.CreateChannelRequest) {
		r.DisableAfter = durationpb.New(2 * time.Second)
	})
	id := raise(t, tn, incidentTrigger(1))
	eventually(t, patience, func() bool {
		c, err := tn.admin.alerts.GetChannel(ctx, connect.NewRequest(&v1.GetChannelRequest{Id: ch.Id}))
		require.NoError(t, err)
		return !c.Msg.Channel.Enabled
	})
	c, err := tn.admin.alerts.GetChannel(ctx, connect.NewRequest(&v1.GetChannelRequest{Id: ch.Id}))
	require.NoError(t, err)
	require.Contains(t, c.Msg.Channel.DisabledReason, "failed since")
	require.NotNil(t, c.Msg.Channel.FailingSince)

	disabled := tn.alertsOf(t, v1.AlertKind_ALERT_KIND_CHANNEL_DISABLED)
	require.Len(t, disabled, 1)
	require.Equal(t, ch.Id, disabled[0].Entity.Id)
	dels := tn.deliveriesOf(t, disabled[0].Id)
	require.Len(t, dels, 1, "in-app only")
	require.Equal(t, v1.ChannelType_CHANNEL_TYPE_IN_APP, dels[0].ChannelType)
	found := false
	for _, n := range tn.notifications(t) {
		found = found || n.Kind == v1.AlertKind_ALERT_KIND_CHANNEL_DISABLED
	}
	require.True(t, found)

	var wh *v1.Delivery
	for _, d := range tn.deliveriesOf(t, id) {
		if d.ChannelId == ch.Id {
			wh = d
		}
	}
	require.Equal(t, v1.DeliveryStatus_DELIVERY_STATUS_FAILED, wh.Status)
	require.Contains(t, wh.LastError, "disabled")

	// A disabled channel gets nothing new; redelivery asks for it to be enabled first.
	_, err = tn.admin.alerts.RedeliverAlert(ctx, connect.NewRequest(&v1.RedeliverAlertRequest{AlertId: id}))
	requireCode(t, connect.CodeFailedPrecondition, err)
	before := len(hook.all())
	second := raise(t, tn, incidentTrigger(2))
	// Raising commits every delivery it schedules; none is scheduled for the disabled
	// channel, and nothing is owed to it in the outbox.
	for _, d := range tn.deliveriesOf(t, second) {
		require.NotEqual(t, ch.Id, d.ChannelId, "a delivery to the disabled channel: %v", d)
	}
	require.Zero(t, tn.outboxRows(t, lifecycle.AlertDeliveryWorkflowID(second, ch.Id)))
	desc, err := describe(ctx, tn.temporal, lifecycle.AlertDeliveryWorkflowID(second, ch.Id))
	require.NoError(t, err)
	require.Nil(t, desc, "no delivery workflow for the disabled channel")
	require.Len(t, hook.all(), before)

	// Fixed and enabled: the missed alert is redelivered.
	hook.respond(http.StatusOK, "")
	_, err = tn.admin.alerts.UpdateChannel(ctx, connect.NewRequest(&v1.UpdateChannelRequest{Id: ch.Id, Enabled: proto.Bool(true)}))
	require.NoError(t, err)
	_, err = tn.admin.alerts.RedeliverAlert(ctx, connect.NewRequest(&v1.RedeliverAlertRequest{AlertId: id}))
	require.NoError(t, err)
	hook.waitSuccesses(1)
}
