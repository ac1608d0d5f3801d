package api

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"

	"github.com/governor-hq/governor/db"
	"github.com/governor-hq/governor/db/dbsqlc"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/change"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/incidents"
	"github.com/governor-hq/governor/internal/lifecycle"
)

type incidentService struct{ *Server }

// incidentView renders an incident with the id of its proposal.
func (s *Server) incidentView(ctx context.Context, conn dbsqlc.DBTX, i dbsqlc.Incident) (*v1.Incident, error) {
	p, err := q.ProposalForIncident(ctx, conn, i.ID)
	switch {
	case err == nil:
		return incidents.IncidentView(i, p.ID), nil
	case errors.Is(err, pgx.ErrNoRows):
		return incidents.IncidentView(i, ""), nil
	}
	return nil, err
}

func (s *incidentService) ListIncidents(ctx context.Context, req *connect.Request[v1.ListIncidentsRequest]) (*connect.Response[v1.ListIncidentsResponse], error) {
	m := req.Msg
	cur, err := decodeCursor(m.PageToken)
	if err != nil {
		return nil, err
	}
	size := pageSize(m.PageSize)
	statuses, severities, categories := []string{}, []string{}, []string{}
	for _, x := range m.Statuses {
		statuses = append(statuses, incidents.StatusName(x))
	}
	for _, x := range m.Severities {
		severities = append(severities, incidents.SeverityName(x))
	}
	for _, x := range m.Categories {
		categories = append(categories, incidents.CategoryName(x))
	}
	bt, bid := beforeCursor(cur, m.PageToken)
	rows, err := q.IncidentList(ctx, s.pool, dbsqlc.IncidentListParams{
		OrgID: principal(ctx).OrgID, Statuses: statuses, Severities: severities, Categories: categories, AgentID: m.AgentId,
		StartTime: optTime(m.StartTime), EndTime: optTime(m.EndTime), BeforeTime: bt, BeforeID: bid, Max: size + 1,
	})
	if err != nil {
		return nil, err
	}
	rows, more := page(rows, size)
	out := &v1.ListIncidentsResponse{}
	for _, i := range rows {
		v, err := s.incidentView(ctx, s.pool, i)
		if err != nil {
			return nil, err
		}
		out.Incidents = append(out.Incidents, v)
	}
	if more {
		last := rows[len(rows)-1]
		out.NextPageToken = encodeCursor(cursor{Time: last.CreatedAt.UnixMicro(), ID: last.ID})
	}
	return connect.NewResponse(out), nil
}

// beforeCursor is where a newest-first page starts: the token's position, or the end.
func beforeCursor(cur cursor, token string) (time.Time, string) {
	if token == "" {
		return time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), "~"
	}
	return time.UnixMicro(cur.Time), cur.ID
}

func (s *incidentService) get(ctx context.Context, id string) (dbsqlc.Incident, error) {
	i, err := q.IncidentGet(ctx, s.pool, dbsqlc.IncidentGetParams{OrgID: principal(ctx).OrgID, ID: id})
	if err != nil {
		return i, notFoundOr(err, "incident %s not found", id)
	}
	return i, nil
}

func (s *incidentService) GetIncident(ctx context.Context, req *connect.Request[v1.GetIncidentRequest]) (*connect.Response[v1.GetIncidentResponse], error) {
	i, err := s.get(ctx, req.Msg.Id)
	if err != nil {
		return nil, err
	}
	v, err := s.incidentView(ctx, s.pool, i)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.GetIncidentResponse{Incident: v}), nil
}

