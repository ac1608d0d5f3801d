package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/governor-hq/governor/db/dbsqlc"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/alerts"
	"github.com/governor-hq/governor/internal/change"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/ids"
)

type alertService struct{ *Server }

var (
	channelTypeNames = map[v1.ChannelType]string{
		v1.ChannelType_CHANNEL_TYPE_WEBHOOK: alerts.ChannelWebhook, v1.ChannelType_CHANNEL_TYPE_SLACK: alerts.ChannelSlack,
		v1.ChannelType_CHANNEL_TYPE_EMAIL: alerts.ChannelEmail, v1.ChannelType_CHANNEL_TYPE_IN_APP: alerts.ChannelInApp,
	}
	alertKindNames = map[v1.AlertKind]string{
		v1.AlertKind_ALERT_KIND_LIMIT_THRESHOLD: alerts.KindLimitThreshold, v1.AlertKind_ALERT_KIND_BUDGET_EXCEEDED: alerts.KindBudgetExceeded,
		v1.AlertKind_ALERT_KIND_ANOMALY: alerts.KindAnomaly, v1.AlertKind_ALERT_KIND_INCIDENT: alerts.KindIncident,
		v1.AlertKind_ALERT_KIND_PROPOSAL_PENDING: alerts.KindProposalPending, v1.AlertKind_ALERT_KIND_CHANNEL_DISABLED: alerts.KindChannelDisabled,
		v1.AlertKind_ALERT_KIND_SETTLEMENT_FAILED: alerts.KindSettlementFailed,
		v1.AlertKind_ALERT_KIND_DIGEST:            alerts.KindDigest, v1.AlertKind_ALERT_KIND_TEST: alerts.KindTest,
	}
	alertSeverityNames = map[v1.AlertSeverity]string{
		v1.AlertSeverity_ALERT_SEVERITY_INFO: alerts.SeverityInfo, v1.AlertSeverity_ALERT_SEVERITY_WARNING: alerts.SeverityWarning,
		v1.AlertSeverity_ALERT_SEVERITY_HIGH: alerts.SeverityHigh, v1.AlertSeverity_ALERT_SEVERITY_CRITICAL: alerts.SeverityCritical,
	}
	deliveryStatusNames = map[v1.DeliveryStatus]string{
		v1.DeliveryStatus_DELIVERY_STATUS_PENDING: alerts.StatusPending, v1.DeliveryStatus_DELIVERY_STATUS_DELIVERED: alerts.StatusDelivered,
		v1.DeliveryStatus_DELIVERY_STATUS_FAILED: alerts.StatusFailed, v1.DeliveryStatus_DELIVERY_STATUS_DIGESTED: alerts.StatusDigested,
	}
	attemptOutcomeEnums = map[string]v1.AttemptOutcome{
		"in_flight": v1.AttemptOutcome_ATTEMPT_OUTCOME_IN_FLIGHT, "delivered": v1.AttemptOutcome_ATTEMPT_OUTCOME_DELIVERED,
		"retry": v1.AttemptOutcome_ATTEMPT_OUTCOME_RETRY, "failed": v1.AttemptOutcome_ATTEMPT_OUTCOME_FAILED,
		"abandoned": v1.AttemptOutcome_ATTEMPT_OUTCOME_ABANDONED,
	}
	channelTypeEnums    = invert(channelTypeNames)
	alertKindEnums      = invert(alertKindNames)
	alertSeverityEnums  = invert(alertSeverityNames)
	deliveryStatusEnums = invert(deliveryStatusNames)
)

func msDuration(n int64) *durationpb.Duration {
	return durationpb.New(time.Duration(n) * time.Millisecond)
}

func channelProto(ch dbsqlc.AlertChannel) *v1.Channel {
	out := &v1.Channel{
		Id: ch.ID, Name: ch.Name, Type: channelTypeEnums[ch.Type], EmailTo: ch.EmailTo, Enabled: ch.Enabled,
		DisabledReason: ch.DisabledReason, DisableTime: tsp(ch.DisabledAt), MaxPerHour: ch.MaxPerHour, MaxPerDay: ch.MaxPerDay,
		DisableAfter: msDuration(ch.DisableAfterMs), FailingSince: tsp(ch.FailingSince), LastSuccessTime: tsp(ch.LastSuccessAt),
		CreateTime: ts(ch.CreatedAt), UpdateTime: ts(ch.UpdatedAt),
	}
	if ch.Type != alerts.ChannelInApp {
		out.Retry = &v1.RetryPolicy{InitialInterval: msDuration(ch.RetryInitialMs), MaxInterval: msDuration(ch.RetryMaxIntervalMs),
			MaxAge: msDuration(ch.RetryMaxAgeMs)}
	}
	if ch.Type == alerts.ChannelWebhook || ch.Type == alerts.ChannelSlack {
		// The stored form is the display form already, but for rows not sealed yet.
		out.Url = alerts.DisplayURL(ch.Type, ch.Url)
	}
	if alerts.HasPreviousSecret(ch) && ch.PrevSecretExpiresAt != nil && ch.PrevSecretExpiresAt.After(time.Now()) {
		out.PreviousSecretExpireTime = ts(*ch.PrevSecretExpiresAt)
	}
	return out
}

func routeProto(r dbsqlc.AlertRoute) *v1.Route {
	out := &v1.Route{Id: r.ID, Name: r.Name, MinSeverity: alertSeverityEnums[r.MinSeverity], ChannelIds: r.ChannelIds,
		Enabled: r.Enabled, CreateTime: ts(r.CreatedAt), UpdateTime: ts(r.UpdatedAt)}
	for _, k := range r.Kinds {
		out.Kinds = append(out.Kinds, alertKindEnums[k])
	}
	return out
}

