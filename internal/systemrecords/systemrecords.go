// Package systemrecords is the log of what Governor's machinery did: a workflow started, a
// settlement retried or dead-lettered, an anomaly batch ran, a scheduled batch was
// skipped, a delivery attempt failed, a channel was disabled, the outbox relay fell
// behind, a retention pass ran. Each record is written by the code that did the thing (in
// its transaction where it has one), linked to the run, incident or alert it concerns,
// never reconstructed afterwards.
package systemrecords

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/ids"
)

// Kinds of record.
const (
	KindWorkflowStarted        = "workflow_started"
	KindSettlementRetried      = "settlement_retried"
	KindSettlementDeadLettered = "settlement_dead_lettered"
	KindAnomalyBatchRan        = "anomaly_batch_ran"
	KindAnomalyBatchFailed     = "anomaly_batch_failed"
	KindScheduleSkipped        = "schedule_skipped"
	KindDeliveryAttemptFailed  = "delivery_attempt_failed"
	KindChannelDisabled        = "channel_disabled"
	KindOutboxRelayLag         = "outbox_relay_lag"
	KindRetentionPass          = "retention_pass"
)

// Severities.
const (
	Info    = "info"
	Warning = "warning"
	Error   = "error"
)

// Record is one thing the machinery did.
type Record struct {
	// OrgID is the organization it concerns; empty for what concerns none (a retention
	// pass): such records are for operators and no tenant lists them.
	OrgID    string
	Kind     string
	Severity string
	Message  string
	// What it is about, where that applies.
	RunID      string
	IncidentID string
	AlertID    string
	WorkflowID string
	// Data is kind-specific detail, a JSON object.
	Data map[string]any
	// Key, when set, makes the write idempotent: a second record with the same key (a
	// retried activity, a redelivered outbox row) is not written.
	Key string
}

const maxMessage = 2000

// Write records r on db (a transaction, to commit with the change it describes, or the
// pool).
func Write(ctx context.Context, db dbsqlc.DBTX, r Record) error {
	if r.Kind == "" || r.Message == "" {
		return errors.New("system record without kind or message")
	}
	switch r.Severity {
	case Info, Warning, Error:
	case "":
		r.Severity = Info
	default:
		return fmt.Errorf("system record severity %q", r.Severity)
	}
	data := []byte("{}")
	if len(r.Data) > 0 {
		var err error
		if data, err = json.Marshal(r.Data); err != nil {
			return fmt.Errorf("system record data: %w", err)
		}
	}
	id := ids.New(ids.SystemRecord)
	if r.Key != "" {
		id = ids.FromKey(ids.SystemRecord, r.Key)
	}
	var org *string
	if r.OrgID != "" {
		org = &r.OrgID
	}
	err := dbsqlc.New().SystemRecordInsert(ctx, db, dbsqlc.SystemRecordInsertParams{
		ID: id, OrgID: org, Kind: r.Kind, Severity: r.Severity, Message: clip(r.Message, maxMessage),
		RunID: r.RunID, IncidentID: r.IncidentID, AlertID: r.AlertID, WorkflowID: r.WorkflowID, Data: data,
	})
	if err != nil {
		return fmt.Errorf("write system record %s: %w", r.Kind, err)
	}
	return nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// Stored is a record as read back.
type Stored struct {
	Seq        int64
	ID         string
	OrgID      string
	OccurredAt time.Time
	Kind       string
	Severity   string
	Message    string
	RunID      string
	IncidentID string
	AlertID    string
	WorkflowID string
	Data       json.RawMessage
}

// FromRow converts a stored row.
func FromRow(r dbsqlc.SystemRecord) Stored {
	org := ""
	if r.OrgID != nil {
		org = *r.OrgID
	}
	return Stored{Seq: r.Seq, ID: r.ID, OrgID: org, OccurredAt: r.OccurredAt, Kind: r.Kind, Severity: r.Severity,
		Message: r.Message, RunID: r.RunID, IncidentID: r.IncidentID, AlertID: r.AlertID, WorkflowID: r.WorkflowID, Data: r.Data}
}

// Filter selects an organization's records; empty fields match everything.
type Filter struct {
	Kinds      []string
	Severities []string
	RunID      string
	IncidentID string
	AlertID    string
	Start, End *time.Time
}

// Position is where a page ends: (occurred_at, seq).
type Position struct {
	Time time.Time
	Seq  int64
}

// List returns up to max records of org after pos (before it, newest first), and whether
// more follow. A nil pos starts at the beginning (or the end).
func List(ctx context.Context, db dbsqlc.DBTX, org string, f Filter, newestFirst bool, pos *Position, max int32) ([]Stored, bool, error) {
	q := dbsqlc.New()
	kinds, sevs := nonNil(f.Kinds), nonNil(f.Severities)
	var rows []dbsqlc.SystemRecord
	var err error
	if newestFirst {
		p := Position{Time: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), Seq: 1<<63 - 1}
		if pos != nil {
			p = *pos
		}
		rows, err = q.SystemRecordListDesc(ctx, db, dbsqlc.SystemRecordListDescParams{OrgID: &org, Kinds: kinds, Severities: sevs,
			RunID: f.RunID, IncidentID: f.IncidentID, AlertID: f.AlertID, StartTime: f.Start, EndTime: f.End,
			BeforeTime: p.Time, BeforeSeq: p.Seq, Max: max + 1})
	} else {
		p := Position{Time: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)}
		if pos != nil {
			p = *pos
		}
		rows, err = q.SystemRecordListAsc(ctx, db, dbsqlc.SystemRecordListAscParams{OrgID: &org, Kinds: kinds, Severities: sevs,
			RunID: f.RunID, IncidentID: f.IncidentID, AlertID: f.AlertID, StartTime: f.Start, EndTime: f.End,
			AfterTime: p.Time, AfterSeq: p.Seq, Max: max + 1})
	}
	if err != nil {
		return nil, false, err
	}
	more := int32(len(rows)) > max
	if more {
		rows = rows[:max]
	}
	out := make([]Stored, len(rows))
	for i, r := range rows {
		out[i] = FromRow(r)
	}
	return out, more, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
