package alerts

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/ids"
)

// Channel defaults: retry from 5 s, doubling up to an hour, for three days (past the one
// day the specification asks for: a receiver down over a weekend still gets everything);
// disable after five days of failures.
const (
	DefaultRetryInitial     = 5 * time.Second
	DefaultRetryMaxInterval = time.Hour
	DefaultRetryMaxAge      = 72 * time.Hour
	DefaultDisableAfter     = 5 * 24 * time.Hour
	// DefaultPreviousSecretValidity is how long a rotated-out secret keeps signing.
	DefaultPreviousSecretValidity = 24 * time.Hour
)

var (
	// ErrNothingToRedeliver: the alert has no failed delivery (to that channel).
	ErrNothingToRedeliver = errors.New("no failed delivery to redeliver")
	// ErrChannelDisabled: the channel must be enabled first.
	ErrChannelDisabled = errors.New("the channel is disabled: enable it first")
)

// Redeliver gives the failed deliveries of an alert (to one channel, or all) a new retry
// period and wakes their workflows. Each keeps its message id, so a receiver that did get
// an earlier attempt can tell.
func Redeliver(ctx context.Context, tx pgx.Tx, orgID, alertID, channelID string) ([]dbsqlc.AlertDelivery, error) {
	q := dbsqlc.New()
	a, err := q.AlertGet(ctx, tx, dbsqlc.AlertGetParams{OrgID: orgID, ID: alertID})
	if err != nil {
		return nil, err
	}
	dels, err := q.DeliveriesOfAlert(ctx, tx, dbsqlc.DeliveriesOfAlertParams{OrgID: orgID, AlertID: alertID})
	if err != nil {
		return nil, err
	}
	var out []dbsqlc.AlertDelivery
	for _, d := range dels {
		if d.Status != StatusFailed || (channelID != "" && d.ChannelID != channelID) {
			continue
		}
		ch, err := q.ChannelGetByID(ctx, tx, d.ChannelID)
		if err != nil {
			return nil, err
		}
		if !ch.Enabled || ch.DeletedAt != nil {
			return nil, fmt.Errorf("%w (%s)", ErrChannelDisabled, ch.ID)
		}
		nd, err := q.DeliveryRedeliver(ctx, tx, dbsqlc.DeliveryRedeliverParams{
			OrgID: orgID, ID: d.ID, RetryUntil: time.Now().Add(ms(ch.RetryMaxAgeMs)),
		})
		if err != nil {
			return nil, err
		}
		if nd.WorkflowID == "" {
			nd.WorkflowID = d.WorkflowID
		}
		if err := startDelivery(ctx, tx, a, ch, nd, time.Time{}, "signal_with_start"); err != nil {
			return nil, err
		}
		out = append(out, nd)
	}
	if len(out) == 0 {
		return nil, ErrNothingToRedeliver
	}
	return out, nil
}

// SendTest raises a test alert delivered to one channel only.
func SendTest(ctx context.Context, tx pgx.Tx, orgID, channelID, by string) (dbsqlc.Alert, dbsqlc.AlertDelivery, error) {
	q := dbsqlc.New()
	ch, err := q.ChannelGet(ctx, tx, dbsqlc.ChannelGetParams{OrgID: orgID, ID: channelID})
	if err != nil {
		return dbsqlc.Alert{}, dbsqlc.AlertDelivery{}, err
	}
	if !ch.Enabled {
		return dbsqlc.Alert{}, dbsqlc.AlertDelivery{}, ErrChannelDisabled
	}
	a, _, err := raise(ctx, tx, Trigger{
		OrgID: orgID, Kind: KindTest, Severity: SeverityInfo, DedupeKey: "test/" + ch.ID + "/" + ids.New(ids.Alert),
		Title: "Test alert for channel " + ch.Name, Body: "Sent by " + by + " with TestChannel. Nothing is wrong.",
		Entity: events.Ref{Type: "channel", ID: ch.ID},
	}, routing{only: ch.ID})
	if err != nil {
		return a, dbsqlc.AlertDelivery{}, err
	}
	dels, err := q.DeliveriesOfAlert(ctx, tx, dbsqlc.DeliveriesOfAlertParams{OrgID: orgID, AlertID: a.ID})
	if err != nil || len(dels) == 0 {
		return a, dbsqlc.AlertDelivery{}, err
	}
	d := dels[0]
	return a, dbsqlc.AlertDelivery{OrgID: d.OrgID, ID: d.ID, AlertID: d.AlertID, ChannelID: d.ChannelID, Status: d.Status,
		DigestAlertID: d.DigestAlertID, WorkflowID: d.WorkflowID, Attempts: d.Attempts, RetryUntil: d.RetryUntil,
		NextAttemptAt: d.NextAttemptAt, LastAttemptAt: d.LastAttemptAt, LastStatusCode: d.LastStatusCode, LastError: d.LastError,
		DeliveredAt: d.DeliveredAt, FailedAt: d.FailedAt, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
		LastClassification: d.LastClassification}, nil
}