func alertProto(a dbsqlc.Alert) *v1.Alert {
	out := &v1.Alert{
		Id: a.ID, Kind: alertKindEnums[a.Kind], Severity: alertSeverityEnums[a.Severity], DedupeKey: a.DedupeKey, Title: a.Title,
		Body: a.Body, DataJson: string(a.Data), CreateTime: ts(a.CreatedAt), DigestCount: a.DigestCount,
		DigestOpen: a.DigestStatus != nil && *a.DigestStatus == "open",
	}
	if a.EntityID != "" {
		out.Entity = &v1.EntityRef{Type: a.EntityType, Id: a.EntityID}
	}
	var related []events.Ref
	_ = json.Unmarshal(a.Related, &related)
	for _, r := range related {
		out.Related = append(out.Related, &v1.EntityRef{Type: r.Type, Id: r.ID})
	}
	return out
}

func attemptProto(at dbsqlc.AlertDeliveryAttempt) *v1.DeliveryAttempt {
	out := &v1.DeliveryAttempt{Number: at.Number, Outcome: attemptOutcomeEnums[at.Outcome], StartTime: ts(at.StartedAt),
		FinishTime: tsp(at.FinishedAt), StatusCode: at.StatusCode, LatencyMs: at.LatencyMs, Error: at.Error,
		Classification: at.Classification}
	if at.RetryAfterMs > 0 {
		out.RetryAfter = msDuration(at.RetryAfterMs)
	}
	return out
}

func deliveryProto(d dbsqlc.AlertDelivery, channelType string, attempts []dbsqlc.AlertDeliveryAttempt) *v1.Delivery {
	out := &v1.Delivery{
		Id: d.ID, AlertId: d.AlertID, ChannelId: d.ChannelID, ChannelType: channelTypeEnums[channelType], Status: deliveryStatusEnums[d.Status],
		WorkflowId: d.WorkflowID, MessageId: d.ID, AttemptCount: d.Attempts, NextAttemptTime: tsp(d.NextAttemptAt),
		LastAttemptTime: tsp(d.LastAttemptAt), DeliverTime: tsp(d.DeliveredAt), FailTime: tsp(d.FailedAt), RetryUntil: ts(d.RetryUntil),
		LastStatusCode: d.LastStatusCode, LastError: d.LastError, DigestAlertId: str(d.DigestAlertID), CreateTime: ts(d.CreatedAt),
		LastClassification: d.LastClassification,
	}
	if d.Status == alerts.StatusDigested {
		out.RetryUntil = nil
	}
	for _, at := range attempts {
		out.Attempts = append(out.Attempts, attemptProto(at))
	}
	return out
}

// deliveriesProto renders deliveries with their attempts (one query for all attempts).
func (s *Server) deliveriesProto(ctx context.Context, conn dbsqlc.DBTX, ds []dbsqlc.AlertDelivery, types []string) ([]*v1.Delivery, error) {
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	atts, err := q.AttemptsOfDeliveries(ctx, conn, ids)
	if err != nil {
		return nil, err
	}
	byDelivery := map[string][]dbsqlc.AlertDeliveryAttempt{}
	for _, at := range atts {
		byDelivery[at.DeliveryID] = append(byDelivery[at.DeliveryID], at)
	}
	out := make([]*v1.Delivery, len(ds))
	for i, d := range ds {
		out[i] = deliveryProto(d, types[i], byDelivery[d.ID])
	}
	return out, nil
}

func deliveryOfListRow(r dbsqlc.DeliveryListRow) dbsqlc.AlertDelivery {
	return dbsqlc.AlertDelivery{OrgID: r.OrgID, ID: r.ID, AlertID: r.AlertID, ChannelID: r.ChannelID, Status: r.Status,
		DigestAlertID: r.DigestAlertID, WorkflowID: r.WorkflowID, Attempts: r.Attempts, RetryUntil: r.RetryUntil,
		NextAttemptAt: r.NextAttemptAt, LastAttemptAt: r.LastAttemptAt, LastStatusCode: r.LastStatusCode, LastError: r.LastError,
		DeliveredAt: r.DeliveredAt, FailedAt: r.FailedAt, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		LastClassification: r.LastClassification}
}

func deliveryOfAlertRow(r dbsqlc.DeliveriesOfAlertRow) dbsqlc.AlertDelivery {
	return dbsqlc.AlertDelivery{OrgID: r.OrgID, ID: r.ID, AlertID: r.AlertID, ChannelID: r.ChannelID, Status: r.Status,
		DigestAlertID: r.DigestAlertID, WorkflowID: r.WorkflowID, Attempts: r.Attempts, RetryUntil: r.RetryUntil,
		NextAttemptAt: r.NextAttemptAt, LastAttemptAt: r.LastAttemptAt, LastStatusCode: r.LastStatusCode, LastError: r.LastError,
		DeliveredAt: r.DeliveredAt, FailedAt: r.FailedAt, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		LastClassification: r.LastClassification}
}

