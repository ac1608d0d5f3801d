package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/api"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/alerts"
	"github.com/governor-hq/governor/internal/lifecycle"
	"github.com/governor-hq/governor/internal/testenv"
	"github.com/governor-hq/governor/workers"
)

// ownStack is a database, task queue and API server of a test's own, so that only the
// workers the test starts (in process with deps, or as child processes) run its
// workflows.
func ownStack(t *testing.T, withWorker func(*workers.Deps)) (*tenant, string, string) {
	t.Helper()
	return ownStackWith(t, nil, withWorker)
}

// ownStackWith is ownStack with the API's options changed by withAPI too.
func ownStackWith(t *testing.T, withAPI func(*api.Options), withWorker func(*workers.Deps)) (*tenant, string, string) {
	t.Helper()
	ctx := context.Background()
	pool, dbURL := testenv.FreshDB(t)
	queue := fmt.Sprintf("%s-%d", strings.ToLower(t.Name()), time.Now().UnixNano())
	tc := dialTemporal(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srvCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	opts := api.Options{RunLease: time.Minute, Temporal: tc, TaskQueue: queue, Keyring: testKeyring(), AlertEndpoints: testEndpoints}
	if withAPI != nil {
		withAPI(&opts)
	}
	wg.Go(func() {
		_ = api.New(pool, logger(), opts).Serve(srvCtx, ln, nil)
	})
	workerErr := make(chan error, 1)
	if withWorker != nil {
		d := workers.Deps{Client: tc, Pool: pool, Log: logger(), TaskQueue: queue, Namespace: testenv.TemporalNamespace(),
			Alerts: testDeliverOptions()}
		withWorker(&d)
		wg.Go(func() { workerErr <- workers.Run(srvCtx, d) })
	}
	t.Cleanup(func() {
		stop()
		wg.Wait()
		tc.Close()
		if withWorker != nil {
			require.NoError(t, <-workerErr, "worker")
		}
	})
	s := &stack{pool: pool, temporal: tc, taskQueue: queue, baseURL: "http://" + ln.Addr().String(), http: &http.Client{Timeout: time.Minute}}
	res, err := api.Bootstrap(ctx, pool, "test", api.BootstrapInput{OrgName: t.Name(), TimeZone: "UTC", AdminEmail: "a@example.com"})
	require.NoError(t, err)
	return &tenant{stack: s, org: res, admin: s.clientsFor(res.Secret)}, dbURL, queue
}

// 100 runs admitted together cross 80 % of a budget when they settle together: exactly one
// alert, and exactly one delivery per channel (two webhooks and the in-app channel).
func TestHundredConcurrentRunsCrossing80PercentAlertOncePerChannel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "swarm")
	hookA, hookB := newReceiver(t), newReceiver(t)
	chA := tn.webhookChannel(t, hookA, "webhook a", nil)
	chB := tn.webhookChannel(t, hookB, "webhook b", nil)
	tn.route(t, v1.AlertSeverity_ALERT_SEVERITY_INFO, []v1.AlertKind{v1.AlertKind_ALERT_KIND_LIMIT_THRESHOLD}, chA.Id, chB.Id)
	tn.createLimit(t, &v1.CreateLimitRequest{Name: "swarm budget", Scope: orgScope(), Metric: v1.LimitMetric_LIMIT_METRIC_COST,
		Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 120 * dollar, AlertThresholdsPercent: []int32{80}})

	const n = 100
	runs := make([]*v1.Run, n)
	errs := make([]error, n) // each goroutine writes its own; asserted here once all are done
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { runs[i], errs[i] = admit(t, ag.ingest, ag.agentID, dollar) })
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...), "every run is admitted")
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			c := int64(dollar)
			_, errs[i] = ag.ingest.runs.CompleteRun(ctx, connect.NewRequest(&v1.CompleteRunRequest{
				RunId: runs[i].Id, Status: v1.RunStatus_RUN_STATUS_SUCCEEDED, CostMicros: &c}))
		})
	}
	close(start)
	wg.Wait()
	require.NoError(t, errors.Join(errs...), "every run is completed")
	for i := range n {
		waitSettled(t, tn.admin, runs[i].Id)
	}

	// Alerts are raised in the settling transactions, all committed now: whatever was
	// going to be raised has been.
	thresholds := tn.alertsOf(t, v1.AlertKind_ALERT_KIND_LIMIT_THRESHOLD)
	require.Len(t, thresholds, 1, "one alert")
	hookA.waitSuccesses(1)
	hookB.waitSuccesses(1)
	// Both deliveries are over and nothing more is owed: no second request can come.
	tn.waitDeliveriesDone(t, thresholds[0].Id, chA.Id, chB.Id)
	require.Len(t, hookA.all(), 1, "webhook a fired once")
	require.Len(t, hookB.all(), 1, "webhook b fired once")
	require.Len(t, tn.deliveriesOf(t, thresholds[0].Id), 3, "one delivery per channel")
	require.Len(t, tn.notifications(t), 1, "one in-app notification")
}

