package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/api"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/alerts"
	"github.com/governor-hq/governor/workers"
)

// requireInvalidField asserts an InvalidArgument whose violation names field, and returns
// its message.
func requireInvalidField(t *testing.T, err error, field string) string {
	t.Helper()
	requireCode(t, connect.CodeInvalidArgument, err)
	var ce *connect.Error
	require.True(t, errors.As(err, &ce))
	for _, d := range ce.Details() {
		v, derr := d.Value()
		require.NoError(t, derr)
		if vs, ok := v.(*validate.Violations); ok {
			for _, x := range vs.GetViolations() {
				var names []string
				for _, el := range x.GetField().GetElements() {
					names = append(names, el.GetFieldName())
				}
				if strings.Join(names, ".") == field {
					return x.GetMessage()
				}
			}
		}
	}
	t.Fatalf("no violation of field %q in %v", field, err)
	return ""
}

// strictStack is a stack configured as production is by default: https only, no
// internal address allowed, names resolved by a DNS server the test controls.
func strictStack(t *testing.T, dns *dnsServer, withWorker bool) *tenant {
	t.Helper()
	policy := alerts.EndpointPolicy{Resolver: dns.resolver()}
	var worker func(*workers.Deps)
	if withWorker {
		worker = func(d *workers.Deps) { d.Alerts.Endpoints = policy }
	}
	tn, _, _ := ownStackWith(t, func(o *api.Options) { o.AlertEndpoints = policy }, worker)
	return tn
}

// The addresses an attacker with an admin key would point a channel at (issue 8 §3), and
// other spellings of the same places.
var internalURLs = []string{
	"https://169.254.169.254/latest/meta-data/iam/security-credentials/",
	"https://127.0.0.1:5432/",
	"https://localhost:7233/",
	"https://[::1]/",
	"https://10.0.0.1/",
	"https://metadata.google.internal/computeMetadata/v1/",
	"https://[::ffff:127.0.0.1]/",
	"https://[::ffff:169.254.169.254]/",
	"https://[fe80::1%25eth0]/",
	"https://100.64.0.1/",
	"https://192.168.1.1/",
	"https://[fd00::1]/",
	"https://0.0.0.0:8080/",
	"https://2130706433/",
	"https://127.1/",
	"https://app.localhost/",
	"https://internal.example.test/", // resolves to 10.1.2.3
	"https://mixed.example.test/",    // one public address and one unique-local
}

