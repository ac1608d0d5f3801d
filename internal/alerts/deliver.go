package alerts

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/actor"
	"github.com/governor-hq/governor/internal/change"
	"github.com/governor-hq/governor/internal/envelope"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/netguard"
)

// DeliveryTimeout is how long a receiver has to answer: a 2xx within it is success.
const DeliveryTimeout = 15 * time.Second

// SMTPConfig is the mail server email channels send through.
type SMTPConfig struct {
	// Addr is host:port; empty means email channels cannot deliver (their attempts fail
	// and are retried, so configuring the server later still delivers them).
	Addr     string
	From     string
	Username string
	Password string
	// RootCAs verifies the server's certificate after STARTTLS (nil: the system's roots).
	RootCAs *x509.CertPool
}

// DeliverOptions are a Deliverer's collaborators.
type DeliverOptions struct {
	// Endpoints is where webhooks and Slack messages may go; every connection is checked
	// by its guard at connect time.
	Endpoints EndpointPolicy
	// Keyring opens channels' sealed credentials.
	Keyring *envelope.Keyring
	SMTP    SMTPConfig
	// Timeout overrides DeliveryTimeout (tests).
	Timeout time.Duration
}

// Deliverer makes delivery attempts: one call, one attempt, recorded before the request
// goes out and after it comes back.
type Deliverer struct {
	pool      *pgxpool.Pool
	log       *slog.Logger
	http      *http.Client
	endpoints EndpointPolicy
	keyring   *envelope.Keyring
	smtp      SMTPConfig
	timeout   time.Duration
}

// NewDeliverer returns a deliverer. There is no way to give it another HTTP client: every
// delivery goes through the guarded dialer.
func NewDeliverer(pool *pgxpool.Pool, log *slog.Logger, o DeliverOptions) *Deliverer {
	d := &Deliverer{pool: pool, log: log, endpoints: o.Endpoints, keyring: o.Keyring, smtp: o.SMTP, timeout: o.Timeout}
	if d.timeout <= 0 {
		d.timeout = DeliveryTimeout
	}
	d.http = o.Endpoints.client(d.timeout)
	return d
}

// AttemptResult is what one call to Attempt did and what comes next.
type AttemptResult struct {
	// Done: no further attempt (delivered, failed for good, or not pending any more).
	Done bool
	// Status is the delivery's status afterwards.
	Status string
	// NextAttemptAt is when to call again, when not Done.
	NextAttemptAt time.Time
	// The attempt made (0 when none was due, e.g. a digest waiting for its time).
	Attempt    int32
	StatusCode int32
	Error      string
}

// prepared is a delivery ready for its attempt.
type prepared struct {
	delivery dbsqlc.AlertDelivery
	alert    dbsqlc.Alert
	channel  dbsqlc.AlertChannel
}

// outcome of sending.
type outcome struct {
	ok         bool
	permanent  bool
	statusCode int32
	// class is one of the Class constants.
	class      string
	err        string
	retryAfter time.Duration
	latency    time.Duration
}

// Attempt makes the next attempt of a delivery, if one is due, and records it. It is
// idempotent in the way Temporal needs: a delivery that is no longer pending is left alone,
// and an attempt cut short by a crash is marked abandoned by the next one.
func (d *Deliverer) Attempt(ctx context.Context, deliveryID string) (AttemptResult, error) {
	p, early, err := d.prepare(ctx, deliveryID)
	if err != nil || early != nil {
		if early != nil {
			return *early, err
		}
		return AttemptResult{}, err
	}
	var o outcome
	if p.channel.Type != ChannelInApp {
		o = d.send(ctx, p)
	} else {
		o = outcome{ok: true, class: ClassOK}
	}
	if ctx.Err() != nil {
		// The activity was cancelled (the worker is stopping): leave the attempt in flight;
		// the next one marks it abandoned.
		return AttemptResult{}, ctx.Err()
	}
	return d.finish(context.WithoutCancel(ctx), p, o)
}