// A worker is killed (SIGKILL) while the receiver holds its request. Another worker
// process takes the delivery over after the heartbeat timeout: the event arrives, under
// the same webhook-id, and the cut-short attempt is on record as abandoned.
func TestWorkerKilledMidDeliveryResumesOnAnotherWorker(t *testing.T) {
	t.Parallel()
	tn, dbURL, queue := ownStack(t, nil)
	hook := newReceiver(t)
	hook.mu.Lock()
	hook.hold = make(chan struct{})
	hook.mu.Unlock()
	ch := tn.webhookChannel(t, hook, "slow endpoint", nil)

	first := startChildWorker(t, dbURL, queue)
	id := raise(t, tn, incidentTrigger(1))
	var held received
	select {
	case held = <-hook.arrived:
	case <-time.After(patience):
		t.Fatal("the first attempt never arrived")
	}
	require.NoError(t, held.Verified)
	require.NoError(t, first.cmd.Process.Signal(syscall.SIGKILL))
	<-first.exited
	// The held request is never answered: its handler ends when the server notices the
	// dead worker's connection. Later requests are answered at once.
	hook.mu.Lock()
	hook.hold = nil
	hook.mu.Unlock()

	t0 := time.Now()
	startChildWorker(t, dbURL, queue)
	got := hook.waitSuccesses(1)
	t.Log("delivered by the second worker after", time.Since(t0))
	require.Equal(t, held.ID, got[0].ID, "same webhook-id")
	require.Equal(t, id, got[0].Payload.Data.ID)

	var wh *v1.Delivery
	eventually(t, patience, func() bool {
		for _, d := range tn.deliveriesOf(t, id) {
			if d.ChannelId == ch.Id {
				wh = d
			}
		}
		return wh != nil && wh.Status == v1.DeliveryStatus_DELIVERY_STATUS_DELIVERED
	})
	require.Len(t, wh.Attempts, 2)
	require.Equal(t, v1.AttemptOutcome_ATTEMPT_OUTCOME_ABANDONED, wh.Attempts[0].Outcome)
	require.Equal(t, v1.AttemptOutcome_ATTEMPT_OUTCOME_DELIVERED, wh.Attempts[1].Outcome)
	tn.waitDeliveriesDone(t, id, ch.Id)
	require.Len(t, hook.successes(), 1)
}

// mailServer is a real SMTP server (github.com/emersion/go-smtp) on loopback, offering
// STARTTLS with a throwaway self-signed certificate.
type mailServer struct {
	addr  string
	roots *x509.CertPool
	mu    sync.Mutex
	mails []mail
}

type mail struct {
	From string
	To   []string
	Data []byte
	TLS  bool
}

type mailSession struct {
	srv  *mailServer
	conn *smtp.Conn
	cur  mail
}

func (s *mailSession) Reset()        { s.cur = mail{} }
func (s *mailSession) Logout() error { return nil }
func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	_, s.cur.TLS = s.conn.TLSConnectionState()
	s.cur.From = from
	return nil
}
func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.To = append(s.cur.To, to)
	return nil
}
func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.Data = b
	s.srv.mu.Lock()
	s.srv.mails = append(s.srv.mails, s.cur)
	s.srv.mu.Unlock()
	return nil
}

func newMailServer(t *testing.T) *mailServer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	m := &mailServer{roots: x509.NewCertPool()}
	m.roots.AddCert(cert)
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &mailSession{srv: m, conn: c}, nil }))
	s.Domain = "127.0.0.1"
	s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	m.addr = ln.Addr().String()
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	return m
}

func (m *mailServer) received() []mail {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]mail(nil), m.mails...)
}

