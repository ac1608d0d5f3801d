// Package logs reads one run's logs: its domain events, LLM calls and system records,
// merged in time order (internal/logs/runlog), one bounded page at a time.
package logs

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/llmcalls"
	"github.com/governor-hq/governor/internal/logs/runlog"
	"github.com/governor-hq/governor/internal/systemrecords"
)

// ErrNotFound: no such run in the organization.
var ErrNotFound = errors.New("run not found")

// Event is a domain event as a run's logs show it.
type Event struct {
	ID            string
	Seq           int64
	OccurredAt    time.Time
	Domain, Type  string
	EntityType    string
	EntityID      string
	Related       json.RawMessage
	CorrelationID string
	Summary       string
	Data          json.RawMessage
	ActorKind     string
	ActorAPIKeyID string
	ActorUserID   string
	ActorSystem   string
}

// Line is one entry of a run's logs: exactly one of Event, Call and Record is set.
type Line struct {
	Position runlog.Position
	Event    *Event
	Call     *llmcalls.Stored
	Record   *systemrecords.Stored
}

// RunLogs returns up to max lines of a run's logs after pos (from the start when nil),
// oldest first, and whether more follow.
func RunLogs(ctx context.Context, db dbsqlc.DBTX, org, runID string, pos *runlog.Position, max int32) ([]Line, bool, error) {
	q := dbsqlc.New()
	if _, err := q.RunGet(ctx, db, dbsqlc.RunGetParams{OrgID: org, ID: runID}); errors.Is(err, pgx.ErrNoRows) {
		return nil, false, ErrNotFound
	} else if err != nil {
		return nil, false, err
	}
	lines := map[runlog.Kind]map[string]Line{}
	logs := make([][]runlog.Position, len(runlog.Kinds))
	add := func(l Line) {
		k := l.Position.Kind
		if lines[k] == nil {
			lines[k] = map[string]Line{}
		}
		lines[k][l.Position.ID] = l
		logs[k] = append(logs[k], l.Position)
	}

	bt, bid := runlog.Bound(pos, runlog.Event)
	evs, err := q.EventsOfRunAfter(ctx, db, dbsqlc.EventsOfRunAfterParams{OrgID: org, RunID: runID, AfterTime: bt, AfterID: bid, Max: max + 1})
	if err != nil {
		return nil, false, err
	}
	for _, e := range evs {
		add(Line{Position: runlog.Position{Time: e.OccurredAt, Kind: runlog.Event, ID: e.ID}, Event: &Event{
			ID: e.ID, Seq: e.Seq, OccurredAt: e.OccurredAt, Domain: e.Domain, Type: e.Type, EntityType: e.EntityType,
			EntityID: e.EntityID, Related: e.Related, CorrelationID: e.CorrelationID, Summary: e.Summary, Data: e.Data,
			ActorKind: e.ActorKind, ActorAPIKeyID: e.ActorApiKeyID, ActorUserID: e.ActorUserID, ActorSystem: e.ActorSystem}})
	}
	bt, bid = runlog.Bound(pos, runlog.LlmCall)
	calls, err := q.LlmCallsOfRunAfter(ctx, db, dbsqlc.LlmCallsOfRunAfterParams{OrgID: org, RunID: &runID, AfterTime: bt, AfterID: bid, Max: max + 1})
	if err != nil {
		return nil, false, err
	}
	for _, c := range calls {
		s := llmcalls.FromRow(c)
		add(Line{Position: runlog.Position{Time: c.StartedAt, Kind: runlog.LlmCall, ID: c.ID}, Call: &s})
	}
	bt, bid = runlog.Bound(pos, runlog.SystemRecord)
	recs, err := q.SystemRecordsOfRunAfter(ctx, db, dbsqlc.SystemRecordsOfRunAfterParams{OrgID: &org, RunID: runID, AfterTime: bt, AfterID: bid, Max: max + 1})
	if err != nil {
		return nil, false, err
	}
	for _, r := range recs {
		s := systemrecords.FromRow(r)
		add(Line{Position: runlog.Position{Time: r.OccurredAt, Kind: runlog.SystemRecord, ID: r.ID}, Record: &s})
	}

	merged, more := runlog.Merge(logs, int(max))
	out := make([]Line, len(merged))
	for i, p := range merged {
		out[i] = lines[p.Kind][p.ID]
	}
	return out, more, nil
}