func (d *Deliverer) prepare(ctx context.Context, deliveryID string) (prepared, *AttemptResult, error) {
	var p prepared
	var early *AttemptResult
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		q := dbsqlc.New()
		del, err := q.DeliveryLock(ctx, tx, deliveryID)
		if err != nil {
			return fmt.Errorf("delivery %s: %w", deliveryID, err)
		}
		if del.Status != StatusPending {
			early = &AttemptResult{Done: true, Status: del.Status, Attempt: del.Attempts}
			return nil
		}
		a, err := q.AlertGetByID(ctx, tx, del.AlertID)
		if err != nil {
			return err
		}
		ch, err := q.ChannelGetByID(ctx, tx, del.ChannelID)
		if err != nil {
			return err
		}
		if ch.DeletedAt != nil || !ch.Enabled {
			why := "the channel was deleted"
			if ch.DeletedAt == nil {
				why = "the channel is disabled"
				if ch.DisabledReason != "" {
					why += " (" + ch.DisabledReason + ")"
				}
			}
			del, err = q.DeliveryFinishAttempt(ctx, tx, dbsqlc.DeliveryFinishAttemptParams{
				ID: del.ID, Status: StatusFailed, LastStatusCode: del.LastStatusCode, LastError: why, LastClassification: ClassChannelDisabled,
			})
			if err != nil {
				return err
			}
			early = &AttemptResult{Done: true, Status: StatusFailed, Error: why, Attempt: del.Attempts}
			return gaveUpEvent(ctx, tx, a, ch, del, why)
		}
		if a.Kind == KindDigest && a.DigestStatus != nil && *a.DigestStatus == "open" {
			if a.DigestSendAt != nil && a.DigestSendAt.After(time.Now()) {
				early = &AttemptResult{Status: StatusPending, NextAttemptAt: *a.DigestSendAt}
				return nil
			}
			if a, err = closeDigest(ctx, tx, a, ch); err != nil {
				return err
			}
		}
		if del.Body == nil {
			body, err := d.render(a, ch, del)
			if err != nil {
				return err
			}
			if err := q.DeliverySetBody(ctx, tx, dbsqlc.DeliverySetBodyParams{ID: del.ID, Body: body}); err != nil {
				return err
			}
			del.Body = body
		}
		if err := q.AttemptsAbandon(ctx, tx, del.ID); err != nil {
			return err
		}
		body := del.Body
		if del, err = q.DeliveryBeginAttempt(ctx, tx, del.ID); err != nil {
			return err
		}
		del.Body = body
		p = prepared{delivery: del, alert: a, channel: ch}
		return q.AttemptInsert(ctx, tx, dbsqlc.AttemptInsertParams{DeliveryID: del.ID, Number: del.Attempts})
	})
	return p, early, err
}

func (d *Deliverer) send(ctx context.Context, p prepared) outcome {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	start := time.Now()
	var o outcome
	switch p.channel.Type {
	case ChannelWebhook, ChannelSlack:
		creds, err := Open(ctx, d.pool, d.keyring, p.channel)
		if err != nil {
			o = credentialsOutcome(err)
			break
		}
		h := http.Header{"Content-Type": {"application/json"}}
		if p.channel.Type == ChannelWebhook {
			h = webhookHeaders(creds, p.channel.PrevSecretExpiresAt, p.delivery.ID, time.Now(), p.delivery.Body)
		}
		o = d.post(ctx, p.channel.Type, creds.URL, p.delivery.Body, h)
	case ChannelEmail:
		o = d.mail(ctx, p.channel.EmailTo, p.delivery.Body)
	default:
		o = outcome{permanent: true, class: ClassConfig, err: "unknown channel type " + p.channel.Type}
	}
	o.latency = time.Since(start)
	return o
}

