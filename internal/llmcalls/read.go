package llmcalls

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/governor-hq/governor/db/dbsqlc"
)

// ErrNotFound: no such incident (or run) in the organization.
var ErrNotFound = errors.New("not found")

// Stored is a recorded call.
type Stored struct {
	ID, CallID, RunID                string
	ProjectID, AgentID, APIKeyID     string
	Model, Provider, Operation       string
	Feature                          string
	Input, Output                    int64
	CacheRead, CacheWrite, Reasoning int64
	CostMicros                       int64
	CostSource                       string
	LatencyMs                        *int64
	Status, ErrorType                string
	StartedAt, RecordedAt            time.Time
	Late                             bool
	Source                           string
	TraceID, SpanID                  string
	Attributes                       map[string]string
}

// FromRow converts a stored row.
func FromRow(r dbsqlc.LlmCall) Stored {
	s := Stored{ID: r.ID, CallID: r.CallID, RunID: deref(r.RunID), ProjectID: r.ProjectID, AgentID: r.AgentID, APIKeyID: r.ApiKeyID,
		Model: r.Model, Provider: r.Provider, Operation: r.Operation, Feature: r.Feature, Input: r.InputTokens, Output: r.OutputTokens,
		CacheRead: r.CacheReadTokens, CacheWrite: r.CacheWriteTokens, Reasoning: r.ReasoningTokens, CostMicros: r.CostMicros,
		CostSource: r.CostSource, LatencyMs: r.LatencyMs, Status: r.Status, ErrorType: r.ErrorType, StartedAt: r.StartedAt,
		RecordedAt: r.RecordedAt, Late: r.Late, Source: r.Source, TraceID: r.TraceID, SpanID: r.SpanID}
	if len(r.Attributes) > 2 {
		_ = json.Unmarshal(r.Attributes, &s.Attributes)
	}
	return s
}

// Filter selects an organization's calls; empty fields match everything.
type Filter struct {
	RunID, ProjectID, AgentID, APIKeyID string
	Model, Provider, Feature, Status    string
	// Calls that started in [Start, End).
	Start, End *time.Time
}

// Position is where a page ends: (started_at, id).
type Position struct {
	Time time.Time
	ID   string
}

// The first and last positions. Nothing starts at the year 9999, so (end, "") is after
// every row whatever the collation of ids.
var (
	beginning = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	end       = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
)

// List returns up to max calls of org after pos (before it when newest first), and whether
// more follow. A nil pos starts at the beginning (or the end).
func List(ctx context.Context, db dbsqlc.DBTX, org string, f Filter, newestFirst bool, pos *Position, max int32) ([]Stored, bool, error) {
	rows, err := ListRows(ctx, db, org, f, newestFirst, pos, max+1)
	if err != nil {
		return nil, false, err
	}
	return page(rows, max)
}

// ListRows is List's query without the conversion, for exports.
func ListRows(ctx context.Context, db dbsqlc.DBTX, org string, f Filter, newestFirst bool, pos *Position, max int32) ([]dbsqlc.LlmCall, error) {
	q := dbsqlc.New()
	if newestFirst {
		p := Position{Time: end}
		if pos != nil {
			p = *pos
		}
		return q.LlmCallListDesc(ctx, db, dbsqlc.LlmCallListDescParams{OrgID: org, RunID: f.RunID, ProjectID: f.ProjectID,
			AgentID: f.AgentID, ApiKeyID: f.APIKeyID, Model: f.Model, Provider: f.Provider, Feature: f.Feature, Status: f.Status,
			StartTime: f.Start, EndTime: f.End, BeforeTime: p.Time, BeforeID: p.ID, Max: max})
	}
	p := Position{Time: beginning}
	if pos != nil {
		p = *pos
	}
	return q.LlmCallListAsc(ctx, db, dbsqlc.LlmCallListAscParams{OrgID: org, RunID: f.RunID, ProjectID: f.ProjectID,
		AgentID: f.AgentID, ApiKeyID: f.APIKeyID, Model: f.Model, Provider: f.Provider, Feature: f.Feature, Status: f.Status,
		StartTime: f.Start, EndTime: f.End, AfterTime: p.Time, AfterID: p.ID, Max: max})
}

// ForIncident lists the calls of the runs attached to an incident of org.
func ForIncident(ctx context.Context, db dbsqlc.DBTX, org, incidentID string, newestFirst bool, pos *Position, max int32) ([]Stored, bool, error) {
	q := dbsqlc.New()
	if _, err := q.IncidentGet(ctx, db, dbsqlc.IncidentGetParams{OrgID: org, ID: incidentID}); errors.Is(err, pgx.ErrNoRows) {
		return nil, false, ErrNotFound
	} else if err != nil {
		return nil, false, err
	}
	var rows []dbsqlc.LlmCall
	var err error
	if newestFirst {
		p := Position{Time: end}
		if pos != nil {
			p = *pos
		}
		rows, err = q.LlmCallsOfIncidentDesc(ctx, db, dbsqlc.LlmCallsOfIncidentDescParams{OrgID: org, IncidentID: incidentID,
			BeforeTime: p.Time, BeforeID: p.ID, Max: max + 1})
	} else {
		p := Position{Time: beginning}
		if pos != nil {
			p = *pos
		}
		rows, err = q.LlmCallsOfIncidentAsc(ctx, db, dbsqlc.LlmCallsOfIncidentAscParams{OrgID: org, IncidentID: incidentID,
			AfterTime: p.Time, AfterID: p.ID, Max: max + 1})
	}
	if err != nil {
		return nil, false, err
	}
	return page(rows, max)
}

func page(rows []dbsqlc.LlmCall, max int32) ([]Stored, bool, error) {
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