// transition acknowledges or resolves an incident: audited, on the timeline, and told to
// the incident's workflow (through the outbox, in the same transaction).
func (s *incidentService) transition(ctx context.Context, req connect.AnyRequest, id, to, note string) (*v1.Incident, error) {
	resp, err := mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.GetIncidentResponse, error) {
		before, err := c.Q.IncidentGetForUpdate(ctx, c.DB, dbsqlc.IncidentGetForUpdateParams{OrgID: c.OrgID, ID: id})
		if err != nil {
			return nil, notFoundOr(err, "incident %s not found", id)
		}
		by := c.Actor.UserID
		if by == "" {
			by = c.Actor.APIKeyID
		}
		var after dbsqlc.Incident
		switch {
		case before.Status == to, to == "acknowledged" && before.Status == "resolved":
			if before.Status == to {
				v, err := s.incidentView(ctx, c.DB, before)
				return &v1.GetIncidentResponse{Incident: v}, err
			}
			return nil, failedPrecondition("incident %s is resolved", id)
		case to == "acknowledged":
			after, err = c.Q.IncidentAcknowledge(ctx, c.DB, dbsqlc.IncidentAcknowledgeParams{ID: id, By: by})
		default:
			after, err = c.Q.IncidentResolve(ctx, c.DB, dbsqlc.IncidentResolveParams{ID: id, By: by, Note: note})
		}
		if err != nil {
			return nil, err
		}
		bv, err := s.incidentView(ctx, c.DB, before)
		if err != nil {
			return nil, err
		}
		av, err := s.incidentView(ctx, c.DB, after)
		if err != nil {
			return nil, err
		}
		verb := map[string]string{"acknowledged": "acknowledge", "resolved": "resolve"}[to]
		summary := "Incident " + id + " " + to
		if note != "" {
			summary += ": " + note
		}
		correlation := id
		if after.SourceRunID != nil {
			correlation = *after.SourceRunID
		}
		if err := c.Record(ctx, "incident."+verb, bv, av, events.Event{
			Domain: events.DomainIncidents, Type: "incident_" + to, Entity: entity("incident", id), CorrelationID: correlation, Summary: summary,
		}); err != nil {
			return nil, err
		}
		payload, _ := json.Marshal(lifecycle.IncidentInput{OrgID: after.OrgID, IncidentID: after.ID, Fingerprint: after.Fingerprint,
			AgentID: deref(after.AgentID), Severity: after.Severity})
		err = c.Q.OutboxAdd(ctx, c.DB, dbsqlc.OutboxAddParams{OrgID: after.OrgID, Kind: "signal_with_start",
			WorkflowType: lifecycle.IncidentWorkflowType, WorkflowID: lifecycle.IncidentWorkflowID(after.Fingerprint),
			SignalName: lifecycle.SignalIncidentChanged, SignalArg: after.ID, Payload: payload})
		return &v1.GetIncidentResponse{Incident: av}, err
	})
	if err != nil {
		return nil, err
	}
	s.wakeRelay()
	return resp.Msg.Incident, nil
}

func (s *incidentService) AcknowledgeIncident(ctx context.Context, req *connect.Request[v1.AcknowledgeIncidentRequest]) (*connect.Response[v1.AcknowledgeIncidentResponse], error) {
	v, err := s.transition(ctx, req, req.Msg.Id, "acknowledged", req.Msg.Note)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.AcknowledgeIncidentResponse{Incident: v}), nil
}

func (s *incidentService) ResolveIncident(ctx context.Context, req *connect.Request[v1.ResolveIncidentRequest]) (*connect.Response[v1.ResolveIncidentResponse], error) {
	v, err := s.transition(ctx, req, req.Msg.Id, "resolved", req.Msg.Note)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.ResolveIncidentResponse{Incident: v}), nil
}

func (s *incidentService) GetIncidentSourceRun(ctx context.Context, req *connect.Request[v1.GetIncidentSourceRunRequest]) (*connect.Response[v1.GetIncidentSourceRunResponse], error) {
	i, err := s.get(ctx, req.Msg.Id)
	if err != nil {
		return nil, err
	}
	out := &v1.GetIncidentSourceRunResponse{}
	if i.SourceRunID != nil {
		r, err := q.RunGet(ctx, s.pool, dbsqlc.RunGetParams{OrgID: i.OrgID, ID: *i.SourceRunID})
		if err != nil {
			return nil, db.NotFound(err)
		}
		out.Run = runProto(r)
	}
	return connect.NewResponse(out), nil
}