// credentialsOutcome is an attempt that could not open the channel's credentials. A key
// this process lacks (a KEK rotation under way) is retried, so a process that has it
// delivers; a ciphertext that does not open (altered, or copied from another row) is not.
func credentialsOutcome(err error) outcome {
	o := outcome{class: ClassConfig, err: "cannot open the channel's credentials: " + err.Error()}
	o.permanent = errors.Is(err, envelope.ErrDecrypt)
	return o
}

func (d *Deliverer) post(ctx context.Context, channelType, endpoint string, body []byte, h http.Header) outcome {
	// The policy may have tightened since the URL was accepted (http no longer allowed).
	if _, _, err := d.endpoints.checkStatic(channelType, endpoint); err != nil {
		class := ClassRefusedURL
		var ee *EndpointError
		if errors.As(err, &ee) && ee.Address {
			class = ClassRefusedAddress
		}
		return outcome{permanent: true, class: class, err: "endpoint refused: " + err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return outcome{permanent: true, class: ClassRefusedURL, err: "bad endpoint URL"}
	}
	req.Header = h
	req.Header.Set("User-Agent", "Governor-Alerts/1")
	resp, err := d.http.Do(req)
	if err != nil {
		return d.transportOutcome(ctx, err)
	}
	defer resp.Body.Close()
	// The body is never read into anything: what a receiver answers is not ours to keep
	// (or to show). Draining a little lets the connection be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	o := outcome{statusCode: int32(resp.StatusCode), err: fmt.Sprintf("HTTP %d", resp.StatusCode)}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		o.ok, o.class, o.err = true, ClassOK, ""
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		o.class = ClassHTTP3xx
		o.err += " (redirects are not followed)"
	case resp.StatusCode == http.StatusTooManyRequests:
		o.class = ClassHTTP4xx
		o.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		// The receiver refused the request itself: sending it again cannot help.
		o.class, o.permanent = ClassHTTP4xx, true
	case resp.StatusCode == http.StatusServiceUnavailable:
		o.class = ClassHTTP5xx
		o.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	default:
		o.class = ClassHTTP5xx
	}
	return o
}

// MaxRetryAfter caps the delay a receiver can ask for: longer than any retry schedule
// (3 days by default), short enough that a hostile or broken header cannot park a delivery
// for years or overflow time.Duration.
const MaxRetryAfter = 7 * 24 * time.Hour

// transportOutcome classifies a request that got no HTTP answer. The URL is left out of
// the message (a Slack URL is a credential).
func (d *Deliverer) transportOutcome(ctx context.Context, err error) outcome {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var dnsErr *net.DNSError
	var netErr net.Error
	var certErr *tls.CertificateVerificationError
	var recordErr tls.RecordHeaderError
	var alertErr tls.AlertError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalidCert x509.CertificateInvalidError
	switch {
	case errors.Is(err, netguard.ErrRefused):
		var refused *netguard.RefusedError
		errors.As(err, &refused)
		return outcome{permanent: true, class: ClassRefusedAddress, err: refused.Error()}
	case ctx.Err() == context.DeadlineExceeded || (errors.As(err, &netErr) && netErr.Timeout()):
		return outcome{class: ClassTimeout, err: fmt.Sprintf("no answer within %s", d.timeout)}
	case errors.As(err, &dnsErr):
		return outcome{class: ClassDNS, err: fmt.Sprintf("DNS lookup of %s failed: %s", dnsErr.Name, dnsErr.Err)}
	case errors.As(err, &certErr), errors.As(err, &recordErr), errors.As(err, &alertErr), errors.As(err, &unknownCA),
		errors.As(err, &hostErr), errors.As(err, &invalidCert):
		return outcome{class: ClassTLS, err: "TLS: " + clip(err.Error(), 300)}
	}
	msg := err.Error()
	if strings.Contains(msg, "malformed HTTP") {
		// The transport quotes what it got; that is the receiver's answer, not ours to keep.
		msg = "the receiver's answer was not HTTP"
	}
	return outcome{class: ClassConnection, err: clip(msg, 300)}
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date (0 if absent or
// unreadable), between 0 and MaxRetryAfter.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return min(time.Duration(min(s, int64(MaxRetryAfter/time.Second)))*time.Second, MaxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), MaxRetryAfter)
	}
	return 0
}