// checkEndpoint checks a webhook or Slack URL against the operator's policy: https (or
// http where allowed), Slack's host for Slack, and no host that is or resolves to an
// internal address. Deliveries check the address again when they connect.
func (s *Server) checkEndpoint(ctx context.Context, field, channelType, raw string) error {
	err := s.opts.AlertEndpoints.CheckURL(ctx, channelType, raw)
	var ee *alerts.EndpointError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee) && ee.Temporary:
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf("%s: %s; try again", field, ee.Reason))
	case errors.As(err, &ee):
		return invalidField(field, "url.endpoint", "%s", ee.Reason)
	}
	return err
}

func durMs(d *durationpb.Duration) *int64 {
	if d == nil {
		return nil
	}
	n := d.AsDuration().Milliseconds()
	return &n
}

func orMs(d *durationpb.Duration, def time.Duration) int64 {
	if p := durMs(d); p != nil {
		return *p
	}
	return def.Milliseconds()
}

func channelEvent(ch dbsqlc.AlertChannel, typ, summary string) events.Event {
	return events.Event{Domain: events.DomainAlerts, Type: typ, Entity: entity("channel", ch.ID), Summary: summary}
}

func (s *alertService) CreateChannel(ctx context.Context, req *connect.Request[v1.CreateChannelRequest]) (*connect.Response[v1.CreateChannelResponse], error) {
	m := req.Msg
	typ := channelTypeNames[m.Type]
	switch typ {
	case alerts.ChannelWebhook, alerts.ChannelSlack:
		if err := s.checkEndpoint(ctx, "url", typ, m.Url); err != nil {
			return nil, err
		}
		if len(m.EmailTo) > 0 {
			return nil, invalidField("email_to", "email_to.type", "only for email channels")
		}
	case alerts.ChannelEmail:
		if len(m.EmailTo) == 0 {
			return nil, invalidField("email_to", "email_to.required", "an email channel needs at least one recipient")
		}
		if m.Url != "" {
			return nil, invalidField("url", "url.type", "only for webhook and Slack channels")
		}
	}
	initial, maxInterval, maxAge := orMs(m.GetRetry().GetInitialInterval(), alerts.DefaultRetryInitial),
		orMs(m.GetRetry().GetMaxInterval(), alerts.DefaultRetryMaxInterval), orMs(m.GetRetry().GetMaxAge(), alerts.DefaultRetryMaxAge)
	if initial > maxInterval {
		return nil, invalidField("retry.initial_interval", "retry.order", "must not exceed retry.max_interval")
	}
	secret := ""
	if typ == alerts.ChannelWebhook {
		secret = alerts.NewSecret()
	}
	emailTo := m.EmailTo
	if emailTo == nil {
		emailTo = []string{}
	}
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.CreateChannelResponse, error) {
		id := ids.New(ids.Channel)
		sealed, err := alerts.Seal(ctx, c.DB, s.opts.Keyring, c.OrgID, id, typ, alerts.Credentials{URL: m.Url, Secret: secret})
		if err != nil {
			return nil, err
		}
		ch, err := c.Q.ChannelCreate(ctx, c.DB, dbsqlc.ChannelCreateParams{
			OrgID: c.OrgID, ID: id, Name: m.Name, Type: typ, Url: sealed.DisplayURL, UrlEnc: sealed.URL, EmailTo: emailTo, SecretEnc: sealed.Secret,
			MaxPerHour: m.MaxPerHour, MaxPerDay: m.MaxPerDay, RetryInitialMs: initial, RetryMaxIntervalMs: maxInterval,
			RetryMaxAgeMs: maxAge, DisableAfterMs: orMs(m.DisableAfter, alerts.DefaultDisableAfter),
		})
		if err != nil {
			return nil, channelErr(err)
		}
		out := channelProto(ch)
		err = c.Record(ctx, "alert_channel.create", nil, out, channelEvent(ch, "channel_created", "Alert channel created: "+ch.Name+" ("+ch.Type+")"))
		return &v1.CreateChannelResponse{Channel: out, Secret: secret}, err
	})
}

func channelErr(err error) error {
	var pe interface{ SQLState() string }
	if errors.As(err, &pe) && pe.SQLState() == "23505" {
		return connect.NewError(connect.CodeAlreadyExists, errors.New("a channel with this name already exists"))
	}
	return err
}

func (s *alertService) getChannel(ctx context.Context, conn dbsqlc.DBTX, id string) (dbsqlc.AlertChannel, error) {
	ch, err := q.ChannelGet(ctx, conn, dbsqlc.ChannelGetParams{OrgID: principal(ctx).OrgID, ID: id})
	if err != nil {
		return ch, notFoundOr(err, "channel %s not found", id)
	}
	return ch, nil
}

func (s *alertService) GetChannel(ctx context.Context, req *connect.Request[v1.GetChannelRequest]) (*connect.Response[v1.GetChannelResponse], error) {
	ch, err := s.getChannel(ctx, s.pool, req.Msg.Id)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.GetChannelResponse{Channel: channelProto(ch)}), nil
}

func (s *alertService) ListChannels(ctx context.Context, req *connect.Request[v1.ListChannelsRequest]) (*connect.Response[v1.ListChannelsResponse], error) {
	cur, err := decodeCursor(req.Msg.PageToken)
	if err != nil {
		return nil, err
	}
	// A read: the in-app channel is made with the organization (Bootstrap; migration 0009
	// for organizations made before).
	org := principal(ctx).OrgID
	size := pageSize(req.Msg.PageSize)
	rows, err := q.ChannelList(ctx, s.pool, dbsqlc.ChannelListParams{OrgID: org, AfterID: cur.ID, Max: size + 1})
	if err != nil {
		return nil, err
	}
	rows, more := page(rows, size)
	out := &v1.ListChannelsResponse{}
	for _, ch := range rows {
		out.Channels = append(out.Channels, channelProto(ch))
	}
	if more {
		out.NextPageToken = encodeCursor(cursor{ID: rows[len(rows)-1].ID})
	}
	return connect.NewResponse(out), nil
}