// Every internal target is refused when a channel is created and when its URL is changed,
// with InvalidArgument naming the url field; so is plain http without the operator's
// setting, and a Slack channel anywhere but Slack's webhook host.
func TestChannelURLsToInternalAddressesAreRefusedAtCreateAndUpdate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dns := newDNSServer(t)
	dns.set("hooks.example.test", "203.0.113.10")
	dns.set("internal.example.test", "10.1.2.3")
	dns.set("mixed.example.test", "203.0.113.11", "fd00::5")
	tn := strictStack(t, dns, false)
	create := func(typ v1.ChannelType, url string) error {
		_, err := tn.admin.alerts.CreateChannel(ctx, connect.NewRequest(&v1.CreateChannelRequest{Name: "c " + url, Type: typ, Url: url}))
		return err
	}

	for _, u := range internalURLs {
		msg := requireInvalidField(t, create(v1.ChannelType_CHANNEL_TYPE_WEBHOOK, u), "url")
		t.Logf("%s: %s", u, msg)
		requireInvalidField(t, create(v1.ChannelType_CHANNEL_TYPE_SLACK, u), "url")
	}
	msg := requireInvalidField(t, create(v1.ChannelType_CHANNEL_TYPE_WEBHOOK, "https://127.0.0.1:5432/"), "url")
	require.Contains(t, msg, "loopback")
	require.Contains(t, requireInvalidField(t, create(v1.ChannelType_CHANNEL_TYPE_WEBHOOK, "https://169.254.169.254/"), "url"), "link-local")
	require.Contains(t, requireInvalidField(t, create(v1.ChannelType_CHANNEL_TYPE_WEBHOOK, "https://metadata.google.internal/"), "url"), "metadata")
	require.Contains(t, requireInvalidField(t, create(v1.ChannelType_CHANNEL_TYPE_WEBHOOK, "https://internal.example.test/"), "url"), "10.1.2.3")
	require.Contains(t, requireInvalidField(t, create(v1.ChannelType_CHANNEL_TYPE_WEBHOOK, "https://mixed.example.test/"), "url"), "fd00::5")
	require.Contains(t, requireInvalidField(t, create(v1.ChannelType_CHANNEL_TYPE_WEBHOOK, "https://nowhere.example.test/"), "url"), "does not resolve")
	// http only where the operator allows it; Slack only on Slack's host, over https.
	require.Contains(t, requireInvalidField(t, create(v1.ChannelType_CHANNEL_TYPE_WEBHOOK, "http://hooks.example.test/h"), "url"), "GOVERNOR_ALERT_ALLOW_HTTP")
	require.Contains(t, requireInvalidField(t, create(v1.ChannelType_CHANNEL_TYPE_SLACK, "https://hooks.example.test/services/T/B/x"), "url"), "hooks.slack.com")
	requireInvalidField(t, create(v1.ChannelType_CHANNEL_TYPE_SLACK, "http://hooks.slack.com/services/T/B/x"), "url")
	requireInvalidField(t, create(v1.ChannelType_CHANNEL_TYPE_SLACK, "https://hooks.slack.com.example.test/services/T/B/x"), "url")

	// A channel to a public name is fine; changing its URL to any internal target is not,
	// and leaves it as it was.
	resp, err := tn.admin.alerts.CreateChannel(ctx, connect.NewRequest(&v1.CreateChannelRequest{Name: "public", Type: v1.ChannelType_CHANNEL_TYPE_WEBHOOK,
		Url: "https://hooks.example.test/governor?token=abc"}))
	require.NoError(t, err)
	ch := resp.Msg.Channel
	require.Equal(t, "https://hooks.example.test/governor?****", ch.Url, "the query (where receivers put tokens) is not shown")
	for _, u := range append(internalURLs, "http://hooks.example.test/h") {
		_, err := tn.admin.alerts.UpdateChannel(ctx, connect.NewRequest(&v1.UpdateChannelRequest{Id: ch.Id, Url: &u}))
		requireInvalidField(t, err, "url")
	}
	got, err := tn.admin.alerts.GetChannel(ctx, connect.NewRequest(&v1.GetChannelRequest{Id: ch.Id}))
	require.NoError(t, err)
	require.Equal(t, ch.Url, got.Msg.Channel.Url)
	list, err := tn.admin.alerts.ListChannels(ctx, connect.NewRequest(&v1.ListChannelsRequest{}))
	require.NoError(t, err)
	require.Len(t, list.Msg.Channels, 2, "the public channel and the in-app one; nothing else was created")
}

// countingListener accepts connections on loopback and counts them: the proof that a
// refused delivery never reached the address.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func newCountingListener(t *testing.T) *countingListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c := &countingListener{Listener: ln}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.accepted.Add(1)
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return c
}

func (c *countingListener) port() string {
	_, p, _ := net.SplitHostPort(c.Addr().String())
	return p
}

// waitDelivery waits until the alert's delivery to the channel is no longer pending.
func waitDelivery(t *testing.T, tn *tenant, alertID, channelID string) *v1.Delivery {
	t.Helper()
	var d *v1.Delivery
	eventually(t, patience, func() bool {
		for _, x := range tn.deliveriesOf(t, alertID) {
			if x.ChannelId == channelID {
				d = x
			}
		}
		return d != nil && d.Status != v1.DeliveryStatus_DELIVERY_STATUS_PENDING
	}, "delivery of %s to %s finishes", alertID, channelID)
	return d
}

// DNS rebinding: a name that resolved to a public address when the channel was made
// resolves to loopback (or the metadata address) when TestChannel fires. The delivery
// dialer checks the address it connects to, so the attempt is refused — recorded as a
// failure classified refused_address — and nothing ever connects to the listener.
func TestDeliveryRefusesANameThatRebindsToAnInternalAddress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dns := newDNSServer(t)
	tn := strictStack(t, dns, true)
	ln := newCountingListener(t)

	for _, target := range []struct{ name, rebindTo, why string }{
		{"rebind.example.test", "127.0.0.1", "loopback"},
		{"rebind6.example.test", "::1", "loopback"},
		{"metadata.example.test", "169.254.169.254", "link-local"},
	} {
		dns.set(target.name, "203.0.113.20")
		resp, err := tn.admin.alerts.CreateChannel(ctx, connect.NewRequest(&v1.CreateChannelRequest{Name: target.name,
			Type: v1.ChannelType_CHANNEL_TYPE_WEBHOOK, Url: "https://" + target.name + ":" + ln.port() + "/hooks"}))
		require.NoError(t, err, "a public address at creation")
		dns.set(target.name, target.rebindTo)

		test, err := tn.admin.alerts.TestChannel(ctx, connect.NewRequest(&v1.TestChannelRequest{Id: resp.Msg.Channel.Id}))
		require.NoError(t, err)
		d := waitDelivery(t, tn, test.Msg.Alert.Id, resp.Msg.Channel.Id)
		require.Equal(t, v1.DeliveryStatus_DELIVERY_STATUS_FAILED, d.Status, "refused, and not retried")
		require.Equal(t, "refused_address", d.LastClassification)
		require.Len(t, d.Attempts, 1)
		at := d.Attempts[0]
		require.Equal(t, "refused_address", at.Classification)
		require.Zero(t, at.StatusCode)
		require.Contains(t, at.Error, netip.MustParseAddr(target.rebindTo).String())
		require.Contains(t, at.Error, target.why)
		require.NotContains(t, at.Error, "/hooks", "the URL stays out of the error")
	}
	require.Zero(t, ln.accepted.Load(), "no connection reached the listener")
}

