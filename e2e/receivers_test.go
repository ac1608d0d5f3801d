package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
)

// receiver is a customer's webhook endpoint on loopback. It verifies every request with
// the Standard Webhooks project's own Go library (not Governor's signing code), answers
// as told (a status, optionally with Retry-After; or not at all while down) and records
// what it got.
type receiver struct {
	t    *testing.T
	addr string

	mu         sync.Mutex
	secrets    []string // verify with each; a request must verify with all of them
	status     int
	retryAfter string
	hold       chan struct{} // while set, requests wait until it is closed
	arrived    chan received // every request, as it arrives (buffered)
	got        []received
	srv        *http.Server
}

type received struct {
	ID        string
	Timestamp string
	Signature string
	Body      []byte
	// Verified is nil when the signature verified with every secret.
	Verified error
	Status   int
	At       time.Time
	Payload  struct {
		Type string `json:"type"`
		Data struct {
			ID       string         `json:"id"`
			Kind     string         `json:"kind"`
			Severity string         `json:"severity"`
			Title    string         `json:"title"`
			Data     map[string]any `json:"data"`
		} `json:"data"`
	}
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{t: t, status: http.StatusOK, arrived: make(chan received, 1000)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(r.down)
	return r
}

func (r *receiver) URL() string { return "http://" + r.addr + "/hooks/governor" }

func (r *receiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(r.handle), ReadHeaderTimeout: 5 * time.Second}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// down stops accepting connections (connection refused), like a crashed endpoint.
func (r *receiver) down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			_ = srv.Close()
		}
	}
}

// up listens again on the same address.
func (r *receiver) up() {
	r.t.Helper()
	var ln net.Listener
	var err error
	eventually(r.t, patience, func() bool {
		ln, err = net.Listen("tcp", r.addr)
		return err == nil
	}, "listen again on %s: %v", r.addr, err)
	r.serve(ln)
}

func (r *receiver) respond(status int, retryAfter string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status, r.retryAfter = status, retryAfter
}

func (r *receiver) verifyWith(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secrets = secrets
}

func (r *receiver) handle(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	secrets, status, retryAfter, hold := r.secrets, r.status, r.retryAfter, r.hold
	r.mu.Unlock()
	rec := received{ID: req.Header.Get("webhook-id"), Timestamp: req.Header.Get("webhook-timestamp"),
		Signature: req.Header.Get("webhook-signature"), Body: body, Status: status, At: time.Now()}
	if len(secrets) == 0 {
		rec.Verified = errors.New("no secret to verify with")
	}
	for _, s := range secrets {
		wh, err := standardwebhooks.NewWebhook(s)
		if err == nil {
			err = wh.Verify(body, req.Header)
		}
		if err != nil {
			rec.Verified = err
		}
	}
	_ = json.Unmarshal(body, &rec.Payload)
	r.arrived <- rec
	if hold != nil {
		select {
		case <-hold:
		case <-req.Context().Done():
			return
		}
	}
	r.mu.Lock()
	r.got = append(r.got, rec)
	r.mu.Unlock()
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.WriteHeader(status)
}

// all returns every request answered so far.
func (r *receiver) all() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// successes returns the requests answered with a 2xx, which must all have verified.
func (r *receiver) successes() []received {
	r.t.Helper()
	var out []received
	for _, g := range r.all() {
		if g.Status >= 200 && g.Status < 300 {
			require.NoError(r.t, g.Verified, "signature of %s", g.ID)
			out = append(out, g)
		}
	}
	return out
}

// waitSuccesses waits until n requests were answered with a 2xx.
func (r *receiver) waitSuccesses(n int) []received {
	r.t.Helper()
	eventually(r.t, patience, func() bool { return len(r.successes()) >= n }, "%d webhook deliveries expected", n)
	return r.successes()
}

// webhookChannel makes a webhook channel to the receiver and has the receiver verify with
// its secret.
func (tn *tenant) webhookChannel(t *testing.T, r *receiver, name string, mut func(*v1.CreateChannelRequest)) *v1.Channel {
	t.Helper()
	req := &v1.CreateChannelRequest{Name: name, Type: v1.ChannelType_CHANNEL_TYPE_WEBHOOK, Url: r.URL(),
		Retry: &v1.RetryPolicy{InitialInterval: durationpb.New(200 * time.Millisecond), MaxInterval: durationpb.New(time.Second), MaxAge: durationpb.New(2 * time.Minute)}}
	if mut != nil {
		mut(req)
	}
	resp, err := tn.admin.alerts.CreateChannel(context.Background(), connect.NewRequest(req))
	require.NoError(t, err)
	require.NotEmpty(t, resp.Msg.Secret)
	r.verifyWith(resp.Msg.Secret)
	return resp.Msg.Channel
}

func (tn *tenant) route(t *testing.T, minSeverity v1.AlertSeverity, kinds []v1.AlertKind, channelIDs ...string) *v1.Route {
	t.Helper()
	resp, err := tn.admin.alerts.CreateRoute(context.Background(), connect.NewRequest(&v1.CreateRouteRequest{
		Name: "route", Kinds: kinds, MinSeverity: minSeverity, ChannelIds: channelIDs}))
	require.NoError(t, err)
	return resp.Msg.Route
}

func (tn *tenant) notifications(t *testing.T) []*v1.Notification {
	t.Helper()
	resp, err := tn.admin.alerts.ListNotifications(context.Background(), connect.NewRequest(&v1.ListNotificationsRequest{PageSize: 500}))
	require.NoError(t, err)
	return resp.Msg.Notifications
}

func (tn *tenant) alertsOf(t *testing.T, kinds ...v1.AlertKind) []*v1.Alert {
	t.Helper()
	resp, err := tn.admin.alerts.ListAlerts(context.Background(), connect.NewRequest(&v1.ListAlertsRequest{Kinds: kinds, PageSize: 500}))
	require.NoError(t, err)
	return resp.Msg.Alerts
}

func (tn *tenant) deliveriesOf(t *testing.T, alertID string) []*v1.Delivery {
	t.Helper()
	resp, err := tn.admin.alerts.GetAlert(context.Background(), connect.NewRequest(&v1.GetAlertRequest{Id: alertID}))
	require.NoError(t, err)
	return resp.Msg.Deliveries
}

// spend admits and completes a run of the given actual cost (estimated at $1) and waits
// for its settlement.
func spend(t *testing.T, tn *tenant, ag agentKit, costMicros int64) *v1.Run {
	t.Helper()
	run, err := admit(t, ag.ingest, ag.agentID, dollar)
	require.NoError(t, err)
	complete(t, ag.ingest, run.Id, v1.RunStatus_RUN_STATUS_SUCCEEDED, costMicros)
	return waitSettled(t, tn.admin, run.Id)
}