func (s *alertService) UpdateChannel(ctx context.Context, req *connect.Request[v1.UpdateChannelRequest]) (*connect.Response[v1.UpdateChannelResponse], error) {
	m := req.Msg
	// The URL is checked (which may resolve its host) before the transaction, so no row
	// lock is held while DNS answers. A channel's type never changes.
	var urlType string
	if m.Url != nil {
		ch, err := s.getChannel(ctx, s.pool, m.Id)
		if err != nil {
			return nil, err
		}
		urlType = ch.Type
		if urlType == alerts.ChannelWebhook || urlType == alerts.ChannelSlack {
			if err := s.checkEndpoint(ctx, "url", urlType, *m.Url); err != nil {
				return nil, err
			}
		}
	}
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.UpdateChannelResponse, error) {
		before, err := c.Q.ChannelGetForUpdate(ctx, c.DB, dbsqlc.ChannelGetForUpdateParams{OrgID: c.OrgID, ID: m.Id})
		if err != nil {
			return nil, notFoundOr(err, "channel %s not found", m.Id)
		}
		p := dbsqlc.ChannelUpdateParams{OrgID: c.OrgID, ID: m.Id, Name: m.Name, MaxPerHour: m.MaxPerHour, MaxPerDay: m.MaxPerDay,
			RetryInitialMs: durMs(m.GetRetry().GetInitialInterval()), RetryMaxIntervalMs: durMs(m.GetRetry().GetMaxInterval()),
			RetryMaxAgeMs: durMs(m.GetRetry().GetMaxAge()), DisableAfterMs: durMs(m.DisableAfter)}
		if m.Url != nil {
			if before.Type != alerts.ChannelWebhook && before.Type != alerts.ChannelSlack {
				return nil, invalidField("url", "url.type", "only for webhook and Slack channels")
			}
			if before.Type != urlType {
				return nil, failedPrecondition("channel %s changed while its URL was checked; try again", before.ID)
			}
			sealed, err := alerts.Seal(ctx, c.DB, s.opts.Keyring, c.OrgID, before.ID, before.Type, alerts.Credentials{URL: *m.Url})
			if err != nil {
				return nil, err
			}
			p.Url, p.UrlEnc = &sealed.DisplayURL, sealed.URL
		}
		if m.SetEmailTo {
			if before.Type != alerts.ChannelEmail {
				return nil, invalidField("email_to", "email_to.type", "only for email channels")
			}
			if len(m.EmailTo) == 0 {
				return nil, invalidField("email_to", "email_to.required", "an email channel needs at least one recipient")
			}
			p.EmailTo = m.EmailTo
		}
		initial, maxInterval := before.RetryInitialMs, before.RetryMaxIntervalMs
		if p.RetryInitialMs != nil {
			initial = *p.RetryInitialMs
		}
		if p.RetryMaxIntervalMs != nil {
			maxInterval = *p.RetryMaxIntervalMs
		}
		if initial > maxInterval {
			return nil, invalidField("retry.initial_interval", "retry.order", "must not exceed retry.max_interval")
		}
		after, err := c.Q.ChannelUpdate(ctx, c.DB, p)
		if err != nil {
			return nil, channelErr(err)
		}
		summary := "Alert channel updated: " + after.Name
		if m.Enabled != nil && *m.Enabled != after.Enabled {
			reason := "disabled through the API"
			if after, err = c.Q.ChannelSetEnabled(ctx, c.DB, dbsqlc.ChannelSetEnabledParams{ID: after.ID, Enabled: *m.Enabled, Reason: reason}); err != nil {
				return nil, err
			}
			if *m.Enabled {
				summary = "Alert channel enabled: " + after.Name
			} else {
				summary = "Alert channel disabled: " + after.Name
			}
		}
		out := channelProto(after)
		err = c.Record(ctx, "alert_channel.update", channelProto(before), out, channelEvent(after, "channel_updated", summary))
		return &v1.UpdateChannelResponse{Channel: out}, err
	})
}

func (s *alertService) DeleteChannel(ctx context.Context, req *connect.Request[v1.DeleteChannelRequest]) (*connect.Response[v1.DeleteChannelResponse], error) {
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.DeleteChannelResponse, error) {
		before, err := c.Q.ChannelGetForUpdate(ctx, c.DB, dbsqlc.ChannelGetForUpdateParams{OrgID: c.OrgID, ID: req.Msg.Id})
		if err != nil {
			return nil, notFoundOr(err, "channel %s not found", req.Msg.Id)
		}
		if before.Type == alerts.ChannelInApp {
			return nil, failedPrecondition("the in-app channel cannot be deleted; route alerts away from it instead")
		}
		if _, err := c.Q.ChannelDelete(ctx, c.DB, dbsqlc.ChannelDeleteParams{OrgID: c.OrgID, ID: before.ID}); err != nil {
			return nil, err
		}
		err = c.Record(ctx, "alert_channel.delete", channelProto(before), nil, channelEvent(before, "channel_deleted", "Alert channel deleted: "+before.Name))
		return &v1.DeleteChannelResponse{}, err
	})
}