// Backoff is the delay before attempt n+1 after n failed attempts: initial·2^(n-1),
// capped at maxInterval, with ±20 % jitter so that a receiver coming back is not hit by
// every retry at once.
func Backoff(n int32, initial, maxInterval time.Duration) time.Duration {
	exp := math.Min(float64(initial)*math.Pow(2, float64(max(n-1, 0))), float64(maxInterval))
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(math.Min(exp*jitter, float64(maxInterval)))
}

func (d *Deliverer) finish(ctx context.Context, p prepared, o outcome) (AttemptResult, error) {
	res := AttemptResult{Attempt: p.delivery.Attempts, StatusCode: o.statusCode, Error: o.err}
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		q := dbsqlc.New()
		del, err := q.DeliveryLock(ctx, tx, p.delivery.ID)
		if err != nil {
			return err
		}
		if del.Status != StatusPending || del.Attempts != p.delivery.Attempts {
			// Someone else finished it meanwhile (a duplicate activity run): theirs stands.
			res = AttemptResult{Done: del.Status != StatusPending, Status: del.Status, Attempt: del.Attempts,
				NextAttemptAt: deref(del.NextAttemptAt)}
			return nil
		}
		now := time.Now()
		attempt := dbsqlc.AttemptFinishParams{DeliveryID: del.ID, Number: del.Attempts, StatusCode: o.statusCode,
			LatencyMs: o.latency.Milliseconds(), Error: clip(o.err, 2000), RetryAfterMs: o.retryAfter.Milliseconds(),
			Classification: o.class}
		if o.ok {
			if p.channel.Type == ChannelInApp {
				if err := notify(ctx, tx, p.alert); err != nil {
					return err
				}
			}
			attempt.Outcome = "delivered"
			if err := q.AttemptFinish(ctx, tx, attempt); err != nil {
				return err
			}
			if _, err := q.DeliveryFinishAttempt(ctx, tx, dbsqlc.DeliveryFinishAttemptParams{ID: del.ID, Status: StatusDelivered,
				LastStatusCode: o.statusCode, LastClassification: o.class}); err != nil {
				return err
			}
			if err := q.ChannelRecordSuccess(ctx, tx, p.channel.ID); err != nil {
				return err
			}
			res.Done, res.Status = true, StatusDelivered
			_, err := events.Emit(ctx, tx, events.Event{
				OrgID: p.alert.OrgID, Domain: events.DomainAlerts, Type: "alert_delivered", Entity: events.Ref{Type: "alert", ID: p.alert.ID},
				Related: []events.Ref{{Type: "channel", ID: p.channel.ID}, {Type: "delivery", ID: del.ID}}, CorrelationID: p.alert.EntityID, Actor: Actor,
				Summary: fmt.Sprintf("Alert delivered to %s (%s) at attempt %d", p.channel.Name, p.channel.Type, del.Attempts),
				Data: map[string]any{"attempt": del.Attempts, "status_code": o.statusCode, "classification": o.class,
					"latency_ms": o.latency.Milliseconds()},
			})
			return err
		}

		// A failure. Note it against the channel; a channel failing for too long is disabled.
		ch, err := q.ChannelRecordFailure(ctx, tx, dbsqlc.ChannelRecordFailureParams{ID: p.channel.ID, FailedAt: &now})
		if err != nil {
			return err
		}
		giveUp := ""
		var next time.Time
		switch {
		case o.permanent:
			giveUp = "not retried: " + o.err
		default:
			delay := Backoff(del.Attempts, ms(ch.RetryInitialMs), ms(ch.RetryMaxIntervalMs))
			if o.retryAfter > 0 {
				delay = o.retryAfter
			}
			next = now.Add(delay)
			if next.After(del.RetryUntil) {
				giveUp = fmt.Sprintf("gave up after %d attempts (retries end at %s): %s", del.Attempts, del.RetryUntil.UTC().Format(time.RFC3339), o.err)
			}
		}
		if ch.Enabled && ch.FailingSince != nil && now.Sub(*ch.FailingSince) >= ms(ch.DisableAfterMs) {
			if err := disable(ctx, tx, ch, now, deliveryActor(del)); err != nil {
				return err
			}
			giveUp = "the channel was disabled after failing since " + ch.FailingSince.UTC().Format(time.RFC3339) + ": " + o.err
		}
		if err := recordFailedAttempt(ctx, tx, p, del, o, giveUp == "", next); err != nil {
			return err
		}
		if giveUp != "" {
			attempt.Outcome = "failed"
			if err := q.AttemptFinish(ctx, tx, attempt); err != nil {
				return err
			}
			if del, err = q.DeliveryFinishAttempt(ctx, tx, dbsqlc.DeliveryFinishAttemptParams{ID: del.ID, Status: StatusFailed,
				LastStatusCode: o.statusCode, LastError: clip(giveUp, 2000), LastClassification: o.class}); err != nil {
				return err
			}
			res.Done, res.Status, res.Error = true, StatusFailed, giveUp
			return gaveUpEvent(ctx, tx, p.alert, ch, del, giveUp)
		}
		attempt.Outcome = "retry"
		if err := q.AttemptFinish(ctx, tx, attempt); err != nil {
			return err
		}
		if _, err := q.DeliveryFinishAttempt(ctx, tx, dbsqlc.DeliveryFinishAttemptParams{ID: del.ID, Status: StatusPending,
			LastStatusCode: o.statusCode, LastError: clip(o.err, 2000), LastClassification: o.class, NextAttemptAt: &next}); err != nil {
			return err
		}
		res.Status, res.NextAttemptAt = StatusPending, next
		return nil
	})
	return res, err
}