// selfSignedCert is a throwaway certificate for names, and a pool that trusts it.
func selfSignedCert(t *testing.T, names ...string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// The operator's allowlist lets a loopback receiver through, reached by name, and only
// the addresses it lists: the same name moved to 127.0.0.2 is refused.
func TestAllowlistLetsALoopbackReceiverThrough(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dns := newDNSServer(t)
	dns.set("receiver.example.test", "127.0.0.1")
	policy := alerts.EndpointPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, AllowHTTP: true, Resolver: dns.resolver()}
	tn, _, _ := ownStackWith(t, func(o *api.Options) { o.AlertEndpoints = policy }, func(d *workers.Deps) { d.Alerts.Endpoints = policy })
	hook := newReceiver(t)
	_, port, _ := net.SplitHostPort(hook.addr)
	resp, err := tn.admin.alerts.CreateChannel(ctx, connect.NewRequest(&v1.CreateChannelRequest{Name: "local receiver",
		Type: v1.ChannelType_CHANNEL_TYPE_WEBHOOK, Url: "http://receiver.example.test:" + port + "/hooks/governor"}))
	require.NoError(t, err)
	hook.verifyWith(resp.Msg.Secret)
	ch := resp.Msg.Channel

	test, err := tn.admin.alerts.TestChannel(ctx, connect.NewRequest(&v1.TestChannelRequest{Id: ch.Id}))
	require.NoError(t, err)
	got := hook.waitSuccesses(1)
	require.NoError(t, got[0].Verified, "signed per Standard Webhooks")
	d := waitDelivery(t, tn, test.Msg.Alert.Id, ch.Id)
	require.Equal(t, v1.DeliveryStatus_DELIVERY_STATUS_DELIVERED, d.Status)
	require.Equal(t, "ok", d.Attempts[0].Classification)
	require.EqualValues(t, 200, d.Attempts[0].StatusCode)

	dns.set("receiver.example.test", "127.0.0.2")
	test, err = tn.admin.alerts.TestChannel(ctx, connect.NewRequest(&v1.TestChannelRequest{Id: ch.Id}))
	require.NoError(t, err)
	d = waitDelivery(t, tn, test.Msg.Alert.Id, ch.Id)
	require.Equal(t, "refused_address", d.LastClassification)
	require.Len(t, hook.all(), 1)
}