func (s *incidentService) ListIncidentRuns(ctx context.Context, req *connect.Request[v1.ListIncidentRunsRequest]) (*connect.Response[v1.ListIncidentRunsResponse], error) {
	i, err := s.get(ctx, req.Msg.Id)
	if err != nil {
		return nil, err
	}
	cur, err := decodeCursor(req.Msg.PageToken)
	if err != nil {
		return nil, err
	}
	size := pageSize(req.Msg.PageSize)
	bt, bid := beforeCursor(cur, req.Msg.PageToken)
	rows, err := q.IncidentRunsList(ctx, s.pool, dbsqlc.IncidentRunsListParams{IncidentID: i.ID, OrgID: i.OrgID, BeforeTime: bt, BeforeID: bid, Max: size + 1})
	if err != nil {
		return nil, err
	}
	rows, more := page(rows, size)
	out := &v1.ListIncidentRunsResponse{}
	for _, r := range rows {
		out.Runs = append(out.Runs, runProto(r))
	}
	if more {
		last := rows[len(rows)-1]
		out.NextPageToken = encodeCursor(cursor{Time: last.AdmittedAt.UnixMicro(), ID: last.ID})
	}
	return connect.NewResponse(out), nil
}

func (s *incidentService) GetIncidentCostImpact(ctx context.Context, req *connect.Request[v1.GetIncidentCostImpactRequest]) (*connect.Response[v1.GetIncidentCostImpactResponse], error) {
	i, err := s.get(ctx, req.Msg.Id)
	if err != nil {
		return nil, err
	}
	impact, err := q.IncidentCostImpact(ctx, s.pool, dbsqlc.IncidentCostImpactParams{OrgID: i.OrgID, ID: i.ID})
	if err != nil {
		return nil, err
	}
	prevented, err := q.PreventionsForIncident(ctx, s.pool, dbsqlc.PreventionsForIncidentParams{OrgID: i.OrgID, IncidentID: &i.ID})
	if err != nil {
		return nil, err
	}
	total := impact.TotalCostMicros
	if impact.RunsAffected == 0 {
		total = i.CostMicros // a breach or anomaly: the amount it was about
	}
	// A prevented run is valued at its estimate, or at what the failures cost on average.
	preventedCost := prevented.CostMicros + prevented.WithoutEstimate*impact.AvgCostMicros
	return connect.NewResponse(&v1.GetIncidentCostImpactResponse{
		TotalCostMicros: total, RunsAffected: impact.RunsAffected, RetryCostMicros: impact.RepeatCostMicros,
		RunsPrevented: prevented.Runs, PreventedCostMicros: preventedCost,
		EstimatedSavingMicros: impact.RepeatCostMicros + preventedCost, AverageRunCostMicros: impact.AvgCostMicros,
	}), nil
}

func settingsProto(s dbsqlc.IncidentSetting) *v1.IncidentSettings {
	return &v1.IncidentSettings{
		HighOccurrences: s.HighOccurrences, CriticalOccurrences: s.CriticalOccurrences, OccurrenceWindowMinutes: s.OccurrenceWindowMinutes,
		HighCostMicros: s.HighCostMicros, CriticalCostMicros: s.CriticalCostMicros, HighErrorCodes: s.HighErrorCodes,
		CriticalErrorCodes: s.CriticalErrorCodes, ProposalRemindAfterMinutes: s.ProposalRemindAfterMinutes,
		ProposalExpireAfterMinutes: s.ProposalExpireAfterMinutes, ProposalRequiredApprovals: s.ProposalRequiredApprovals,
	}
}

func (s *incidentService) settings(ctx context.Context, conn dbsqlc.DBTX, orgID string) (dbsqlc.IncidentSetting, error) {
	st, err := q.IncidentSettingsGet(ctx, conn, orgID)
	if errors.Is(err, pgx.ErrNoRows) {
		return incidents.DefaultSettings(orgID), nil
	}
	return st, err
}