func (s *alertService) RotateChannelSecret(ctx context.Context, req *connect.Request[v1.RotateChannelSecretRequest]) (*connect.Response[v1.RotateChannelSecretResponse], error) {
	m := req.Msg
	keep := alerts.DefaultPreviousSecretValidity
	if m.PreviousValidFor != nil {
		keep = m.PreviousValidFor.AsDuration()
	}
	secret := alerts.NewSecret()
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.RotateChannelSecretResponse, error) {
		before, err := c.Q.ChannelGetForUpdate(ctx, c.DB, dbsqlc.ChannelGetForUpdateParams{OrgID: c.OrgID, ID: m.Id})
		if err != nil {
			return nil, notFoundOr(err, "channel %s not found", m.Id)
		}
		if before.Type != alerts.ChannelWebhook {
			return nil, failedPrecondition("only webhook channels have a signing secret")
		}
		expires := time.Now().Add(keep)
		// Each secret is bound to its field: the current one is opened and sealed again as
		// the previous one, not moved.
		current, err := alerts.Open(ctx, c.DB, s.opts.Keyring, before)
		if err != nil {
			return nil, err
		}
		sealed, err := alerts.Seal(ctx, c.DB, s.opts.Keyring, c.OrgID, before.ID, before.Type,
			alerts.Credentials{Secret: secret, PrevSecret: current.Secret})
		if err != nil {
			return nil, err
		}
		after, err := c.Q.ChannelRotateSecret(ctx, c.DB, dbsqlc.ChannelRotateSecretParams{OrgID: c.OrgID, ID: m.Id,
			SecretEnc: sealed.Secret, PrevSecretEnc: sealed.PrevSecret, PrevExpiresAt: &expires})
		if err != nil {
			return nil, err
		}
		out := channelProto(after)
		err = c.Record(ctx, "alert_channel.rotate_secret", channelProto(before), out, channelEvent(after, "channel_secret_rotated",
			"Signing secret of "+after.Name+" rotated; the previous one signs until "+expires.UTC().Format(time.RFC3339)))
		return &v1.RotateChannelSecretResponse{Channel: out, Secret: secret}, err
	})
}

func (s *alertService) TestChannel(ctx context.Context, req *connect.Request[v1.TestChannelRequest]) (*connect.Response[v1.TestChannelResponse], error) {
	p := principal(ctx)
	by := p.UserID
	if by == "" {
		by = p.APIKeyID
	}
	resp, err := mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.TestChannelResponse, error) {
		a, d, err := alerts.SendTest(ctx, c.DB, c.OrgID, req.Msg.Id, by)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return nil, notFound("channel %s not found", req.Msg.Id)
		case errors.Is(err, alerts.ErrChannelDisabled):
			return nil, failedPrecondition("%v", err)
		case err != nil:
			return nil, err
		}
		ch, err := c.Q.ChannelGetByID(ctx, c.DB, d.ChannelID)
		if err != nil {
			return nil, err
		}
		if err := c.Audit(ctx, "alert_channel.test", "channel", ch.ID, nil, alertProto(a)); err != nil {
			return nil, err
		}
		return &v1.TestChannelResponse{Alert: alertProto(a), Delivery: deliveryProto(d, ch.Type, nil)}, nil
	})
	s.wakeRelay()
	return resp, err
}

// kindsOf maps alert kinds to their stored names.
func kindsOf(ks []v1.AlertKind) []string {
	out := []string{}
	for _, k := range ks {
		out = append(out, alertKindNames[k])
	}
	return out
}

// checkChannels makes sure every id names a channel of the caller's organization.
func checkChannels(ctx context.Context, c *change.Tx, ids []string) error {
	for i, id := range ids {
		if _, err := c.Q.ChannelGet(ctx, c.DB, dbsqlc.ChannelGetParams{OrgID: c.OrgID, ID: id}); err != nil {
			return notFoundOr(err, "channel_ids[%d]: channel %s not found", i, id)
		}
	}
	return nil
}

func routeEvent(r dbsqlc.AlertRoute, typ, summary string) events.Event {
	return events.Event{Domain: events.DomainAlerts, Type: typ, Entity: entity("alert_route", r.ID), Summary: summary}
}

func (s *alertService) CreateRoute(ctx context.Context, req *connect.Request[v1.CreateRouteRequest]) (*connect.Response[v1.CreateRouteResponse], error) {
	m := req.Msg
	sev := alertSeverityNames[m.MinSeverity]
	if sev == "" {
		sev = alerts.SeverityInfo
	}
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.CreateRouteResponse, error) {
		if err := checkChannels(ctx, c, m.ChannelIds); err != nil {
			return nil, err
		}
		r, err := c.Q.RouteCreate(ctx, c.DB, dbsqlc.RouteCreateParams{OrgID: c.OrgID, ID: ids.New(ids.Route), Name: m.Name,
			Kinds: kindsOf(m.Kinds), MinSeverity: sev, ChannelIds: m.ChannelIds, Enabled: true})
		if err != nil {
			return nil, err
		}
		out := routeProto(r)
		err = c.Record(ctx, "alert_route.create", nil, out, routeEvent(r, "alert_route_created", "Alert route created: "+describeRoute(r)))
		return &v1.CreateRouteResponse{Route: out}, err
	})
}

func describeRoute(r dbsqlc.AlertRoute) string {
	kinds := "every alert"
	if len(r.Kinds) > 0 {
		kinds = strings.Join(r.Kinds, ", ") + " alerts"
	}
	return kinds + " of severity " + r.MinSeverity + " or higher to " + strings.Join(r.ChannelIds, ", ")
}

