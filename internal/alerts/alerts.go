// Package alerts turns things people must hear about (limit thresholds, budgets exceeded,
// anomalies, incidents, proposals waiting for approval, channels that stopped working)
// into alerts: exactly one per event, routed by the organization's rules to its channels,
// rate-limited per channel with the overflow folded into a digest, and delivered durably
// (one Temporal workflow per alert and channel, retried with backoff, every attempt
// recorded).
//
// Raise is called inside the transaction of whatever observed the event, so the alert,
// its deliveries and the workflow starts that owe them (through the outbox) commit with
// the event or not at all.
package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/actor"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/lifecycle"
	"github.com/governor-hq/governor/internal/limits"
	"github.com/governor-hq/governor/internal/money"
)

// Kinds of alert.
const (
	KindLimitThreshold  = "limit_threshold"
	KindBudgetExceeded  = "budget_exceeded"
	KindAnomaly         = "anomaly"
	KindIncident        = "incident"
	KindProposalPending = "proposal_pending"
	KindChannelDisabled = "channel_disabled"
	// KindDigest holds the alerts a channel's rate limit held back.
	KindDigest = "digest"
	// KindTest is sent by TestChannel to one channel.
	KindTest = "test"
	// KindSettlementFailed: a run's settlement was dead-lettered.
	KindSettlementFailed = "settlement_failed"
)

// Kinds lists every kind.
var Kinds = []string{KindLimitThreshold, KindBudgetExceeded, KindAnomaly, KindIncident, KindProposalPending,
	KindChannelDisabled, KindDigest, KindTest, KindSettlementFailed}

// Severities, in increasing order.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityHigh     = "high"
	SeverityCritical = "critical"
)

var severities = []string{SeverityInfo, SeverityWarning, SeverityHigh, SeverityCritical}

// SeverityRank orders severities (-1 for an unknown one).
func SeverityRank(s string) int { return slices.Index(severities, s) }

// Channel types.
const (
	ChannelWebhook = "webhook"
	ChannelSlack   = "slack"
	ChannelEmail   = "email"
	ChannelInApp   = "in_app"
)

// Delivery statuses.
const (
	StatusPending   = "pending"
	StatusDelivered = "delivered"
	StatusFailed    = "failed"
	StatusDigested  = "digested"
)

// Trigger is something to alert about.
type Trigger struct {
	OrgID string
	// Kind is one of the Kind constants.
	Kind string
	// Severity: "info", "warning", "high" or "critical" (an incident's "low" and "medium"
	// are taken as info and warning).
	Severity string
	// DedupeKey makes the alert unique within the organization: exactly one alert per key,
	// e.g. "limit/<id>/<window start>/<threshold>", "incident/<id>/opened".
	DedupeKey string
	Title     string
	Body      string
	// Entity is what the alert is about; Related are other objects it concerns.
	Entity  events.Ref
	Related []events.Ref
	Data    map[string]any
}

// Errors of a malformed trigger (a programming error of the caller).
var ErrInvalidTrigger = errors.New("invalid alert trigger")

// normalize accepts incident severities too (low → info, medium → warning) and defaults
// an empty one to info.
func (t *Trigger) normalize() {
	switch t.Severity {
	case "", "low":
		t.Severity = SeverityInfo
	case "medium":
		t.Severity = SeverityWarning
	}
}

func (t Trigger) validate() error {
	switch {
	case t.OrgID == "":
		return fmt.Errorf("%w: no organization", ErrInvalidTrigger)
	case !slices.Contains(Kinds, t.Kind):
		return fmt.Errorf("%w: unknown kind %q", ErrInvalidTrigger, t.Kind)
	case SeverityRank(t.Severity) < 0:
		return fmt.Errorf("%w: unknown severity %q", ErrInvalidTrigger, t.Severity)
	case t.DedupeKey == "":
		return fmt.Errorf("%w: no dedupe key", ErrInvalidTrigger)
	case t.Title == "":
		return fmt.Errorf("%w: no title", ErrInvalidTrigger)
	}
	return nil
}

