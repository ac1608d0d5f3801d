package export

import (
	"context"
	"encoding/hex"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/export/tabular"
	"github.com/governor-hq/governor/internal/runs"
)

// Column kinds, short.
const (
	str = tabular.String
	num = tabular.Int
	usd = tabular.Dollars
	flt = tabular.Float
	bln = tabular.Bool
	tim = tabular.Time
	jsn = tabular.JSON
)

func cols(spec ...any) []tabular.Column {
	out := make([]tabular.Column, 0, len(spec)/2)
	for i := 0; i < len(spec); i += 2 {
		out = append(out, tabular.Column{Name: spec[i].(string), Kind: spec[i+1].(tabular.Kind)})
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

var (
	S, N, NP, SP, T, TP, B, F, J = tabular.Str, tabular.Num, tabular.NumP, tabular.StrP, tabular.At, tabular.AtP, tabular.Bln, tabular.Flt, tabular.Raw
)

var datasets = map[Dataset]dataset{
	CostRecords: {
		cols: cols("id", str, "record_time", tim, "run_id", str, "project_id", str, "agent_id", str, "api_key_id", str,
			"model", str, "feature", str, "run_status", str, "input_tokens", num, "output_tokens", num,
			"cost_usd", usd, "cost_micros", num, "latency_ms", num, "incident_id", str),
		page: func(ctx context.Context, db dbsqlc.DBTX, r Request, c cursor, max int32) (int, cursor, writeFunc, error) {
			f := r.CostRecords
			rows, err := dbsqlc.New().CostRecordList(ctx, db, dbsqlc.CostRecordListParams{OrgID: r.OrgID, AgentID: f.AgentID,
				ApiKeyID: f.APIKeyID, ProjectID: f.ProjectID, Model: f.Model, Feature: f.Feature, StartTime: r.Start, EndTime: r.End,
				AfterTime: c.t, AfterID: c.id, Max: max})
			if err != nil {
				return 0, c, nil, err
			}
			v := make([]tabular.Value, 15)
			if len(rows) > 0 {
				c = cursor{t: rows[len(rows)-1].RecordedAt, id: rows[len(rows)-1].ID}
			}
			return len(rows), c, func(emit func([]tabular.Value) error) error {
				for _, x := range rows {
					v[0], v[1], v[2], v[3], v[4], v[5] = S(x.ID), T(x.RecordedAt), S(x.RunID), S(x.ProjectID), S(x.AgentID), S(x.ApiKeyID)
					v[6], v[7], v[8], v[9], v[10] = S(x.Model), S(x.Feature), S(x.RunStatus), N(x.InputTokens), N(x.OutputTokens)
					v[11], v[12], v[13], v[14] = N(x.CostMicros), N(x.CostMicros), NP(x.LatencyMs), SP(x.IncidentID)
					if err := emit(v); err != nil {
						return err
					}
				}
				return nil
			}, nil
		},
	},
	LlmCalls: {
		cols: cols("id", str, "call_id", str, "start_time", tim, "record_time", tim, "run_id", str, "project_id", str,
			"agent_id", str, "api_key_id", str, "model", str, "provider", str, "operation", str, "feature", str,
			"status", str, "error_type", str, "input_tokens", num, "output_tokens", num, "cache_read_tokens", num,
			"cache_write_tokens", num, "reasoning_tokens", num, "cost_usd", usd, "cost_micros", num, "cost_source", str,
			"latency_ms", num, "late", bln, "source", str, "trace_id", str, "span_id", str, "attributes", jsn),
		page: func(ctx context.Context, db dbsqlc.DBTX, r Request, c cursor, max int32) (int, cursor, writeFunc, error) {
			f := r.LlmCalls
			rows, err := dbsqlc.New().LlmCallExportAsc(ctx, db, dbsqlc.LlmCallExportAscParams{OrgID: r.OrgID, RunID: f.RunID,
				ProjectID: f.ProjectID, AgentID: f.AgentID, ApiKeyID: f.APIKeyID, Model: f.Model, Provider: f.Provider, Feature: f.Feature,
				Status: f.Status, StartTime: r.Start, EndTime: r.End, AfterTime: c.t, AfterID: c.id, Max: max})
			if err != nil {
				return 0, c, nil, err
			}
			v := make([]tabular.Value, 28)
			if len(rows) > 0 {
				c = cursor{t: rows[len(rows)-1].StartedAt, id: rows[len(rows)-1].ID}
			}
			return len(rows), c, func(emit func([]tabular.Value) error) error {
				for _, x := range rows {
					v[0], v[1], v[2], v[3], v[4], v[5] = S(x.ID), S(x.CallID), T(x.StartedAt), T(x.RecordedAt), S(x.RunID), S(x.ProjectID)
					v[6], v[7], v[8], v[9], v[10], v[11] = S(x.AgentID), S(x.ApiKeyID), S(x.Model), S(x.Provider), S(x.Operation), S(x.Feature)
					v[12], v[13], v[14], v[15], v[16] = S(x.Status), S(x.ErrorType), N(x.InputTokens), N(x.OutputTokens), N(x.CacheReadTokens)
					v[17], v[18], v[19], v[20], v[21] = N(x.CacheWriteTokens), N(x.ReasoningTokens), N(x.CostMicros), N(x.CostMicros), S(x.CostSource)
					v[22], v[23], v[24], v[25], v[26], v[27] = NP(x.LatencyMs), B(x.Late), S(x.Source), S(x.TraceID), S(x.SpanID), tabular.RawS(x.Attributes)
					if err := emit(v); err != nil {
						return err
					}
				}
				return nil
			}, nil
		},
	},
	Runs: {
		cols: cols("id", str, "admit_time", tim, "status", str, "project_id", str, "agent_id", str, "api_key_id", str,
			"model", str, "feature", str, "client_run_id", str, "retry_of", str, "estimate_cost_usd", usd,
			"estimate_cost_micros", num, "estimate_input_tokens", num, "estimate_output_tokens", num, "cost_usd", usd,
			"cost_micros", num, "input_tokens", num, "output_tokens", num, "latency_ms", num, "error_code", str,
			"error_message", str, "complete_time", tim, "settle_time", tim, "lease_expire_time", tim,
			"blocked_by_limit_id", str, "blocked_by_policy_rule_id", str, "dead_letter_time", tim, "dead_letter_error", str,
			"tags", jsn),
		page: func(ctx context.Context, db dbsqlc.DBTX, r Request, c cursor, max int32) (int, cursor, writeFunc, error) {
			f := r.Runs
			rows, err := dbsqlc.New().RunExportAsc(ctx, db, dbsqlc.RunExportAscParams{OrgID: r.OrgID, Statuses: nonNil(f.Statuses),
				AgentID: f.AgentID, ProjectID: f.ProjectID, ApiKeyID: f.APIKeyID, Model: f.Model, Feature: f.Feature,
				StartTime: r.Start, EndTime: r.End, AfterTime: c.t, AfterID: c.id, Max: max})
			if err != nil {
				return 0, c, nil, err
			}
			v := make([]tabular.Value, 29)
			if len(rows) > 0 {
				c = cursor{t: rows[len(rows)-1].AdmittedAt, id: rows[len(rows)-1].ID}
			}
			return len(rows), c, func(emit func([]tabular.Value) error) error {
				for _, x := range rows {
					blockedBy := ""
					if x.Status == "blocked" && len(x.BlockedBy) > 0 {
						if checks := runs.DecodeChecks(x.BlockedBy); len(checks) > 0 {
							blockedBy = checks[0].LimitID
						}
					}
					settled := x.SettledAt != nil
					cost, in, out := tabular.Value{Null: !settled}, tabular.Value{Null: !settled}, tabular.Value{Null: !settled}
					if settled {
						cost, in, out = NP(x.CostMicros), NP(x.InputTokens), NP(x.OutputTokens)
					}
					v[0], v[1], v[2], v[3], v[4], v[5] = S(x.ID), T(x.AdmittedAt), S(x.Status), S(x.ProjectID), S(x.AgentID), S(x.ApiKeyID)
					v[6], v[7], v[8], v[9] = S(x.Model), S(x.Feature), SP(x.ClientRunID), SP(x.RetryOf)
					v[10], v[11], v[12], v[13] = N(x.EstCostMicros), N(x.EstCostMicros), N(x.EstInputTokens), N(x.EstOutputTokens)
					v[14], v[15], v[16], v[17], v[18] = cost, cost, in, out, NP(x.LatencyMs)
					v[19], v[20], v[21], v[22], v[23] = S(x.ErrorCode), S(x.ErrorMessage), TP(x.ReportedAt), TP(x.SettledAt), TP(x.LeaseExpiresAt)
					v[24], v[25], v[26], v[27], v[28] = S(blockedBy), SP(x.BlockedByRule), TP(x.DeadLetteredAt), S(x.DeadLetterError), J(x.Tags)
					if err := emit(v); err != nil {
						return err
					}
				}
				return nil
			}, nil
		},
	},
	AuditEntries: {
		cols: cols("sequence", num, "id", str, "create_time", tim, "actor_kind", str, "actor_api_key_id", str,
			"actor_user_id", str, "actor_system", str, "action", str, "entity_type", str, "entity_id", str,
			"request_id", str, "before", jsn, "after", jsn, "previous_hash", str, "hash", str),
		page: func(ctx context.Context, db dbsqlc.DBTX, r Request, c cursor, max int32) (int, cursor, writeFunc, error) {
			f := r.Audit
			rows, err := dbsqlc.New().AuditEntryListAsc(ctx, db, dbsqlc.AuditEntryListAscParams{OrgID: r.OrgID, EntityType: f.EntityType,
				EntityID: f.EntityID, ActorApiKeyID: f.ActorAPIKeyID, ActorUserID: f.ActorUserID, Action: f.Action,
				StartTime: r.Start, EndTime: r.End, AfterSeq: c.seq, Max: max})
			if err != nil {
				return 0, c, nil, err
			}
			v := make([]tabular.Value, 15)
			if len(rows) > 0 {
				c = cursor{seq: rows[len(rows)-1].Seq}
			}
			return len(rows), c, func(emit func([]tabular.Value) error) error {
				for _, x := range rows {
					prev, hash := hex.EncodeToString(x.PrevHash), hex.EncodeToString(x.Hash)
					v[0], v[1], v[2], v[3], v[4] = N(x.Seq), S(x.ID), T(x.CreatedAt), S(x.ActorKind), S(x.ActorApiKeyID)
					v[5], v[6], v[7], v[8], v[9] = S(x.ActorUserID), S(x.ActorSystem), S(x.Action), S(x.EntityType), S(x.EntityID)
					v[10], v[11], v[12], v[13], v[14] = S(x.RequestID), J(x.Before), J(x.After), S(prev), S(hash)
					if err := emit(v); err != nil {
						return err
					}
				}
				return nil
			}, nil
		},
	},
	Incidents: {
		cols: cols("id", str, "create_time", tim, "status", str, "severity", str, "category", str, "title", str,
			"fingerprint", str, "project_id", str, "agent_id", str, "model", str, "feature", str, "error_code", str,
			"occurrences", num, "runs_affected", num, "cost_usd", usd, "cost_micros", num, "source_type", str,
			"source_id", str, "source_run_id", str, "first_seen_time", tim, "last_seen_time", tim,
			"acknowledge_time", tim, "acknowledged_by", str, "resolve_time", tim, "resolved_by", str, "resolution_note", str),
		page: func(ctx context.Context, db dbsqlc.DBTX, r Request, c cursor, max int32) (int, cursor, writeFunc, error) {
			f := r.Incidents
			rows, err := dbsqlc.New().IncidentExportAsc(ctx, db, dbsqlc.IncidentExportAscParams{OrgID: r.OrgID, Statuses: nonNil(f.Statuses),
				Severities: nonNil(f.Severities), Categories: nonNil(f.Categories), AgentID: f.AgentID, StartTime: r.Start, EndTime: r.End,
				AfterTime: c.t, AfterID: c.id, Max: max})
			if err != nil {
				return 0, c, nil, err
			}
			v := make([]tabular.Value, 26)
			if len(rows) > 0 {
				c = cursor{t: rows[len(rows)-1].CreatedAt, id: rows[len(rows)-1].ID}
			}
			return len(rows), c, func(emit func([]tabular.Value) error) error {
				for _, x := range rows {
					v[0], v[1], v[2], v[3], v[4], v[5] = S(x.ID), T(x.CreatedAt), S(x.Status), S(x.Severity), S(x.Category), S(x.Title)
					v[6], v[7], v[8], v[9], v[10], v[11] = S(x.Fingerprint), SP(x.ProjectID), SP(x.AgentID), S(x.Model), S(x.Feature), S(x.ErrorCode)
					v[12], v[13], v[14], v[15], v[16] = N(int64(x.Occurrences)), N(int64(x.RunsAffected)), N(x.CostMicros), N(x.CostMicros), S(x.SourceType)
					v[17], v[18], v[19], v[20], v[21] = S(x.SourceID), SP(x.SourceRunID), T(x.FirstSeenAt), T(x.LastSeenAt), TP(x.AcknowledgedAt)
					v[22], v[23], v[24], v[25] = S(x.AcknowledgedBy), TP(x.ResolvedAt), S(x.ResolvedBy), S(x.ResolutionNote)
					if err := emit(v); err != nil {
						return err
					}
				}
				return nil
			}, nil
		},
	},
	Anomalies: {
		cols: cols("id", str, "detect_time", tim, "day", str, "type", str, "severity", str, "metric", str, "method", str,
			"entity_type", str, "entity_id", str, "baseline", flt, "observed", flt, "deviation", flt, "score", num,
			"confidence", flt, "window_start", tim, "window_end", tim, "incident_id", str, "alert_id", str,
			"limit_id", str, "detection_run_id", str),
		page: func(ctx context.Context, db dbsqlc.DBTX, r Request, c cursor, max int32) (int, cursor, writeFunc, error) {
			f := r.Anomalies
			rows, err := dbsqlc.New().AnomalyExportAsc(ctx, db, dbsqlc.AnomalyExportAscParams{OrgID: r.OrgID, Types: nonNil(f.Types),
				Severities: nonNil(f.Severities), Metrics: nonNil(f.Metrics), EntityType: f.EntityType, EntityID: f.EntityID,
				IncidentID: f.IncidentID, RunID: f.RunID, FromDay: day(f.FromDay), ToDay: day(f.ToDay), StartTime: r.Start, EndTime: r.End,
				AfterTime: c.t, AfterID: c.id, Max: max})
			if err != nil {
				return 0, c, nil, err
			}
			v := make([]tabular.Value, 20)
			if len(rows) > 0 {
				c = cursor{t: rows[len(rows)-1].DetectedAt, id: rows[len(rows)-1].ID}
			}
			return len(rows), c, func(emit func([]tabular.Value) error) error {
				for _, x := range rows {
					v[0], v[1], v[2], v[3], v[4], v[5] = S(x.ID), T(x.DetectedAt), S(x.Day.Time.Format("2006-01-02")), S(x.Type), S(x.Severity), S(x.Metric)
					v[6], v[7], v[8], v[9], v[10], v[11] = S(x.Method), S(x.EntityType), S(x.EntityID), F(x.Baseline), F(x.Observed), F(x.Deviation)
					v[12], v[13], v[14], v[15], v[16] = N(int64(x.Score)), F(x.Confidence), T(x.WindowStart), T(x.WindowEnd), SP(x.IncidentID)
					v[17], v[18], v[19] = SP(x.AlertID), SP(x.LimitID), SP(x.RunID)
					if err := emit(v); err != nil {
						return err
					}
				}
				return nil
			}, nil
		},
	},
}

func day(t *time.Time) pgtype.Date {
	if t == nil {
		return pgtype.Date{}
	}
	return pgtype.Date{Time: time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC), Valid: true}
}