func ms(n int64) time.Duration { return time.Duration(n) * time.Millisecond }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func gaveUpEvent(ctx context.Context, tx pgx.Tx, a dbsqlc.Alert, ch dbsqlc.AlertChannel, del dbsqlc.AlertDelivery, why string) error {
	_, err := events.Emit(ctx, tx, events.Event{
		OrgID: a.OrgID, Domain: events.DomainAlerts, Type: "alert_delivery_failed", Entity: events.Ref{Type: "alert", ID: a.ID},
		Related: []events.Ref{{Type: "channel", ID: ch.ID}, {Type: "delivery", ID: del.ID}}, CorrelationID: a.EntityID, Actor: Actor,
		Summary: fmt.Sprintf("Delivery of an alert to %s (%s) failed after %d attempts: %s", ch.Name, ch.Type, del.Attempts, clip(why, 300)),
		Data:    map[string]any{"attempts": del.Attempts, "error": clip(why, 1000)},
	})
	return err
}

// deliveryActor is who acts when a delivery changes something: its workflow.
func deliveryActor(del dbsqlc.AlertDelivery) actor.Actor {
	if del.WorkflowID == "" {
		return actor.System("worker:alert delivery " + del.ID)
	}
	return actor.System("workflow:" + del.WorkflowID)
}