func (s *alertService) ListRoutes(ctx context.Context, req *connect.Request[v1.ListRoutesRequest]) (*connect.Response[v1.ListRoutesResponse], error) {
	cur, err := decodeCursor(req.Msg.PageToken)
	if err != nil {
		return nil, err
	}
	size := pageSize(req.Msg.PageSize)
	rows, err := q.RouteList(ctx, s.pool, dbsqlc.RouteListParams{OrgID: principal(ctx).OrgID, AfterID: cur.ID, Max: size + 1})
	if err != nil {
		return nil, err
	}
	rows, more := page(rows, size)
	out := &v1.ListRoutesResponse{}
	for _, r := range rows {
		out.Routes = append(out.Routes, routeProto(r))
	}
	if more {
		out.NextPageToken = encodeCursor(cursor{ID: rows[len(rows)-1].ID})
	}
	return connect.NewResponse(out), nil
}

func (s *alertService) UpdateRoute(ctx context.Context, req *connect.Request[v1.UpdateRouteRequest]) (*connect.Response[v1.UpdateRouteResponse], error) {
	m := req.Msg
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.UpdateRouteResponse, error) {
		before, err := c.Q.RouteGetForUpdate(ctx, c.DB, dbsqlc.RouteGetForUpdateParams{OrgID: c.OrgID, ID: m.Id})
		if err != nil {
			return nil, notFoundOr(err, "route %s not found", m.Id)
		}
		p := dbsqlc.RouteUpdateParams{OrgID: c.OrgID, ID: m.Id, Name: m.Name, Enabled: m.Enabled}
		if m.SetKinds {
			p.Kinds = kindsOf(m.Kinds)
		}
		if m.MinSeverity != nil {
			sev := alertSeverityNames[*m.MinSeverity]
			p.MinSeverity = &sev
		}
		if m.SetChannelIds {
			if len(m.ChannelIds) == 0 {
				return nil, invalidField("channel_ids", "channel_ids.min_items", "a route needs at least one channel")
			}
			if err := checkChannels(ctx, c, m.ChannelIds); err != nil {
				return nil, err
			}
			p.ChannelIds = m.ChannelIds
		}
		after, err := c.Q.RouteUpdate(ctx, c.DB, p)
		if err != nil {
			return nil, err
		}
		out := routeProto(after)
		err = c.Record(ctx, "alert_route.update", routeProto(before), out, routeEvent(after, "alert_route_updated", "Alert route updated: "+describeRoute(after)))
		return &v1.UpdateRouteResponse{Route: out}, err
	})
}

func (s *alertService) DeleteRoute(ctx context.Context, req *connect.Request[v1.DeleteRouteRequest]) (*connect.Response[v1.DeleteRouteResponse], error) {
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.DeleteRouteResponse, error) {
		before, err := c.Q.RouteDelete(ctx, c.DB, dbsqlc.RouteDeleteParams{OrgID: c.OrgID, ID: req.Msg.Id})
		if err != nil {
			return nil, notFoundOr(err, "route %s not found", req.Msg.Id)
		}
		err = c.Record(ctx, "alert_route.delete", routeProto(before), nil, routeEvent(before, "alert_route_deleted", "Alert route deleted: "+describeRoute(before)))
		return &v1.DeleteRouteResponse{}, err
	})
}

func (s *alertService) ListAlerts(ctx context.Context, req *connect.Request[v1.ListAlertsRequest]) (*connect.Response[v1.ListAlertsResponse], error) {
	m := req.Msg
	cur, err := decodeCursor(m.PageToken)
	if err != nil {
		return nil, err
	}
	size := pageSize(m.PageSize)
	sevs := []string{}
	for _, x := range m.Severities {
		sevs = append(sevs, alertSeverityNames[x])
	}
	rows, err := q.AlertList(ctx, s.pool, dbsqlc.AlertListParams{OrgID: principal(ctx).OrgID, Kinds: kindsOf(m.Kinds), Severities: sevs,
		EntityType: m.GetEntity().GetType(), EntityID: m.GetEntity().GetId(), BeforeID: cur.ID, Max: size + 1})
	if err != nil {
		return nil, err
	}
	rows, more := page(rows, size)
	out := &v1.ListAlertsResponse{}
	for _, a := range rows {
		out.Alerts = append(out.Alerts, alertProto(a))
	}
	if more {
		out.NextPageToken = encodeCursor(cursor{ID: rows[len(rows)-1].ID})
	}
	return connect.NewResponse(out), nil
}

func (s *alertService) alertDeliveries(ctx context.Context, conn dbsqlc.DBTX, alertID string) ([]*v1.Delivery, error) {
	rows, err := q.DeliveriesOfAlert(ctx, conn, dbsqlc.DeliveriesOfAlertParams{OrgID: principal(ctx).OrgID, AlertID: alertID})
	if err != nil {
		return nil, err
	}
	ds, types := make([]dbsqlc.AlertDelivery, len(rows)), make([]string, len(rows))
	for i, r := range rows {
		ds[i], types[i] = deliveryOfAlertRow(r), r.ChannelType
	}
	return s.deliveriesProto(ctx, conn, ds, types)
}

func (s *alertService) GetAlert(ctx context.Context, req *connect.Request[v1.GetAlertRequest]) (*connect.Response[v1.GetAlertResponse], error) {
	a, err := q.AlertGet(ctx, s.pool, dbsqlc.AlertGetParams{OrgID: principal(ctx).OrgID, ID: req.Msg.Id})
	if err != nil {
		return nil, notFoundOr(err, "alert %s not found", req.Msg.Id)
	}
	dels, err := s.alertDeliveries(ctx, s.pool, a.ID)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.GetAlertResponse{Alert: alertProto(a), Deliveries: dels}), nil
}

