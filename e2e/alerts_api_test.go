package e2e

import (
	"context"
	"slices"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/gen/governor/v1/governorv1connect"
)

// bearer authenticates every call, streams included.
type bearer string

func (b bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", "Bearer "+string(b))
		return next(ctx, req)
	}
}

func (b bearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", "Bearer "+string(b))
		return conn
	}
}

func (b bearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// streamingAlerts is an AlertService client whose streams are authenticated too.
func (tn *tenant) streamingAlerts(secret string) governorv1connect.AlertServiceClient {
	return governorv1connect.NewAlertServiceClient(tn.http, tn.baseURL, connect.WithInterceptors(bearer(secret)))
}

// WatchNotifications sends the caller's unread notifications first, then each new one as
// it commits; another tenant's never arrive. Read state is per user.
func TestWatchNotificationsStreamsNewNotificationsLive(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	tn := newTenant(t, "UTC")
	other := newTenant(t, "UTC")
	raise(t, tn, incidentTrigger(1))

	watcher := tn.streamingAlerts(tn.org.Secret)
	stream, err := watcher.WatchNotifications(ctx, connect.NewRequest(&v1.WatchNotificationsRequest{IncludeUnread: true}))
	require.NoError(t, err)
	defer stream.Close()
	_ = stream.ResponseHeader() // subscribed: nothing is missed from here on
	require.True(t, stream.Receive(), stream.Err())
	first := stream.Msg().Notification
	require.Equal(t, "Incident 1 opened", first.Title)
	require.False(t, first.Read)

	raise(t, other, incidentTrigger(99))
	raise(t, tn, incidentTrigger(2))
	require.True(t, stream.Receive(), stream.Err())
	second := stream.Msg().Notification
	require.Equal(t, "Incident 2 opened", second.Title, "the other tenant's notification does not arrive")
	require.Greater(t, second.Sequence, first.Sequence)

	// Resuming after a sequence replays what followed it.
	resumed, err := watcher.WatchNotifications(ctx, connect.NewRequest(&v1.WatchNotificationsRequest{AfterSequence: first.Sequence}))
	require.NoError(t, err)
	defer resumed.Close()
	require.True(t, resumed.Receive(), resumed.Err())
	require.Equal(t, second.Id, resumed.Msg().Notification.Id)

	// Read state belongs to each user.
	viewer, _ := tn.newUser(t, v1.Role_ROLE_VIEWER)
	_, err = tn.admin.alerts.MarkNotificationRead(ctx, connect.NewRequest(&v1.MarkNotificationReadRequest{All: true}))
	require.NoError(t, err)
	mine, err := tn.admin.alerts.ListNotifications(ctx, connect.NewRequest(&v1.ListNotificationsRequest{UnreadOnly: true}))
	require.NoError(t, err)
	require.Empty(t, mine.Msg.Notifications)
	theirs, err := viewer.alerts.ListNotifications(ctx, connect.NewRequest(&v1.ListNotificationsRequest{UnreadOnly: true}))
	require.NoError(t, err)
	require.Len(t, theirs.Msg.Notifications, 2)
	require.EqualValues(t, 2, theirs.Msg.UnreadCount)
	_, err = tn.admin.alerts.MarkNotificationRead(ctx, connect.NewRequest(&v1.MarkNotificationReadRequest{}))
	requireCode(t, connect.CodeInvalidArgument, err)
}

// Channels, routes and alerts of another organization do not exist for a caller; viewers
// read but do not change; bad input names its field; TestChannel reaches one channel.
func TestAlertServiceTenancyRolesValidationAndTestChannel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	other := newTenant(t, "UTC")
	hook := newReceiver(t)
	ch := tn.webhookChannel(t, hook, "mine", nil)
	id := raise(t, tn, incidentTrigger(1))

	_, err := other.admin.alerts.GetChannel(ctx, connect.NewRequest(&v1.GetChannelRequest{Id: ch.Id}))
	requireCode(t, connect.CodeNotFound, err)
	_, err = other.admin.alerts.GetAlert(ctx, connect.NewRequest(&v1.GetAlertRequest{Id: id}))
	requireCode(t, connect.CodeNotFound, err)
	_, err = other.admin.alerts.RedeliverAlert(ctx, connect.NewRequest(&v1.RedeliverAlertRequest{AlertId: id}))
	requireCode(t, connect.CodeNotFound, err)
	_, err = other.admin.alerts.CreateRoute(ctx, connect.NewRequest(&v1.CreateRouteRequest{ChannelIds: []string{ch.Id}}))
	requireCode(t, connect.CodeNotFound, err)
	_, err = other.admin.alerts.TestChannel(ctx, connect.NewRequest(&v1.TestChannelRequest{Id: ch.Id}))
	requireCode(t, connect.CodeNotFound, err)

	viewer, _ := tn.newUser(t, v1.Role_ROLE_VIEWER)
	_, err = viewer.alerts.ListAlerts(ctx, connect.NewRequest(&v1.ListAlertsRequest{}))
	require.NoError(t, err)
	_, err = viewer.alerts.CreateChannel(ctx, connect.NewRequest(&v1.CreateChannelRequest{Name: "x", Type: v1.ChannelType_CHANNEL_TYPE_WEBHOOK, Url: "http://127.0.0.1:1/"}))
	requireCode(t, connect.CodePermissionDenied, err)

	for _, bad := range []*v1.CreateChannelRequest{
		{Name: "no url", Type: v1.ChannelType_CHANNEL_TYPE_WEBHOOK},
		{Name: "relative", Type: v1.ChannelType_CHANNEL_TYPE_SLACK, Url: "/hooks"},
		{Name: "no one", Type: v1.ChannelType_CHANNEL_TYPE_EMAIL},
		{Name: "bad mail", Type: v1.ChannelType_CHANNEL_TYPE_EMAIL, EmailTo: []string{"not an address"}},
		{Name: "in-app", Type: v1.ChannelType_CHANNEL_TYPE_IN_APP},
		{Name: "", Type: v1.ChannelType_CHANNEL_TYPE_WEBHOOK, Url: "http://127.0.0.1:1/"},
	} {
		_, err := tn.admin.alerts.CreateChannel(ctx, connect.NewRequest(bad))
		requireCode(t, connect.CodeInvalidArgument, err)
	}
	_, err = tn.admin.alerts.CreateChannel(ctx, connect.NewRequest(&v1.CreateChannelRequest{Name: "MINE", Type: v1.ChannelType_CHANNEL_TYPE_WEBHOOK, Url: "http://127.0.0.1:1/"}))
	requireCode(t, connect.CodeAlreadyExists, err)

	list, err := tn.admin.alerts.ListChannels(ctx, connect.NewRequest(&v1.ListChannelsRequest{}))
	require.NoError(t, err)
	require.Len(t, list.Msg.Channels, 2, "the webhook and the in-app channel")
	var inApp *v1.Channel
	for _, c := range list.Msg.Channels {
		if c.Type == v1.ChannelType_CHANNEL_TYPE_IN_APP {
			inApp = c
		}
	}
	require.NotNil(t, inApp)
	_, err = tn.admin.alerts.DeleteChannel(ctx, connect.NewRequest(&v1.DeleteChannelRequest{Id: inApp.Id}))
	requireCode(t, connect.CodeFailedPrecondition, err)

	before := len(hook.waitSuccesses(1)) // the incident's
	test, err := tn.admin.alerts.TestChannel(ctx, connect.NewRequest(&v1.TestChannelRequest{Id: ch.Id}))
	require.NoError(t, err)
	require.Equal(t, v1.AlertKind_ALERT_KIND_TEST, test.Msg.Alert.Kind)
	require.Equal(t, ch.Id, test.Msg.Delivery.ChannelId)
	got := hook.waitSuccesses(before + 1)
	require.Equal(t, "alert.test", got[before].Payload.Type)
	require.Len(t, tn.deliveriesOf(t, test.Msg.Alert.Id), 1, "the test alert goes to that channel only")

	// Routes are audited and can be switched off.
	rt := tn.route(t, v1.AlertSeverity_ALERT_SEVERITY_WARNING, nil, ch.Id)
	off := false
	up, err := tn.admin.alerts.UpdateRoute(ctx, connect.NewRequest(&v1.UpdateRouteRequest{Id: rt.Id, Enabled: &off}))
	require.NoError(t, err)
	require.False(t, up.Msg.Route.Enabled)
	_, err = tn.admin.alerts.DeleteRoute(ctx, connect.NewRequest(&v1.DeleteRouteRequest{Id: rt.Id}))
	require.NoError(t, err)
	for _, action := range []string{"alert_route.create", "alert_route.update", "alert_route.delete", "alert_channel.create", "alert_channel.test"} {
		e, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{Action: action}))
		require.NoError(t, err)
		// The organization's own in-app channel was made (and audited) with it, by the system.
		byKey := slices.DeleteFunc(e.Msg.Entries, func(x *v1.AuditEntry) bool { return x.Actor.GetKind() != v1.ActorKind_ACTOR_KIND_API_KEY })
		require.Len(t, byKey, 1, action)
	}
}