// disable turns off a channel that has failed for too long and raises an in-app alert
// saying so. Turning a channel off changes where alerts go, so it is on the ledger, with
// the delivery workflow that found the channel failing as the actor.
func disable(ctx context.Context, tx pgx.Tx, ch dbsqlc.AlertChannel, now time.Time, by actor.Actor) error {
	since := deref(ch.FailingSince)
	reason := fmt.Sprintf("every delivery failed since %s", since.UTC().Format(time.RFC3339))
	before := channelState(ch)
	ch, err := dbsqlc.New().ChannelSetEnabled(ctx, tx, dbsqlc.ChannelSetEnabledParams{ID: ch.ID, Enabled: false, Reason: reason})
	if err != nil {
		return err
	}
	if err := recordDisabled(ctx, tx, ch, reason); err != nil {
		return err
	}
	c := change.On(tx, change.Scope{OrgID: ch.OrgID, Actor: by})
	if err := c.Record(ctx, "alert_channel.disable", before, channelState(ch), events.Event{
		Domain: events.DomainAlerts, Type: "channel_disabled", Entity: events.Ref{Type: "channel", ID: ch.ID},
		Summary: fmt.Sprintf("Channel %s (%s) disabled: %s", ch.Name, ch.Type, reason),
	}); err != nil {
		return err
	}
	_, _, err = raise(ctx, tx, Trigger{
		OrgID: ch.OrgID, Kind: KindChannelDisabled, Severity: SeverityHigh,
		DedupeKey: fmt.Sprintf("channel/%s/disabled/%d", ch.ID, now.UnixMilli()),
		Title:     fmt.Sprintf("Alert channel %q was disabled", ch.Name),
		Body: fmt.Sprintf("Deliveries to %s (%s) have failed since %s, so it was disabled. Fix the endpoint, enable the channel "+
			"again (UpdateChannel) and redeliver what it missed (RedeliverAlert).", ch.Name, ch.Type, since.UTC().Format(time.RFC3339)),
		Entity: events.Ref{Type: "channel", ID: ch.ID},
		Data:   map[string]any{"channel_id": ch.ID, "channel_type": ch.Type, "failing_since": since.UTC().Format(time.RFC3339)},
	}, routing{})
	return err
}

// closeDigest stops folding alerts into a digest and fixes its content: how many alerts
// it holds and the first hundred of them.
func closeDigest(ctx context.Context, tx pgx.Tx, digest dbsqlc.Alert, ch dbsqlc.AlertChannel) (dbsqlc.Alert, error) {
	q := dbsqlc.New()
	locked, err := q.DigestLockOpen(ctx, tx, &ch.ID)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && locked.ID != digest.ID) {
		return q.AlertGetByID(ctx, tx, digest.ID) // closed already
	}
	if err != nil {
		return digest, err
	}
	folded, err := q.DigestFolded(ctx, tx, &digest.ID)
	if err != nil {
		return digest, err
	}
	type item struct {
		ID        string    `json:"id"`
		Kind      string    `json:"kind"`
		Severity  string    `json:"severity"`
		Title     string    `json:"title"`
		CreatedAt time.Time `json:"created_at"`
	}
	var items []item
	var body strings.Builder
	for i, a := range folded {
		if i < 100 {
			items = append(items, item{ID: a.ID, Kind: a.Kind, Severity: a.Severity, Title: a.Title, CreatedAt: a.CreatedAt})
			fmt.Fprintf(&body, "- [%s] %s (%s)\n", strings.ToUpper(a.Severity), a.Title, a.CreatedAt.UTC().Format(time.RFC3339))
		}
	}
	if len(folded) > 100 {
		fmt.Fprintf(&body, "… and %d more (ListAlerts lists them all).\n", len(folded)-100)
	}
	data, err := json.Marshal(map[string]any{"channel_id": ch.ID, "count": len(folded), "alerts": items})
	if err != nil {
		return digest, err
	}
	title := fmt.Sprintf("%d alerts held back by the rate limit of %s", len(folded), ch.Name)
	if len(folded) == 1 {
		title = "1 alert held back by the rate limit of " + ch.Name
	}
	closed, err := q.DigestClose(ctx, tx, dbsqlc.DigestCloseParams{ID: digest.ID, Title: title, Body: body.String(), Data: data})
	if errors.Is(err, pgx.ErrNoRows) {
		return q.AlertGetByID(ctx, tx, digest.ID)
	}
	return closed, err
}

// render builds the bytes a delivery sends, once: every retry sends the same.
func (d *Deliverer) render(a dbsqlc.Alert, ch dbsqlc.AlertChannel, del dbsqlc.AlertDelivery) ([]byte, error) {
	switch ch.Type {
	case ChannelWebhook:
		return WebhookBody(a, time.Now())
	case ChannelSlack:
		return SlackBody(a)
	case ChannelEmail:
		from := d.smtp.From
		if from == "" {
			from = "governor@localhost"
		}
		return EmailMessage(a, from, ch.EmailTo, del.ID, time.Now()), nil
	}
	return []byte{}, nil
}