func (s *alertService) ListDeliveries(ctx context.Context, req *connect.Request[v1.ListDeliveriesRequest]) (*connect.Response[v1.ListDeliveriesResponse], error) {
	m := req.Msg
	cur, err := decodeCursor(m.PageToken)
	if err != nil {
		return nil, err
	}
	size := pageSize(m.PageSize)
	statuses := []string{}
	for _, x := range m.Statuses {
		statuses = append(statuses, deliveryStatusNames[x])
	}
	rows, err := q.DeliveryList(ctx, s.pool, dbsqlc.DeliveryListParams{OrgID: principal(ctx).OrgID, AlertID: m.AlertId,
		ChannelID: m.ChannelId, Statuses: statuses, BeforeID: cur.ID, Max: size + 1})
	if err != nil {
		return nil, err
	}
	rows, more := page(rows, size)
	ds, types := make([]dbsqlc.AlertDelivery, len(rows)), make([]string, len(rows))
	for i, r := range rows {
		ds[i], types[i] = deliveryOfListRow(r), r.ChannelType
	}
	out := &v1.ListDeliveriesResponse{}
	if out.Deliveries, err = s.deliveriesProto(ctx, s.pool, ds, types); err != nil {
		return nil, err
	}
	if more {
		out.NextPageToken = encodeCursor(cursor{ID: rows[len(rows)-1].ID})
	}
	return connect.NewResponse(out), nil
}

func (s *alertService) RedeliverAlert(ctx context.Context, req *connect.Request[v1.RedeliverAlertRequest]) (*connect.Response[v1.RedeliverAlertResponse], error) {
	m := req.Msg
	resp, err := mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.RedeliverAlertResponse, error) {
		before, err := s.alertDeliveries(ctx, c.DB, m.AlertId)
		if err != nil {
			return nil, err
		}
		redone, err := alerts.Redeliver(ctx, c.DB, c.OrgID, m.AlertId, m.ChannelId)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return nil, notFound("alert %s not found", m.AlertId)
		case errors.Is(err, alerts.ErrNothingToRedeliver), errors.Is(err, alerts.ErrChannelDisabled):
			return nil, failedPrecondition("%v", err)
		case err != nil:
			return nil, err
		}
		after, err := s.alertDeliveries(ctx, c.DB, m.AlertId)
		if err != nil {
			return nil, err
		}
		out := &v1.RedeliverAlertResponse{}
		for _, d := range after {
			for _, r := range redone {
				if r.ID == d.Id {
					out.Deliveries = append(out.Deliveries, d)
				}
			}
		}
		var beforeView []*v1.Delivery
		for _, d := range before {
			for _, r := range redone {
				if r.ID == d.Id {
					beforeView = append(beforeView, d)
				}
			}
		}
		err = c.Record(ctx, "alert.redeliver", &v1.RedeliverAlertResponse{Deliveries: beforeView}, out, events.Event{
			Domain: events.DomainAlerts, Type: "alert_redelivery_requested", Entity: entity("alert", m.AlertId),
			Summary: "Redelivery of alert " + m.AlertId + " requested (" + itoa(int64(len(redone))) + " deliveries)",
		})
		return out, err
	})
	s.wakeRelay()
	return resp, err
}

func notificationProto(n dbsqlc.Notification, readAt *time.Time) *v1.Notification {
	out := &v1.Notification{Id: n.ID, AlertId: n.AlertID, Kind: alertKindEnums[n.Kind], Severity: alertSeverityEnums[n.Severity],
		Title: n.Title, Body: n.Body, CreateTime: ts(n.CreatedAt), Read: readAt != nil, ReadTime: tsp(readAt), Sequence: n.Seq}
	if n.EntityID != "" {
		out.Entity = &v1.EntityRef{Type: n.EntityType, Id: n.EntityID}
	}
	return out
}

// reader is the user whose read state notifications show.
func reader(ctx context.Context) (string, error) {
	p := principal(ctx)
	if p.UserID == "" {
		return "", permissionDenied("notifications are read by users; this key belongs to no user")
	}
	return p.UserID, nil
}

func (s *alertService) ListNotifications(ctx context.Context, req *connect.Request[v1.ListNotificationsRequest]) (*connect.Response[v1.ListNotificationsResponse], error) {
	user, err := reader(ctx)
	if err != nil {
		return nil, err
	}
	cur, err := decodeCursor(req.Msg.PageToken)
	if err != nil {
		return nil, err
	}
	before := cur.Seq
	if req.Msg.PageToken == "" {
		before = 1 << 62
	}
	org := principal(ctx).OrgID
	size := pageSize(req.Msg.PageSize)
	rows, err := q.NotificationList(ctx, s.pool, dbsqlc.NotificationListParams{OrgID: org, UserID: user, UnreadOnly: req.Msg.UnreadOnly,
		BeforeSeq: before, Max: size + 1})
	if err != nil {
		return nil, err
	}
	rows, more := page(rows, size)
	out := &v1.ListNotificationsResponse{}
	for _, r := range rows {
		out.Notifications = append(out.Notifications, notificationProto(notificationOfList(r), r.ReadAt))
	}
	if more {
		out.NextPageToken = encodeCursor(cursor{Seq: rows[len(rows)-1].Seq})
	}
	if out.UnreadCount, err = q.NotificationUnreadCount(ctx, s.pool, dbsqlc.NotificationUnreadCountParams{OrgID: org, UserID: user}); err != nil {
		return nil, err
	}
	return connect.NewResponse(out), nil
}