func (s *incidentService) GetIncidentSettings(ctx context.Context, _ *connect.Request[v1.GetIncidentSettingsRequest]) (*connect.Response[v1.GetIncidentSettingsResponse], error) {
	st, err := s.settings(ctx, s.pool, principal(ctx).OrgID)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.GetIncidentSettingsResponse{Settings: settingsProto(st)}), nil
}

func (s *incidentService) UpdateIncidentSettings(ctx context.Context, req *connect.Request[v1.UpdateIncidentSettingsRequest]) (*connect.Response[v1.UpdateIncidentSettingsResponse], error) {
	m := req.Msg.Settings
	if m.CriticalOccurrences < m.HighOccurrences {
		return nil, invalidField("settings.critical_occurrences", "critical_occurrences.gte_high", "must be at least high_occurrences")
	}
	if m.CriticalCostMicros < m.HighCostMicros {
		return nil, invalidField("settings.critical_cost_micros", "critical_cost_micros.gte_high", "must be at least high_cost_micros")
	}
	if m.ProposalExpireAfterMinutes <= m.ProposalRemindAfterMinutes {
		return nil, invalidField("settings.proposal_expire_after_minutes", "proposal_expire_after_minutes.gt_remind", "must be later than proposal_remind_after_minutes")
	}
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.UpdateIncidentSettingsResponse, error) {
		before, err := s.settings(ctx, c.DB, c.OrgID)
		if err != nil {
			return nil, err
		}
		nonNil := func(x []string) []string {
			if x == nil {
				return []string{}
			}
			return x
		}
		after, err := c.Q.IncidentSettingsUpsert(ctx, c.DB, dbsqlc.IncidentSettingsUpsertParams{
			OrgID: c.OrgID, HighOccurrences: m.HighOccurrences, CriticalOccurrences: m.CriticalOccurrences,
			OccurrenceWindowMinutes: m.OccurrenceWindowMinutes, HighCostMicros: m.HighCostMicros, CriticalCostMicros: m.CriticalCostMicros,
			HighErrorCodes: nonNil(m.HighErrorCodes), CriticalErrorCodes: nonNil(m.CriticalErrorCodes),
			ProposalRemindAfterMinutes: m.ProposalRemindAfterMinutes, ProposalExpireAfterMinutes: m.ProposalExpireAfterMinutes,
			ProposalRequiredApprovals: m.ProposalRequiredApprovals,
		})
		if err != nil {
			return nil, err
		}
		out := settingsProto(after)
		err = c.Record(ctx, "incident_settings.update", settingsProto(before), out, events.Event{
			Domain: events.DomainIncidents, Type: "incident_settings_updated", Entity: entity("organization", c.OrgID),
			Summary: "Incident severity and proposal rules updated",
		})
		return &v1.UpdateIncidentSettingsResponse{Settings: out}, err
	})
}

func (s *runService) ListRunIncidents(ctx context.Context, req *connect.Request[v1.ListRunIncidentsRequest]) (*connect.Response[v1.ListRunIncidentsResponse], error) {
	org := principal(ctx).OrgID
	if _, err := q.RunGet(ctx, s.pool, dbsqlc.RunGetParams{OrgID: org, ID: req.Msg.RunId}); err != nil {
		return nil, notFoundOr(err, "run %s not found", req.Msg.RunId)
	}
	rows, err := q.IncidentsOfRun(ctx, s.pool, dbsqlc.IncidentsOfRunParams{RunID: req.Msg.RunId, OrgID: org})
	if err != nil {
		return nil, err
	}
	out := &v1.ListRunIncidentsResponse{}
	for _, i := range rows {
		v, err := s.incidentView(ctx, s.pool, i)
		if err != nil {
			return nil, err
		}
		out.Incidents = append(out.Incidents, v)
	}
	return connect.NewResponse(out), nil
}