// WebhookBody is a webhook's JSON payload, shaped as the Standard Webhooks specification
// recommends: {"type", "timestamp", "data"}.
func WebhookBody(a dbsqlc.Alert, now time.Time) ([]byte, error) {
	var related, data any
	_ = json.Unmarshal(a.Related, &related)
	_ = json.Unmarshal(a.Data, &data)
	return json.Marshal(map[string]any{
		"type":      "alert." + a.Kind,
		"timestamp": now.UTC().Format(time.RFC3339Nano),
		"data": map[string]any{
			"id": a.ID, "organization_id": a.OrgID, "kind": a.Kind, "severity": a.Severity, "title": a.Title, "body": a.Body,
			"dedupe_key": a.DedupeKey, "entity": map[string]string{"type": a.EntityType, "id": a.EntityID},
			"related": related, "data": data, "created_at": a.CreatedAt.UTC().Format(time.RFC3339Nano),
		},
	})
}

var slackEmoji = map[string]string{SeverityInfo: ":information_source:", SeverityWarning: ":warning:", SeverityHigh: ":rotating_light:", SeverityCritical: ":fire:"}

// SlackBody is a Slack incoming-webhook message: a text fallback and blocks.
func SlackBody(a dbsqlc.Alert) ([]byte, error) {
	head := fmt.Sprintf("%s *[%s] %s*", slackEmoji[a.Severity], strings.ToUpper(a.Severity), slackEscape(a.Title))
	text := head
	if a.Body != "" {
		text += "\n" + slackEscape(a.Body)
	}
	ctx := fmt.Sprintf("Governor · %s · %s", a.Kind, a.ID)
	if a.EntityID != "" {
		ctx += fmt.Sprintf(" · %s %s", a.EntityType, a.EntityID)
	}
	return json.Marshal(map[string]any{
		"text": fmt.Sprintf("[%s] %s", strings.ToUpper(a.Severity), a.Title),
		"blocks": []any{
			map[string]any{"type": "section", "text": map[string]string{"type": "mrkdwn", "text": clip(text, 2900)}},
			map[string]any{"type": "context", "elements": []any{map[string]string{"type": "mrkdwn", "text": slackEscape(ctx)}}},
		},
	})
}

func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// smtpCode extracts an SMTP reply code from an error.
func smtpCode(err error) int32 {
	var te *textproto.Error
	if errors.As(err, &te) {
		return int32(te.Code)
	}
	return 0
}

// What a delivery attempt ran into, in one word (stored and shown beside its status code
// and latency; the receiver's response body never is).
const (
	ClassOK             = "ok"
	ClassHTTP3xx        = "http_3xx"
	ClassHTTP4xx        = "http_4xx"
	ClassHTTP5xx        = "http_5xx"
	ClassTimeout        = "timeout"
	ClassRefusedAddress = "refused_address" // the guard refused the address connected to
	ClassRefusedURL     = "refused_url"     // the endpoint's URL is not allowed (any more)
	ClassTLS            = "tls_error"
	ClassDNS            = "dns_error"
	ClassConnection     = "connection_error"
	ClassSMTP           = "smtp_error"
	ClassConfig         = "config_error" // no SMTP server, credentials that do not open, …
	// ClassChannelDisabled: no attempt was made, the channel was disabled or deleted.
	ClassChannelDisabled = "channel_disabled"
)

// channelState is what the ledger keeps of a channel that the system turned off: no
// credentials, only what changed and what identifies it.
func channelState(ch dbsqlc.AlertChannel) map[string]any {
	return map[string]any{"id": ch.ID, "name": ch.Name, "type": ch.Type, "enabled": ch.Enabled,
		"disabled_reason": ch.DisabledReason, "failing_since": ch.FailingSince}
}
