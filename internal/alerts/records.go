package alerts

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/lifecycle"
	"github.com/governor-hq/governor/internal/systemrecords"
)

// recordFailedAttempt writes the system record of a failed delivery attempt, in the
// transaction that records the attempt. The error is Governor's own one-line account,
// never the receiver's response.
func recordFailedAttempt(ctx context.Context, tx pgx.Tx, p prepared, del dbsqlc.AlertDelivery, o outcome, retry bool, next time.Time) error {
	sev, then := systemrecords.Error, "not retried"
	data := map[string]any{"channel_id": p.channel.ID, "channel_type": p.channel.Type, "delivery_id": del.ID,
		"attempt": del.Attempts, "status_code": o.statusCode, "classification": o.class, "latency_ms": o.latency.Milliseconds(),
		"will_retry": retry}
	if retry {
		sev, then = systemrecords.Warning, "next attempt at "+next.UTC().Format(time.RFC3339)
		data["next_attempt_at"] = next.UTC()
	}
	return systemrecords.Write(ctx, tx, systemrecords.Record{
		OrgID: p.alert.OrgID, Kind: systemrecords.KindDeliveryAttemptFailed, Severity: sev, AlertID: p.alert.ID,
		WorkflowID: lifecycle.AlertDeliveryWorkflowID(p.alert.ID, p.channel.ID),
		Message:    fmt.Sprintf("Attempt %d to deliver alert %s to %s (%s) failed (%s: %s); %s", del.Attempts, p.alert.ID, p.channel.Name, p.channel.Type, o.class, clip(o.err, 300), then),
		Data:       data,
	})
}

// recordDisabled writes the system record of a channel disabled after failing too long.
func recordDisabled(ctx context.Context, tx pgx.Tx, ch dbsqlc.AlertChannel, reason string) error {
	return systemrecords.Write(ctx, tx, systemrecords.Record{
		OrgID: ch.OrgID, Kind: systemrecords.KindChannelDisabled, Severity: systemrecords.Error,
		Message: fmt.Sprintf("Channel %s (%s) disabled: %s", ch.Name, ch.Type, reason),
		Data:    map[string]any{"channel_id": ch.ID, "channel_type": ch.Type, "reason": reason},
	})
}