// An alert routed to an email channel reaches a real SMTP server on loopback, over
// STARTTLS (the server offers it; the certificate is verified against its own root).
func TestEmailChannelDeliversOverSMTPWithSTARTTLS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ms := newMailServer(t)
	tn, _, _ := ownStack(t, func(d *workers.Deps) {
		d.Alerts.SMTP = alerts.SMTPConfig{Addr: ms.addr, From: "Governor <alerts@governor.test>", RootCAs: ms.roots}
	})
	resp, err := tn.admin.alerts.CreateChannel(ctx, connect.NewRequest(&v1.CreateChannelRequest{Name: "on-call mail",
		Type: v1.ChannelType_CHANNEL_TYPE_EMAIL, EmailTo: []string{"oncall@example.com", "lead@example.com"}}))
	require.NoError(t, err)
	require.Empty(t, resp.Msg.Secret)
	id := raise(t, tn, incidentTrigger(7))

	eventually(t, patience, func() bool { return len(ms.received()) == 1 })
	got := ms.received()[0]
	require.True(t, got.TLS, "the message went over STARTTLS")
	require.Equal(t, "alerts@governor.test", got.From)
	require.ElementsMatch(t, []string{"oncall@example.com", "lead@example.com"}, got.To)
	require.Contains(t, string(got.Data), "Subject: [Governor] [HIGH] Incident 7 opened")
	require.Contains(t, string(got.Data), "X-Governor-Alert-Id: "+id)
	var d *v1.Delivery
	eventually(t, patience, func() bool {
		for _, x := range tn.deliveriesOf(t, id) {
			if x.ChannelId == resp.Msg.Channel.Id {
				d = x
			}
		}
		return d != nil && d.Status == v1.DeliveryStatus_DELIVERY_STATUS_DELIVERED
	})
	require.EqualValues(t, 250, d.Attempts[0].StatusCode)
	require.Contains(t, string(got.Data), "Message-ID: <"+d.Id+"@governor>")
}

// Over a channel's hourly limit, alerts are folded into one digest (not dropped); the
// digest goes out when the hour ends and lists them all. (The test moves the digest's
// send time to now and wakes its workflow, as an operator could with the Temporal CLI,
// instead of waiting for the hour to end.)
func TestRateLimitedChannelFoldsOverflowIntoADigest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	hook := newReceiver(t)
	ch := tn.webhookChannel(t, hook, "limited endpoint", func(r *v1.CreateChannelRequest) { r.MaxPerHour = 2 })
	var ids []string
	for i := range 5 {
		ids = append(ids, raise(t, tn, incidentTrigger(i)))
	}
	hook.waitSuccesses(2)
	digests := tn.alertsOf(t, v1.AlertKind_ALERT_KIND_DIGEST)
	require.Len(t, digests, 1)
	dg := digests[0]
	require.True(t, dg.DigestOpen)
	require.EqualValues(t, 3, dg.DigestCount)
	for _, id := range ids[2:] {
		for _, d := range tn.deliveriesOf(t, id) {
			if d.ChannelId == ch.Id {
				require.Equal(t, v1.DeliveryStatus_DELIVERY_STATUS_DIGESTED, d.Status)
				require.Equal(t, dg.Id, d.DigestAlertId)
			}
		}
	}
	// Every alert still reached the in-app channel (it has no limit).
	require.Len(t, tn.notifications(t), 5)
	// The digest's delivery sleeps until the hour ends, without having tried anything.
	waitAsleepOnTimer(t, tn.temporal, lifecycle.AlertDeliveryWorkflowID(dg.Id, ch.Id))
	require.Len(t, hook.all(), 2, "the digest waits for the hour to end")

	_, err := tn.pool.Exec(ctx, "UPDATE alerts SET digest_send_at = now() WHERE id = $1", dg.Id)
	require.NoError(t, err)
	require.NoError(t, tn.temporal.SignalWorkflow(ctx, lifecycle.AlertDeliveryWorkflowID(dg.Id, ch.Id), "", lifecycle.SignalAlertRedeliver, nil))
	got := hook.waitSuccesses(3)
	last := got[2]
	require.Equal(t, "alert.digest", last.Payload.Type)
	require.EqualValues(t, 3, last.Payload.Data.Data["count"])
	listed := last.Payload.Data.Data["alerts"].([]any)
	require.Len(t, listed, 3)
	for i, x := range listed {
		require.Equal(t, ids[2+i], x.(map[string]any)["id"])
	}
	require.Contains(t, last.Payload.Data.Title, "3 alerts held back")
	closed, err := tn.admin.alerts.GetAlert(ctx, connect.NewRequest(&v1.GetAlertRequest{Id: dg.Id}))
	require.NoError(t, err)
	require.False(t, closed.Msg.Alert.DigestOpen)
	require.True(t, bytes.Contains(last.Body, []byte(ids[4])))
}