// Slack channels post Slack's incoming-webhook format, over https, to hooks.slack.com
// only. Here that name resolves to a receiver on loopback with a certificate for it (the
// test's DNS server and root), so the real checks run: https, host, certificate, dialer.
// A 429 with Retry-After is retried.
func TestSlackChannelGetsIncomingWebhookMessages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cert, roots := selfSignedCert(t, alerts.SlackWebhookHost)
	slack := newSlackReceiver(t, cert)
	dns := newDNSServer(t)
	dns.set(alerts.SlackWebhookHost, "127.0.0.1")
	policy := alerts.EndpointPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Resolver: dns.resolver(), RootCAs: roots}
	tn, _, _ := ownStackWith(t, func(o *api.Options) { o.AlertEndpoints = policy }, func(d *workers.Deps) { d.Alerts.Endpoints = policy })

	url := "https://" + alerts.SlackWebhookHost + ":" + slack.port + "/services/T000/B000/secretpart"
	resp, err := tn.admin.alerts.CreateChannel(ctx, connect.NewRequest(&v1.CreateChannelRequest{Name: "#alerts", Type: v1.ChannelType_CHANNEL_TYPE_SLACK, Url: url}))
	require.NoError(t, err)
	require.Empty(t, resp.Msg.Secret)
	require.NotContains(t, resp.Msg.Channel.Url, "secretpart", "the secret part of the URL is not shown")
	require.Equal(t, "https://hooks.slack.com:"+slack.port+"/services/T000/B000/****", resp.Msg.Channel.Url)
	id := raise(t, tn, incidentTrigger(3))
	msgs := slack.waitMessages(t, 1)
	require.Equal(t, "application/json", msgs[0].contentType)
	require.Equal(t, "/services/T000/B000/secretpart", msgs[0].path)
	require.Equal(t, "[HIGH] Incident 3 opened", msgs[0].Text)
	require.Len(t, msgs[0].Blocks, 2)
	require.Equal(t, "section", msgs[0].Blocks[0]["type"])
	d := waitDelivery(t, tn, id, resp.Msg.Channel.Id)
	require.Equal(t, v1.DeliveryStatus_DELIVERY_STATUS_DELIVERED, d.Status)
	require.Len(t, d.Attempts, 2)
	require.Equal(t, "http_4xx", d.Attempts[0].Classification)
	require.EqualValues(t, 429, d.Attempts[0].StatusCode)
	require.Equal(t, "ok", d.Attempts[1].Classification)
	for _, at := range d.Attempts {
		require.NotContains(t, at.Error, "secretpart")
		require.NotContains(t, at.Error, "rate_limited", "Slack's answer is not stored")
	}
	require.NotContains(t, d.LastError, "secretpart")
	require.True(t, strings.HasPrefix(resp.Msg.Channel.Url, "https://"))
}

// slackReceiver plays Slack's incoming-webhook endpoint over TLS: the first request is
// rate-limited (429, Retry-After: 1, Slack's body), the others accepted.
type slackReceiver struct {
	port string
	mu   sync.Mutex
	n    int
	msgs []slackMessage
}

type slackMessage struct {
	Text        string           `json:"text"`
	Blocks      []map[string]any `json:"blocks"`
	contentType string
	path        string
}

func newSlackReceiver(t *testing.T, cert tls.Certificate) *slackReceiver {
	t.Helper()
	s := &slackReceiver{}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	require.NoError(t, err)
	_, s.port, _ = net.SplitHostPort(ln.Addr().String())
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.n++
		if s.n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte("rate_limited"))
			return
		}
		m := slackMessage{contentType: r.Header.Get("Content-Type"), path: r.URL.Path}
		if err := json.Unmarshal(b, &m); err != nil {
			m.Text = "not JSON: " + err.Error()
		}
		s.msgs = append(s.msgs, m)
		_, _ = w.Write([]byte("ok"))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

func (s *slackReceiver) waitMessages(t *testing.T, n int) []slackMessage {
	t.Helper()
	var out []slackMessage
	eventually(t, patience, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		out = append([]slackMessage(nil), s.msgs...)
		return len(out) >= n
	}, "%d Slack messages", n)
	return out
}

// Deliveries apply the policy in force when they run, not the one a channel was created
// under: channels made while http and loopback were allowed are refused by a worker
// whose operator allows neither, before anything connects.
func TestDeliveryAppliesTheCurrentPolicy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ln := newCountingListener(t)
	tn, _, _ := ownStackWith(t, nil, func(d *workers.Deps) { d.Alerts.Endpoints = alerts.EndpointPolicy{} })
	for _, c := range []struct{ url, class string }{
		{"http://127.0.0.1:" + ln.port() + "/hooks", "refused_url"},
		{"https://127.0.0.1:" + ln.port() + "/hooks", "refused_address"},
	} {
		resp, err := tn.admin.alerts.CreateChannel(ctx, connect.NewRequest(&v1.CreateChannelRequest{Name: c.url,
			Type: v1.ChannelType_CHANNEL_TYPE_WEBHOOK, Url: c.url}))
		require.NoError(t, err, "the API still allows loopback over http")
		test, err := tn.admin.alerts.TestChannel(ctx, connect.NewRequest(&v1.TestChannelRequest{Id: resp.Msg.Channel.Id}))
		require.NoError(t, err)
		d := waitDelivery(t, tn, test.Msg.Alert.Id, resp.Msg.Channel.Id)
		require.Equal(t, v1.DeliveryStatus_DELIVERY_STATUS_FAILED, d.Status)
		require.Equal(t, c.class, d.LastClassification, c.url)
		require.Contains(t, d.Attempts[0].Error, "endpoint refused")
	}
	require.Zero(t, ln.accepted.Load())
}
