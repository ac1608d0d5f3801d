// Package events writes domain events, the cross-domain timeline, and delivers new ones
// to live watchers.
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/actor"
	"github.com/governor-hq/governor/internal/audit"
	"github.com/governor-hq/governor/internal/ids"
)

// Domains.
const (
	DomainAccounts  = "accounts"
	DomainKeys      = "keys"
	DomainRuns      = "runs"
	DomainLimits    = "limits"
	DomainIncidents = "incidents"
	DomainPolicies  = "policies"
	DomainAnomalies = "anomalies"
	DomainAlerts    = "alerts"
)

// Ref names an object of any domain.
type Ref struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// Event is one thing that happened.
type Event struct {
	OrgID         string
	Domain        string
	Type          string // e.g. "run_admitted", "api_key_frozen"
	Entity        Ref
	Related       []Ref
	CorrelationID string
	Summary       string
	Data          any // a proto message, a JSON-marshalable value or nil
	Actor         actor.Actor
}

// Written is what the database assigned to an event.
type Written struct {
	ID   string
	Seq  int64
	Time time.Time
}

// Emit writes e in the transaction of the change it describes. Watchers hear of it when
// that transaction commits.
func Emit(ctx context.Context, tx dbsqlc.DBTX, e Event) (Written, error) {
	data, err := audit.ToJSON(e.Data)
	if err != nil {
		return Written{}, fmt.Errorf("event data: %w", err)
	}
	if data == nil {
		data = json.RawMessage(`{}`)
	}
	related := e.Related
	if related == nil {
		related = []Ref{}
	}
	rel, err := json.Marshal(related)
	if err != nil {
		return Written{}, err
	}
	id := ids.New(ids.Event)
	row, err := dbsqlc.New().EventInsert(ctx, tx, dbsqlc.EventInsertParams{
		ID:            id,
		OrgID:         e.OrgID,
		Domain:        e.Domain,
		Type:          e.Type,
		EntityType:    e.Entity.Type,
		EntityID:      e.Entity.ID,
		Related:       rel,
		CorrelationID: e.CorrelationID,
		Summary:       e.Summary,
		Data:          data,
		ActorKind:     e.Actor.Kind,
		ActorApiKeyID: e.Actor.APIKeyID,
		ActorUserID:   e.Actor.UserID,
		ActorSystem:   e.Actor.System,
	})
	if err != nil {
		return Written{}, fmt.Errorf("write event %s: %w", e.Type, err)
	}
	return Written{ID: id, Seq: row.Seq, Time: row.OccurredAt}, nil
}
