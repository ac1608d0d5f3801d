package e2e

import (
	"context"
	"net/http"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
)

// ListRoutes lists an organization's routes as created, page by page, and drops deleted
// ones; another organization sees none.
func TestListRoutes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	a := tn.webhookChannel(t, newReceiver(t), "a", nil)
	b := tn.webhookChannel(t, newReceiver(t), "b", nil)
	r1 := tn.route(t, v1.AlertSeverity_ALERT_SEVERITY_HIGH, []v1.AlertKind{v1.AlertKind_ALERT_KIND_INCIDENT, v1.AlertKind_ALERT_KIND_ANOMALY}, a.Id, b.Id)
	r2 := tn.route(t, v1.AlertSeverity_ALERT_SEVERITY_WARNING, nil, b.Id)
	r3 := tn.route(t, v1.AlertSeverity_ALERT_SEVERITY_INFO, []v1.AlertKind{v1.AlertKind_ALERT_KIND_LIMIT_THRESHOLD}, a.Id)

	list := func(c clients) []*v1.Route {
		t.Helper()
		var out []*v1.Route
		for token := ""; ; {
			resp, err := c.alerts.ListRoutes(ctx, connect.NewRequest(&v1.ListRoutesRequest{PageSize: 2, PageToken: token}))
			require.NoError(t, err)
			out = append(out, resp.Msg.Routes...)
			if token = resp.Msg.NextPageToken; token == "" {
				return out
			}
		}
	}
	got := list(tn.admin)
	require.Len(t, got, 3)
	require.Equal(t, []string{r1.Id, r2.Id, r3.Id}, []string{got[0].Id, got[1].Id, got[2].Id})
	require.Equal(t, []v1.AlertKind{v1.AlertKind_ALERT_KIND_INCIDENT, v1.AlertKind_ALERT_KIND_ANOMALY}, got[0].Kinds)
	require.Equal(t, v1.AlertSeverity_ALERT_SEVERITY_HIGH, got[0].MinSeverity)
	require.ElementsMatch(t, []string{a.Id, b.Id}, got[0].ChannelIds)
	require.True(t, got[0].Enabled)
	require.Empty(t, got[1].Kinds, "every kind")
	require.Equal(t, []string{b.Id}, got[1].ChannelIds)

	viewer, _ := tn.newUser(t, v1.Role_ROLE_VIEWER)
	require.Len(t, list(viewer.clients), 3, "viewers read routes")
	require.Empty(t, list(newTenant(t, "UTC").admin))
	_, err := tn.admin.alerts.DeleteRoute(ctx, connect.NewRequest(&v1.DeleteRouteRequest{Id: r2.Id}))
	require.NoError(t, err)
	got = list(tn.admin)
	require.Equal(t, []string{r1.Id, r3.Id}, []string{got[0].Id, got[1].Id})
}

// ListDeliveries lists an organization's deliveries, each with its attempts, narrowed by
// alert, channel and status, page by page.
func TestListDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	good, bad := newReceiver(t), newReceiver(t)
	bad.respond(http.StatusBadRequest, "") // final: no retries
	okCh := tn.webhookChannel(t, good, "works", nil)
	badCh := tn.webhookChannel(t, bad, "broken", nil)
	id := raise(t, tn, incidentTrigger(1)) // no routes: high goes in-app and to every webhook
	tn.waitDeliveriesDone(t, id, okCh.Id, badCh.Id)

	list := func(req *v1.ListDeliveriesRequest) []*v1.Delivery {
		t.Helper()
		var out []*v1.Delivery
		for {
			resp, err := tn.admin.alerts.ListDeliveries(ctx, connect.NewRequest(req))
			require.NoError(t, err)
			out = append(out, resp.Msg.Deliveries...)
			if resp.Msg.NextPageToken == "" {
				return out
			}
			req.PageToken = resp.Msg.NextPageToken
		}
	}
	all := list(&v1.ListDeliveriesRequest{AlertId: id, PageSize: 1})
	require.Len(t, all, 3, "in-app, the working and the broken webhook, one page each")
	byChannel := map[string]*v1.Delivery{}
	for _, d := range all {
		require.Equal(t, id, d.AlertId)
		byChannel[d.ChannelId] = d
	}
	require.Equal(t, v1.DeliveryStatus_DELIVERY_STATUS_DELIVERED, byChannel[okCh.Id].Status)
	require.Len(t, byChannel[okCh.Id].Attempts, 1)
	require.EqualValues(t, http.StatusOK, byChannel[okCh.Id].Attempts[0].StatusCode)
	require.Equal(t, v1.DeliveryStatus_DELIVERY_STATUS_FAILED, byChannel[badCh.Id].Status)
	require.EqualValues(t, http.StatusBadRequest, byChannel[badCh.Id].Attempts[0].StatusCode)
	ids := func(ds []*v1.Delivery) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Id)
		}
		return out
	}
	require.Equal(t, ids(all), ids(list(&v1.ListDeliveriesRequest{})), "the organization's only alert: filtering by it changes nothing")

	failed := list(&v1.ListDeliveriesRequest{Statuses: []v1.DeliveryStatus{v1.DeliveryStatus_DELIVERY_STATUS_FAILED}})
	require.Len(t, failed, 1)
	require.Equal(t, badCh.Id, failed[0].ChannelId)
	delivered := list(&v1.ListDeliveriesRequest{Statuses: []v1.DeliveryStatus{v1.DeliveryStatus_DELIVERY_STATUS_DELIVERED}})
	require.Len(t, delivered, 2, "the working webhook and in-app")
	one := list(&v1.ListDeliveriesRequest{ChannelId: okCh.Id})
	require.Len(t, one, 1)
	require.Equal(t, byChannel[okCh.Id].Id, one[0].Id)

	other := newTenant(t, "UTC")
	theirs, err := other.admin.alerts.ListDeliveries(ctx, connect.NewRequest(&v1.ListDeliveriesRequest{AlertId: id}))
	require.NoError(t, err)
	require.Empty(t, theirs.Msg.Deliveries)
}
