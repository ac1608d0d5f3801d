package api

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/feedback"
	"github.com/governor-hq/governor/internal/llmcalls"
	"github.com/governor-hq/governor/internal/logs"
	"github.com/governor-hq/governor/internal/logs/runlog"
	"github.com/governor-hq/governor/internal/pricing"
	"github.com/governor-hq/governor/internal/runs"
	"github.com/governor-hq/governor/internal/systemrecords"
)

// The three logs: LLM calls and system records (LogService), one run's merged logs
// (RunService.GetRunLogs), an incident's calls; and the write RPCs of calls and feedback.

type logService struct{ *Server }

var (
	llmStatusNames = map[v1.LlmCallStatus]string{v1.LlmCallStatus_LLM_CALL_STATUS_OK: llmcalls.StatusOK,
		v1.LlmCallStatus_LLM_CALL_STATUS_ERROR: llmcalls.StatusError}
	llmStatusEnums  = invert(llmStatusNames)
	llmSourceEnums  = map[string]v1.LlmCallSource{llmcalls.SourceAPI: v1.LlmCallSource_LLM_CALL_SOURCE_API, llmcalls.SourceOTLP: v1.LlmCallSource_LLM_CALL_SOURCE_OTLP}
	llmCostSrcEnums = map[string]v1.LlmCallCostSource{llmcalls.CostReported: v1.LlmCallCostSource_LLM_CALL_COST_SOURCE_REPORTED,
		llmcalls.CostPriced: v1.LlmCallCostSource_LLM_CALL_COST_SOURCE_PRICED, llmcalls.CostUnpriced: v1.LlmCallCostSource_LLM_CALL_COST_SOURCE_UNPRICED}
	sysSeverityNames = map[v1.SystemRecordSeverity]string{v1.SystemRecordSeverity_SYSTEM_RECORD_SEVERITY_INFO: systemrecords.Info,
		v1.SystemRecordSeverity_SYSTEM_RECORD_SEVERITY_WARNING: systemrecords.Warning, v1.SystemRecordSeverity_SYSTEM_RECORD_SEVERITY_ERROR: systemrecords.Error}
	sysSeverityEnums = invert(sysSeverityNames)
)

func llmCallProto(c llmcalls.Stored) *v1.LlmCall {
	return &v1.LlmCall{
		Id: c.ID, CallId: c.CallID, RunId: c.RunID, ProjectId: c.ProjectID, AgentId: c.AgentID, ApiKeyId: c.APIKeyID,
		Model: c.Model, Provider: c.Provider, Operation: c.Operation, Feature: c.Feature, InputTokens: c.Input,
		OutputTokens: c.Output, CacheReadTokens: c.CacheRead, CacheWriteTokens: c.CacheWrite, ReasoningTokens: c.Reasoning,
		CostMicros: c.CostMicros, CostSource: llmCostSrcEnums[c.CostSource], LatencyMs: c.LatencyMs, Status: llmStatusEnums[c.Status],
		ErrorType: c.ErrorType, StartTime: ts(c.StartedAt), RecordTime: ts(c.RecordedAt), Late: c.Late,
		Source: llmSourceEnums[c.Source], TraceId: c.TraceID, SpanId: c.SpanID, Attributes: c.Attributes,
	}
}

func systemRecordProto(r systemrecords.Stored) *v1.SystemRecord {
	return &v1.SystemRecord{Id: r.ID, Sequence: r.Seq, OccurTime: ts(r.OccurredAt), Kind: r.Kind, Severity: sysSeverityEnums[r.Severity],
		Message: r.Message, RunId: r.RunID, IncidentId: r.IncidentID, AlertId: r.AlertID, WorkflowId: r.WorkflowID, DataJson: string(r.Data)}
}

func logEventProto(e logs.Event) *v1.Event {
	out := &v1.Event{Id: e.ID, Sequence: e.Seq, OccurTime: ts(e.OccurredAt), Domain: e.Domain, Type: e.Type,
		Entity: &v1.EntityRef{Type: e.EntityType, Id: e.EntityID}, CorrelationId: e.CorrelationID, Summary: e.Summary,
		DataJson: string(e.Data), Actor: actorProto(e.ActorKind, e.ActorAPIKeyID, e.ActorUserID, e.ActorSystem)}
	var related []events.Ref
	_ = json.Unmarshal(e.Related, &related)
	for _, r := range related {
		out.Related = append(out.Related, &v1.EntityRef{Type: r.Type, Id: r.ID})
	}
	return out
}

