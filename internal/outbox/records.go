package outbox

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/lifecycle"
	"github.com/governor-hq/governor/internal/systemrecords"
)

// recordStart writes the system record of a workflow this relay started. Keyed by the
// outbox row, so a row delivered twice (its deletion failed) is recorded once; a failure
// to record is logged, never redelivered for.
func (r *Relay) recordStart(ctx context.Context, row dbsqlc.WorkflowOutbox) {
	if row.Kind != "start" {
		return
	}
	rec := systemrecords.Record{
		OrgID: row.OrgID, Kind: systemrecords.KindWorkflowStarted, WorkflowID: row.WorkflowID,
		Message: fmt.Sprintf("Workflow %s (%s) started, %s after it was owed", row.WorkflowID, row.WorkflowType,
			time.Since(row.CreatedAt).Round(time.Millisecond)),
		Data: map[string]any{"workflow_type": row.WorkflowType, "attempts": row.Attempts, "owed_at": row.CreatedAt.UTC()},
		Key:  fmt.Sprintf("outbox/%d/started", row.ID),
	}
	switch row.WorkflowType {
	case lifecycle.RunWorkflowType:
		rec.RunID = strings.TrimPrefix(row.WorkflowID, lifecycle.RunWorkflowID(""))
	case lifecycle.AlertDeliveryWorkflowType:
		rec.AlertID, _, _ = strings.Cut(strings.TrimPrefix(row.WorkflowID, "alert/"), "/")
	}
	if err := systemrecords.Write(ctx, r.pool, rec); err != nil {
		r.log.Warn("workflow started but its system record was not written", "workflow_id", row.WorkflowID, "err", err)
	}
}

// noticeLag records, per organization, that claimed rows waited longer than LagAfter:
// workflow starts and signals owed by committed decisions are late (Temporal unreachable,
// no relay running, or a backlog). At most once per LagEvery per relay.
func (r *Relay) noticeLag(ctx context.Context, rows []dbsqlc.WorkflowOutbox, now time.Time) {
	if r.LagAfter <= 0 || now.Sub(r.lagNoted) < r.LagEvery {
		return
	}
	type lag struct {
		rows     int
		oldest   time.Time
		workflow string
	}
	byOrg := map[string]*lag{}
	var orgs []string
	for _, row := range rows {
		if now.Sub(row.CreatedAt) < r.LagAfter {
			continue
		}
		l := byOrg[row.OrgID]
		if l == nil {
			l = &lag{oldest: row.CreatedAt, workflow: row.WorkflowID}
			byOrg[row.OrgID] = l
			orgs = append(orgs, row.OrgID)
		}
		l.rows++
		if row.CreatedAt.Before(l.oldest) {
			l.oldest, l.workflow = row.CreatedAt, row.WorkflowID
		}
	}
	if len(orgs) == 0 {
		return
	}
	r.lagNoted = now
	for _, org := range orgs {
		l := byOrg[org]
		age := now.Sub(l.oldest).Round(time.Second)
		err := systemrecords.Write(ctx, r.pool, systemrecords.Record{
			OrgID: org, Kind: systemrecords.KindOutboxRelayLag, Severity: systemrecords.Warning, WorkflowID: l.workflow,
			Message: fmt.Sprintf("The outbox relay is behind: %d workflow starts or signals waited more than %s, the oldest %s (%s)",
				l.rows, r.LagAfter, age, l.workflow),
			Data: map[string]any{"rows": l.rows, "oldest_age_ms": age.Milliseconds(), "threshold_ms": r.LagAfter.Milliseconds()},
		})
		if err != nil {
			r.log.Warn("outbox relay lag not recorded", "org", org, "err", err)
		}
	}
	r.log.Warn("outbox relay is behind", "organizations", len(orgs), "threshold", r.LagAfter)
}