// Raise records an alert in tx, exactly once per (OrgID, DedupeKey), routes it to the
// organization's channels and schedules its deliveries (through the outbox), returning the
// alert id and whether this call created it.
//
// Concurrent calls with the same key serialise on the key's unique index: the first
// creates the alert, the others wait for it to commit and return it with created false.
func Raise(ctx context.Context, tx pgx.Tx, t Trigger) (alertID string, created bool, err error) {
	a, created, err := raise(ctx, tx, t, routing{})
	return a.ID, created, err
}

// routing narrows where an alert goes (TestChannel, channel_disabled).
type routing struct {
	only string // one channel and nowhere else
}

// Actor is how alerts appear on the timeline.
var Actor = actor.System("alerts")

func raise(ctx context.Context, tx pgx.Tx, t Trigger, r routing) (dbsqlc.Alert, bool, error) {
	t.normalize()
	if err := t.validate(); err != nil {
		return dbsqlc.Alert{}, false, err
	}
	q := dbsqlc.New()
	related := t.Related
	if related == nil {
		related = []events.Ref{}
	}
	relJSON, err := json.Marshal(related)
	if err != nil {
		return dbsqlc.Alert{}, false, err
	}
	data := t.Data
	if data == nil {
		data = map[string]any{}
	}
	dataJSON, err := json.Marshal(data)
	if err != nil {
		return dbsqlc.Alert{}, false, fmt.Errorf("alert data: %w", err)
	}
	a, err := q.AlertInsert(ctx, tx, dbsqlc.AlertInsertParams{
		OrgID: t.OrgID, ID: ids.New(ids.Alert), DedupeKey: t.DedupeKey, Kind: t.Kind, Severity: t.Severity,
		Title: clip(t.Title, 300), Body: clip(t.Body, 4000), EntityType: t.Entity.Type, EntityID: t.Entity.ID,
		Related: relJSON, Data: dataJSON,
	})
	if errors.Is(err, pgx.ErrNoRows) {
		existing, err := q.AlertGetByKey(ctx, tx, dbsqlc.AlertGetByKeyParams{OrgID: t.OrgID, DedupeKey: t.DedupeKey})
		return existing, false, err
	}
	if err != nil {
		return a, false, fmt.Errorf("insert alert: %w", err)
	}
	evRelated := slices.Clone(related)
	if t.Entity.ID != "" {
		evRelated = append([]events.Ref{t.Entity}, evRelated...)
	}
	if _, err := events.Emit(ctx, tx, events.Event{
		OrgID: t.OrgID, Domain: events.DomainAlerts, Type: "alert_raised", Entity: events.Ref{Type: "alert", ID: a.ID},
		Related: evRelated, CorrelationID: t.Entity.ID, Actor: Actor,
		Summary: fmt.Sprintf("Alert (%s, %s): %s", a.Kind, a.Severity, a.Title),
		Data:    map[string]any{"kind": a.Kind, "severity": a.Severity, "dedupe_key": a.DedupeKey},
	}); err != nil {
		return a, true, err
	}
	targets, err := route(ctx, tx, a, r)
	if err != nil {
		return a, true, err
	}
	for _, ch := range targets {
		if err := deliverTo(ctx, tx, a, ch); err != nil {
			return a, true, fmt.Errorf("deliver alert to %s: %w", ch.ID, err)
		}
	}
	return a, true, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// InAppChannel returns the organization's in-app channel, making it on first use.
func InAppChannel(ctx context.Context, tx dbsqlc.DBTX, orgID string) (dbsqlc.AlertChannel, error) {
	q := dbsqlc.New()
	ch, err := q.ChannelInApp(ctx, tx, orgID)
	if errors.Is(err, pgx.ErrNoRows) {
		if err := q.ChannelEnsureInApp(ctx, tx, dbsqlc.ChannelEnsureInAppParams{OrgID: orgID, ID: ids.New(ids.Channel)}); err != nil {
			return ch, err
		}
		ch, err = q.ChannelInApp(ctx, tx, orgID)
	}
	return ch, err
}

// route picks the channels an alert goes to.
func route(ctx context.Context, tx pgx.Tx, a dbsqlc.Alert, r routing) ([]dbsqlc.AlertChannel, error) {
	q := dbsqlc.New()
	inApp, err := InAppChannel(ctx, tx, a.OrgID)
	if err != nil {
		return nil, err
	}
	if a.Kind == KindChannelDisabled {
		// Never to the channel that stopped working, nor to the other external ones: the
		// console is where people manage channels.
		if !inApp.Enabled {
			return nil, nil
		}
		return []dbsqlc.AlertChannel{inApp}, nil
	}
	channels, err := q.ChannelsOfOrg(ctx, tx, a.OrgID)
	if err != nil {
		return nil, err
	}
	if r.only != "" {
		for _, ch := range channels {
			if ch.ID == r.only {
				return []dbsqlc.AlertChannel{ch}, nil
			}
		}
		return nil, fmt.Errorf("channel %s not found", r.only)
	}
	routes, err := q.RoutesOfOrg(ctx, tx, a.OrgID)
	if err != nil {
		return nil, err
	}
	return Select(a.Kind, a.Severity, channels, routes), nil
}

// Select applies an organization's routes to an alert of the given kind and severity and
// returns the enabled channels it goes to, in channel order:
//   - every enabled route matching the kind (or with no kinds) and at or below the
//     severity sends it to its channels;
//   - an organization without routes sends high and critical alerts to every enabled
//     external channel;
//   - the in-app channel gets every alert unless a route names it (then routes decide).
func Select(kind, severity string, channels []dbsqlc.AlertChannel, routes []dbsqlc.AlertRoute) []dbsqlc.AlertChannel {
	want := map[string]bool{}
	namedInApp := false
	var inAppID string
	for _, ch := range channels {
		if ch.Type == ChannelInApp {
			inAppID = ch.ID
		}
	}
	for _, rt := range routes {
		if slices.Contains(rt.ChannelIds, inAppID) {
			namedInApp = true
		}
		if !rt.Enabled || SeverityRank(severity) < SeverityRank(rt.MinSeverity) {
			continue
		}
		if len(rt.Kinds) > 0 && !slices.Contains(rt.Kinds, kind) {
			continue
		}
		for _, id := range rt.ChannelIds {
			want[id] = true
		}
	}
	if len(routes) == 0 && SeverityRank(severity) >= SeverityRank(SeverityHigh) {
		for _, ch := range channels {
			if ch.Type != ChannelInApp {
				want[ch.ID] = true
			}
		}
	}
	if !namedInApp && inAppID != "" {
		want[inAppID] = true
	}
	var out []dbsqlc.AlertChannel
	for _, ch := range channels {
		if want[ch.ID] && ch.Enabled && ch.DeletedAt == nil {
			out = append(out, ch)
		}
	}
	return out
}

// deliverTo takes the alert from the channel's rate limit and delivers it: at once for
// the in-app channel, through a delivery workflow for the others. Over the limit, the
// alert is folded into the channel's open digest instead.
func deliverTo(ctx context.Context, tx pgx.Tx, a dbsqlc.Alert, ch dbsqlc.AlertChannel) error {
	if ch.MaxPerHour > 0 || ch.MaxPerDay > 0 {
		now := time.Now()
		hour := now.UTC().Truncate(time.Hour)
		loc, err := orgLocation(ctx, tx, a.OrgID)
		if err != nil {
			return err
		}
		day, _ := limits.WindowStart(limits.WindowDay, now, loc)
		exhausted, err := dbsqlc.New().ChannelTake(ctx, tx, dbsqlc.ChannelTakeParams{
			ChannelID: ch.ID, HourStart: hour, DayStart: day, MaxPerHour: ch.MaxPerHour, MaxPerDay: ch.MaxPerDay,
		})
		if err != nil {
			return err
		}
		switch exhausted {
		case "hour":
			return fold(ctx, tx, a, ch, hour.Add(time.Hour))
		case "day":
			return fold(ctx, tx, a, ch, limits.WindowEnd(limits.WindowDay, day, loc))
		}
	}
	_, err := schedule(ctx, tx, a, ch, time.Time{})
	return err
}

func orgLocation(ctx context.Context, tx dbsqlc.DBTX, orgID string) (*time.Location, error) {
	org, err := dbsqlc.New().OrgGet(ctx, tx, orgID)
	if err != nil {
		return nil, err
	}
	loc, err := time.LoadLocation(org.TimeZone)
	if err != nil {
		return time.UTC, nil
	}
	return loc, nil
}

// schedule creates the alert's delivery to a channel: delivered at once in-app, else a
// pending delivery and the start of its workflow (not before notBefore).
func schedule(ctx context.Context, tx pgx.Tx, a dbsqlc.Alert, ch dbsqlc.AlertChannel, notBefore time.Time) (dbsqlc.AlertDelivery, error) {
	q := dbsqlc.New()
	id := ids.New(ids.Delivery)
	wfID := lifecycle.AlertDeliveryWorkflowID(a.ID, ch.ID)
	retryFrom := time.Now()
	if notBefore.After(retryFrom) {
		retryFrom = notBefore
	}
	until := retryFrom.Add(time.Duration(ch.RetryMaxAgeMs) * time.Millisecond)
	if ch.Type == ChannelInApp && notBefore.IsZero() {
		now := time.Now()
		d, err := q.DeliveryInsert(ctx, tx, dbsqlc.DeliveryInsertParams{
			OrgID: a.OrgID, ID: id, AlertID: a.ID, ChannelID: ch.ID, Status: StatusDelivered, RetryUntil: until,
			Attempts: 1, DeliveredAt: &now, LastAttemptAt: &now,
		})
		if errors.Is(err, pgx.ErrNoRows) {
			return d, nil // delivered before
		}
		if err != nil {
			return d, err
		}
		if err := q.AttemptRecordDone(ctx, tx, dbsqlc.AttemptRecordDoneParams{DeliveryID: d.ID, Number: 1}); err != nil {
			return d, err
		}
		return d, notify(ctx, tx, a)
	}
	d, err := q.DeliveryInsert(ctx, tx, dbsqlc.DeliveryInsertParams{
		OrgID: a.OrgID, ID: id, AlertID: a.ID, ChannelID: ch.ID, Status: StatusPending, WorkflowID: wfID, RetryUntil: until,
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return d, nil
	}
	if err != nil {
		return d, err
	}
	return d, startDelivery(ctx, tx, a, ch, d, notBefore, "start")
}

func startDelivery(ctx context.Context, tx pgx.Tx, a dbsqlc.Alert, ch dbsqlc.AlertChannel, d dbsqlc.AlertDelivery, notBefore time.Time, kind string) error {
	payload, err := json.Marshal(lifecycle.AlertDeliveryInput{
		OrgID: a.OrgID, AlertID: a.ID, ChannelID: ch.ID, DeliveryID: d.ID, ChannelType: ch.Type, Kind: a.Kind,
		Severity: a.Severity, NotBefore: notBefore,
	})
	if err != nil {
		return err
	}
	p := dbsqlc.OutboxAddParams{
		OrgID: a.OrgID, Kind: kind, WorkflowType: lifecycle.AlertDeliveryWorkflowType,
		WorkflowID: lifecycle.AlertDeliveryWorkflowID(a.ID, ch.ID), Payload: payload,
	}
	if kind == "signal_with_start" {
		p.SignalName = lifecycle.SignalAlertRedeliver
		p.SignalArg = d.ID
	}
	return dbsqlc.New().OutboxAdd(ctx, tx, p)
}

// notify shows an alert in the console: one notification per alert, announced on the
// timeline (live streams wake on that event).
func notify(ctx context.Context, tx dbsqlc.DBTX, a dbsqlc.Alert) error {
	n, err := dbsqlc.New().NotificationInsert(ctx, tx, dbsqlc.NotificationInsertParams{
		OrgID: a.OrgID, ID: ids.New(ids.Notification), AlertID: a.ID, Kind: a.Kind, Severity: a.Severity,
		Title: a.Title, Body: a.Body, EntityType: a.EntityType, EntityID: a.EntityID,
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = events.Emit(ctx, tx, events.Event{
		OrgID: a.OrgID, Domain: events.DomainAlerts, Type: "notification_created", Entity: events.Ref{Type: "notification", ID: n.ID},
		Related: []events.Ref{{Type: "alert", ID: a.ID}}, CorrelationID: a.EntityID, Actor: Actor,
		Summary: "Notification: " + a.Title, Data: map[string]any{"seq": n.Seq, "severity": a.Severity, "kind": a.Kind},
	})
	return err
}

// fold adds an alert that is over a channel's rate limit to the channel's open digest
// (opening one, sent at sendAt, if there is none). The alert is not lost: its delivery is
// recorded as digested, pointing at the digest.
func fold(ctx context.Context, tx pgx.Tx, a dbsqlc.Alert, ch dbsqlc.AlertChannel, sendAt time.Time) error {
	q := dbsqlc.New()
	digest, err := q.DigestLockOpen(ctx, tx, &ch.ID)
	if errors.Is(err, pgx.ErrNoRows) {
		id := ids.New(ids.Alert)
		digest, err = q.DigestOpen(ctx, tx, dbsqlc.DigestOpenParams{
			OrgID: a.OrgID, ID: id, DedupeKey: "digest/" + ch.ID + "/" + id, ChannelID: &ch.ID, SendAt: &sendAt,
			Title: "Alerts held back by the rate limit of " + ch.Name,
		})
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			// Another transaction opened one first: use it.
			digest, err = q.DigestLockOpen(ctx, tx, &ch.ID)
		case err == nil:
			if _, err := events.Emit(ctx, tx, events.Event{
				OrgID: a.OrgID, Domain: events.DomainAlerts, Type: "digest_opened", Entity: events.Ref{Type: "alert", ID: digest.ID},
				Related: []events.Ref{{Type: "channel", ID: ch.ID}}, Actor: Actor,
				Summary: fmt.Sprintf("Channel %s is over its rate limit: alerts are held for a digest sent at %s", ch.Name, sendAt.UTC().Format(time.RFC3339)),
			}); err != nil {
				return err
			}
			if _, err := schedule(ctx, tx, digest, ch, sendAt); err != nil {
				return err
			}
		}
	}
	if err != nil {
		return fmt.Errorf("open digest: %w", err)
	}
	if err := q.DigestFold(ctx, tx, dbsqlc.DigestFoldParams{ID: digest.ID, Severity: a.Severity}); err != nil {
		return err
	}
	_, err = q.DeliveryInsert(ctx, tx, dbsqlc.DeliveryInsertParams{
		OrgID: a.OrgID, ID: ids.New(ids.Delivery), AlertID: a.ID, ChannelID: ch.ID, Status: StatusDigested,
		DigestAlertID: &digest.ID, RetryUntil: time.Now(),
	})
	if errors.Is(err, pgx.ErrNoRows) {
		err = nil
	}
	return err
}

// Keys of alerts that more than one observer may raise for the same event, so that the
// first one creates it and the others find it.

// ThresholdKey is the key of a limit's usage reaching threshold percent in a window.
func ThresholdKey(limitID string, windowStart time.Time, threshold int32) string {
	return fmt.Sprintf("limit/%s/%s/%d", limitID, windowStart.UTC().Format(time.RFC3339), threshold)
}

// BudgetKey is the key of a budget exceeded in a window (raised by the settlement that
// went over it, or by the anomaly batch that found it over).
func BudgetKey(limitID string, windowStart time.Time) string {
	return fmt.Sprintf("budget/%s/%s", limitID, windowStart.UTC().Format(time.RFC3339))
}

// Money formats micro-dollars as people read them (money.Dollars): "$1,050.00".
func Money(micros int64) string { return money.Dollars(micros) }