// logsError maps the errors of the log and record packages to Connect codes.
func logsError(err error) error {
	switch {
	case errors.Is(err, runs.ErrRunNotFound), errors.Is(err, runs.ErrAgentNotFound):
		return notFound("%v", err)
	case errors.Is(err, llmcalls.ErrNotFound), errors.Is(err, logs.ErrNotFound):
		return notFound("%v", err)
	case errors.Is(err, feedback.ErrFeedbackIDReused):
		return connect.NewError(connect.CodeAlreadyExists, err)
	}
	return runsError(err)
}

// Names of the lists whose page tokens say which list (and order) they belong to.
func listName(name string, newestFirst bool) string {
	if newestFirst {
		return name + ":desc"
	}
	return name + ":asc"
}

func (s *logService) ListLlmCalls(ctx context.Context, req *connect.Request[v1.ListLlmCallsRequest]) (*connect.Response[v1.ListLlmCallsResponse], error) {
	m := req.Msg
	list := listName("llm_calls", m.NewestFirst)
	cur, err := decodeCursorFor(m.PageToken, list)
	if err != nil {
		return nil, err
	}
	f := m.GetFilter()
	filter := llmcalls.Filter{RunID: f.GetRunId(), ProjectID: f.GetProjectId(), AgentID: f.GetAgentId(), APIKeyID: f.GetApiKeyId(),
		Model: f.GetModel(), Provider: f.GetProvider(), Feature: f.GetFeature(), Status: llmStatusNames[f.GetStatus()],
		Start: optTime(m.StartTime), End: optTime(m.EndTime)}
	var pos *llmcalls.Position
	if m.PageToken != "" {
		pos = &llmcalls.Position{Time: time.UnixMicro(cur.Time).UTC(), ID: cur.ID}
	}
	rows, more, err := llmcalls.List(ctx, s.pool, principal(ctx).OrgID, filter, m.NewestFirst, pos, pageSize(m.PageSize))
	if err != nil {
		return nil, err
	}
	out := &v1.ListLlmCallsResponse{}
	for _, c := range rows {
		out.Calls = append(out.Calls, llmCallProto(c))
	}
	if more {
		last := rows[len(rows)-1]
		out.NextPageToken = encodeCursor(cursor{List: list, Time: last.StartedAt.UnixMicro(), ID: last.ID})
	}
	return connect.NewResponse(out), nil
}

func (s *logService) ListSystemRecords(ctx context.Context, req *connect.Request[v1.ListSystemRecordsRequest]) (*connect.Response[v1.ListSystemRecordsResponse], error) {
	m := req.Msg
	list := listName("system_records", m.NewestFirst)
	cur, err := decodeCursorFor(m.PageToken, list)
	if err != nil {
		return nil, err
	}
	f := systemrecords.Filter{Kinds: m.Kinds, RunID: m.RunId, IncidentID: m.IncidentId, AlertID: m.AlertId,
		Start: optTime(m.StartTime), End: optTime(m.EndTime)}
	for _, sev := range m.Severities {
		f.Severities = append(f.Severities, sysSeverityNames[sev])
	}
	var pos *systemrecords.Position
	if m.PageToken != "" {
		pos = &systemrecords.Position{Time: time.UnixMicro(cur.Time).UTC(), Seq: cur.Seq}
	}
	rows, more, err := systemrecords.List(ctx, s.pool, principal(ctx).OrgID, f, m.NewestFirst, pos, pageSize(m.PageSize))
	if err != nil {
		return nil, err
	}
	out := &v1.ListSystemRecordsResponse{}
	for _, r := range rows {
		out.Records = append(out.Records, systemRecordProto(r))
	}
	if more {
		last := rows[len(rows)-1]
		out.NextPageToken = encodeCursor(cursor{List: list, Time: last.OccurredAt.UnixMicro(), Seq: last.Seq})
	}
	return connect.NewResponse(out), nil
}

func (s *runService) RecordLlmCalls(ctx context.Context, req *connect.Request[v1.RecordLlmCallsRequest]) (*connect.Response[v1.RecordLlmCallsResponse], error) {
	m := req.Msg
	calls := make([]llmcalls.Call, len(m.Calls))
	for i, c := range m.Calls {
		calls[i] = llmcalls.Call{
			CallID: c.CallId, RunID: m.RunId, Model: c.Model, Provider: c.Provider, Operation: c.Operation, Feature: c.Feature,
			Tokens: pricing.Tokens{Input: c.InputTokens, Output: c.OutputTokens, CacheRead: c.CacheReadTokens,
				CacheWrite: c.CacheWriteTokens, Reasoning: c.ReasoningTokens},
			CostMicros: c.CostMicros, LatencyMs: c.LatencyMs, Status: llmStatusNames[c.Status], ErrorType: c.ErrorType,
			TraceID: c.TraceId, SpanID: c.SpanId, Attributes: c.Attributes,
		}
		if c.StartTime != nil {
			calls[i].StartedAt = c.StartTime.AsTime()
		}
	}
	res, err := llmcalls.Record(ctx, s.pool, principal(ctx), llmcalls.SourceAPI, calls)
	if err != nil {
		return nil, logsError(err)
	}
	return connect.NewResponse(&v1.RecordLlmCallsResponse{Recorded: int32(res.Recorded), AlreadyRecorded: int32(res.AlreadyRecorded),
		AlreadyRecordedCallIds: res.AlreadyRecordedCallIDs, Late: int32(res.Late), CostMicros: res.CostMicros}), nil
}