func notificationOfList(r dbsqlc.NotificationListRow) dbsqlc.Notification {
	return dbsqlc.Notification{OrgID: r.OrgID, ID: r.ID, Seq: r.Seq, AlertID: r.AlertID, Kind: r.Kind, Severity: r.Severity,
		Title: r.Title, Body: r.Body, EntityType: r.EntityType, EntityID: r.EntityID, CreatedAt: r.CreatedAt}
}

func notificationOfAfter(r dbsqlc.NotificationsAfterRow) dbsqlc.Notification {
	return dbsqlc.Notification{OrgID: r.OrgID, ID: r.ID, Seq: r.Seq, AlertID: r.AlertID, Kind: r.Kind, Severity: r.Severity,
		Title: r.Title, Body: r.Body, EntityType: r.EntityType, EntityID: r.EntityID, CreatedAt: r.CreatedAt}
}

// MarkNotificationRead changes only the caller's own read state: it is not a governance
// change, so it is not on the audit ledger.
func (s *alertService) MarkNotificationRead(ctx context.Context, req *connect.Request[v1.MarkNotificationReadRequest]) (*connect.Response[v1.MarkNotificationReadResponse], error) {
	user, err := reader(ctx)
	if err != nil {
		return nil, err
	}
	m := req.Msg
	if !m.All && len(m.Ids) == 0 {
		return nil, invalidField("ids", "ids.required", "name notifications, or set all")
	}
	org := principal(ctx).OrgID
	var n int64
	if m.All {
		n, err = q.NotificationMarkAllRead(ctx, s.pool, dbsqlc.NotificationMarkAllReadParams{OrgID: org, UserID: user})
	} else {
		n, err = q.NotificationMarkRead(ctx, s.pool, dbsqlc.NotificationMarkReadParams{OrgID: org, UserID: user, Ids: m.Ids})
	}
	if err != nil {
		return nil, err
	}
	unread, err := q.NotificationUnreadCount(ctx, s.pool, dbsqlc.NotificationUnreadCountParams{OrgID: org, UserID: user})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.MarkNotificationReadResponse{Marked: n, UnreadCount: unread}), nil
}

// notificationLookback is how far behind the newest sent sequence a wake-up looks, for
// notifications that committed after later-numbered ones.
const notificationLookback = 200

func (s *alertService) WatchNotifications(ctx context.Context, req *connect.Request[v1.WatchNotificationsRequest], stream *connect.ServerStream[v1.WatchNotificationsResponse]) error {
	user, err := reader(ctx)
	if err != nil {
		return err
	}
	org := principal(ctx).OrgID
	sub := s.hub.Subscribe(org)
	defer sub.Close()

	sent := map[int64]bool{}
	var highest int64
	send := func(n dbsqlc.Notification, readAt *time.Time) error {
		if sent[n.Seq] {
			return nil
		}
		sent[n.Seq] = true
		highest = max(highest, n.Seq)
		if len(sent) > 4*notificationLookback {
			for seq := range sent {
				if seq < highest-2*notificationLookback {
					delete(sent, seq)
				}
			}
		}
		return stream.Send(&v1.WatchNotificationsResponse{Notification: notificationProto(n, readAt)})
	}
	// live: notifications that existed when the stream started are not news (unless the
	// request asks for them), but ones committing later with a lower sequence are.
	existed := map[int64]bool{}
	catchUp := func(after int64, unreadOnly, live bool) error {
		for {
			rows, err := q.NotificationsAfter(ctx, s.pool, dbsqlc.NotificationsAfterParams{OrgID: org, UserID: user, AfterSeq: after, Max: 500})
			if err != nil {
				return err
			}
			for _, r := range rows {
				skip := (unreadOnly && r.ReadAt != nil) || (live && existed[r.Seq])
				if !skip {
					if err := send(notificationOfAfter(r), r.ReadAt); err != nil {
						return err
					}
				}
				after = r.Seq
			}
			if len(rows) < 500 {
				return nil
			}
		}
	}
	start, err := q.NotificationMaxSeq(ctx, s.pool, org)
	if err != nil {
		return err
	}
	recent, err := q.NotificationsAfter(ctx, s.pool, dbsqlc.NotificationsAfterParams{OrgID: org, UserID: user, AfterSeq: start - notificationLookback, Max: notificationLookback})
	if err != nil {
		return err
	}
	for _, r := range recent {
		existed[r.Seq] = true
	}
	switch {
	case req.Msg.AfterSequence > 0:
		if err := catchUp(req.Msg.AfterSequence, false, false); err != nil {
			return err
		}
	case req.Msg.IncludeUnread:
		if err := catchUp(0, true, false); err != nil {
			return err
		}
	}
	highest = max(highest, start)
	wake := func() error {
		return catchUp(max(highest-notificationLookback, req.Msg.AfterSequence), false, true)
	}
	// Tell the client the stream is live.
	if err := stream.Conn().Send(nil); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.stopping:
			return nil
		case e := <-sub.C:
			if e.Domain != events.DomainAlerts || e.Type != "notification_created" {
				continue
			}
			if err := wake(); err != nil {
				return err
			}
		case <-sub.Resync:
			if err := wake(); err != nil {
				return err
			}
		}
	}
}