func (s *runService) GetRunLogs(ctx context.Context, req *connect.Request[v1.GetRunLogsRequest]) (*connect.Response[v1.GetRunLogsResponse], error) {
	m := req.Msg
	const list = "run_logs"
	cur, err := decodeCursorFor(m.PageToken, list)
	if err != nil {
		return nil, err
	}
	var pos *runlog.Position
	if m.PageToken != "" {
		k, ok := runlog.ParseKind(cur.Kind)
		if !ok || cur.ID == "" {
			return nil, invalidField("page_token", "page_token.valid", "not a page token this API returned")
		}
		pos = &runlog.Position{Time: time.UnixMicro(cur.Time).UTC(), Kind: k, ID: cur.ID}
	}
	lines, more, err := logs.RunLogs(ctx, s.pool, principal(ctx).OrgID, m.RunId, pos, pageSize(m.PageSize))
	if err != nil {
		return nil, logsError(err)
	}
	out := &v1.GetRunLogsResponse{}
	for _, l := range lines {
		e := &v1.RunLogEntry{Time: timestamppb.New(l.Position.Time)}
		switch {
		case l.Event != nil:
			e.Entry = &v1.RunLogEntry_Event{Event: logEventProto(*l.Event)}
		case l.Call != nil:
			e.Entry = &v1.RunLogEntry_LlmCall{LlmCall: llmCallProto(*l.Call)}
		case l.Record != nil:
			e.Entry = &v1.RunLogEntry_SystemRecord{SystemRecord: systemRecordProto(*l.Record)}
		}
		out.Entries = append(out.Entries, e)
	}
	if more {
		last := lines[len(lines)-1].Position
		out.NextPageToken = encodeCursor(cursor{List: list, Time: last.Time.UnixMicro(), Kind: last.Kind.String(), ID: last.ID})
	}
	return connect.NewResponse(out), nil
}

func (s *runService) RecordFeedback(ctx context.Context, req *connect.Request[v1.RecordFeedbackRequest]) (*connect.Response[v1.RecordFeedbackResponse], error) {
	m := req.Msg
	fb, replayed, err := feedback.Record(ctx, s.pool, principal(ctx), feedback.Input{FeedbackID: m.FeedbackId, RunID: m.RunId,
		Score: m.Score, Label: m.Label, Comment: m.Comment})
	if err != nil {
		return nil, logsError(err)
	}
	return connect.NewResponse(&v1.RecordFeedbackResponse{Replayed: replayed, Feedback: &v1.RunFeedback{
		Id: fb.ID, FeedbackId: fb.FeedbackID, RunId: fb.RunID, Score: fb.Score, Label: fb.Label, Comment: fb.Comment,
		ApiKeyId: fb.APIKeyID, UserId: fb.UserID, CreateTime: ts(fb.CreatedAt)}}), nil
}

func (s *incidentService) ListIncidentLlmCalls(ctx context.Context, req *connect.Request[v1.ListIncidentLlmCallsRequest]) (*connect.Response[v1.ListIncidentLlmCallsResponse], error) {
	m := req.Msg
	list := listName("incident_llm_calls", m.NewestFirst)
	cur, err := decodeCursorFor(m.PageToken, list)
	if err != nil {
		return nil, err
	}
	var pos *llmcalls.Position
	if m.PageToken != "" {
		pos = &llmcalls.Position{Time: time.UnixMicro(cur.Time).UTC(), ID: cur.ID}
	}
	rows, more, err := llmcalls.ForIncident(ctx, s.pool, principal(ctx).OrgID, m.Id, m.NewestFirst, pos, pageSize(m.PageSize))
	if errors.Is(err, llmcalls.ErrNotFound) {
		return nil, notFound("incident %s not found", m.Id)
	}
	if err != nil {
		return nil, err
	}
	out := &v1.ListIncidentLlmCallsResponse{}
	for _, c := range rows {
		out.Calls = append(out.Calls, llmCallProto(c))
	}
	if more {
		last := rows[len(rows)-1]
		out.NextPageToken = encodeCursor(cursor{List: list, Time: last.StartedAt.UnixMicro(), ID: last.ID})
	}
	return connect.NewResponse(out), nil
}
