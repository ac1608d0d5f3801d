package api

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/governor-hq/governor/db/dbsqlc"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/anomaly"
	"github.com/governor-hq/governor/internal/change"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/lifecycle"
)

type anomalyService struct{ *Server }

var (
	anomalyTypeNames = map[v1.AnomalyType]string{
		v1.AnomalyType_ANOMALY_TYPE_METRIC_SPIKE: anomaly.TypeMetricSpike, v1.AnomalyType_ANOMALY_TYPE_BUDGET_EXCEEDED: anomaly.TypeBudgetExceeded,
	}
	anomalyMetricNames = map[v1.AnomalyMetric]string{
		v1.AnomalyMetric_ANOMALY_METRIC_COST: anomaly.MetricCost, v1.AnomalyMetric_ANOMALY_METRIC_TOKENS: anomaly.MetricTokens,
		v1.AnomalyMetric_ANOMALY_METRIC_ERROR_RATE: anomaly.MetricErrorRate, v1.AnomalyMetric_ANOMALY_METRIC_LATENCY: anomaly.MetricLatency,
	}
	anomalyMethodNames = map[v1.AnomalyMethod]string{
		v1.AnomalyMethod_ANOMALY_METHOD_ZSCORE: anomaly.MethodZScore, v1.AnomalyMethod_ANOMALY_METHOD_IQR: anomaly.MethodIQR,
		v1.AnomalyMethod_ANOMALY_METHOD_BUDGET: anomaly.MethodBudget,
	}
	anomalySeverityNames = map[v1.AnomalySeverity]string{
		v1.AnomalySeverity_ANOMALY_SEVERITY_INFO: anomaly.SeverityInfo, v1.AnomalySeverity_ANOMALY_SEVERITY_WARNING: anomaly.SeverityWarning,
		v1.AnomalySeverity_ANOMALY_SEVERITY_HIGH: anomaly.SeverityHigh, v1.AnomalySeverity_ANOMALY_SEVERITY_CRITICAL: anomaly.SeverityCritical,
	}
	anomalyRunStatusEnums = map[string]v1.AnomalyRunStatus{
		"pending": v1.AnomalyRunStatus_ANOMALY_RUN_STATUS_PENDING, "running": v1.AnomalyRunStatus_ANOMALY_RUN_STATUS_RUNNING,
		"succeeded": v1.AnomalyRunStatus_ANOMALY_RUN_STATUS_SUCCEEDED, "failed": v1.AnomalyRunStatus_ANOMALY_RUN_STATUS_FAILED,
	}
	anomalyTypeEnums     = invert(anomalyTypeNames)
	anomalyMetricEnums   = invert(anomalyMetricNames)
	anomalyMethodEnums   = invert(anomalyMethodNames)
	anomalySeverityEnums = invert(anomalySeverityNames)
)

func dayString(d pgtype.Date) string {
	if !d.Valid {
		return ""
	}
	return d.Time.Format(anomaly.DayLayout)
}

func anomalyProto(a dbsqlc.Anomaly) *v1.Anomaly {
	return &v1.Anomaly{
		Id: a.ID, Type: anomalyTypeEnums[a.Type], Entity: &v1.EntityRef{Type: a.EntityType, Id: a.EntityID},
		Metric: anomalyMetricEnums[a.Metric], Method: anomalyMethodEnums[a.Method], Severity: anomalySeverityEnums[a.Severity],
		Day: dayString(a.Day), WindowStart: ts(a.WindowStart), WindowEnd: ts(a.WindowEnd), Baseline: a.Baseline, Observed: a.Observed,
		Deviation: a.Deviation, Score: a.Score, Confidence: a.Confidence, IncidentId: str(a.IncidentID), AlertId: str(a.AlertID),
		LimitId: str(a.LimitID), RunId: str(a.RunID), ContextJson: string(a.Context), DetectTime: ts(a.DetectedAt),
	}
}

func anomalyRunProto(r dbsqlc.AnomalyRun) *v1.AnomalyDetectionRun {
	out := &v1.AnomalyDetectionRun{
		Id: r.ID, Status: anomalyRunStatusEnums[r.Status], Trigger: r.Trigger, WorkflowId: r.WorkflowID,
		SeriesEvaluated: r.SeriesEvaluated, AnomaliesFound: r.AnomaliesFound, AnomaliesCreated: r.AnomaliesCreated,
		IncidentsLinked: r.IncidentsLinked, AlertsRaised: r.AlertsRaised, Error: r.Error, CreateTime: ts(r.CreatedAt),
		StartTime: tsp(r.StartedAt), FinishTime: tsp(r.FinishedAt),
	}
	for _, d := range r.Days {
		out.Days = append(out.Days, dayString(d))
	}
	return out
}

func configProto(c anomaly.Config, updated *time.Time) *v1.AnomalyConfig {
	out := &v1.AnomalyConfig{
		Enabled: c.Enabled, LookbackDays: int32(c.LookbackDays), MinDataPoints: int32(c.MinDataPoints), MinDailyRuns: int32(c.MinDailyRuns),
		Thresholds: &v1.AnomalyThresholds{Info: c.Thresholds.Info, Warning: c.Thresholds.Warning, High: c.Thresholds.High, Critical: c.Thresholds.Critical},
		UpdateTime: tsp(updated),
	}
	for _, m := range c.Metrics {
		out.Metrics = append(out.Metrics, anomalyMetricEnums[m])
	}
	for _, m := range c.Methods {
		out.Methods = append(out.Methods, anomalyMethodEnums[m])
	}
	return out
}

func parseDay(field, s string) (*pgtype.Date, error) {
	if s == "" {
		return nil, nil
	}
	t, err := time.Parse(anomaly.DayLayout, s)
	if err != nil {
		return nil, invalidField(field, "day.valid", "not a day (YYYY-MM-DD)")
	}
	return &pgtype.Date{Time: t, Valid: true}, nil
}

func (s *anomalyService) ListAnomalies(ctx context.Context, req *connect.Request[v1.ListAnomaliesRequest]) (*connect.Response[v1.ListAnomaliesResponse], error) {
	m := req.Msg
	cur, err := decodeCursor(m.PageToken)
	if err != nil {
		return nil, err
	}
	from, err := parseDay("from_day", m.FromDay)
	if err != nil {
		return nil, err
	}
	to, err := parseDay("to_day", m.ToDay)
	if err != nil {
		return nil, err
	}
	types, sevs, metrics := []string{}, []string{}, []string{}
	for _, x := range m.Types {
		types = append(types, anomalyTypeNames[x])
	}
	for _, x := range m.Severities {
		sevs = append(sevs, anomalySeverityNames[x])
	}
	for _, x := range m.Metrics {
		metrics = append(metrics, anomalyMetricNames[x])
	}
	size := pageSize(m.PageSize)
	p := dbsqlc.AnomalyListParams{OrgID: principal(ctx).OrgID, Types: types, Severities: sevs, Metrics: metrics,
		EntityType: m.GetEntity().GetType(), EntityID: m.GetEntity().GetId(), IncidentID: m.IncidentId, RunID: m.RunId,
		BeforeID: cur.ID, Max: size + 1}
	if from != nil {
		p.FromDay = *from
	}
	if to != nil {
		p.ToDay = *to
	}
	rows, err := q.AnomalyList(ctx, s.pool, p)
	if err != nil {
		return nil, err
	}
	rows, more := page(rows, size)
	out := &v1.ListAnomaliesResponse{}
	for _, a := range rows {
		out.Anomalies = append(out.Anomalies, anomalyProto(a))
	}
	if more {
		out.NextPageToken = encodeCursor(cursor{ID: rows[len(rows)-1].ID})
	}
	return connect.NewResponse(out), nil
}

func (s *anomalyService) GetAnomaly(ctx context.Context, req *connect.Request[v1.GetAnomalyRequest]) (*connect.Response[v1.GetAnomalyResponse], error) {
	a, err := q.AnomalyGet(ctx, s.pool, dbsqlc.AnomalyGetParams{OrgID: principal(ctx).OrgID, ID: req.Msg.Id})
	if err != nil {
		return nil, notFoundOr(err, "anomaly %s not found", req.Msg.Id)
	}
	return connect.NewResponse(&v1.GetAnomalyResponse{Anomaly: anomalyProto(a)}), nil
}

// config reads the organization's settings with their update time (nil for defaults).
func (s *anomalyService) config(ctx context.Context, conn dbsqlc.DBTX, org string) (anomaly.Config, *time.Time, error) {
	row, err := q.AnomalySettingsGet(ctx, conn, org)
	if errors.Is(err, pgx.ErrNoRows) {
		return anomaly.DefaultConfig(), nil, nil
	}
	if err != nil {
		return anomaly.Config{}, nil, err
	}
	c, err := anomaly.ConfigOf(ctx, conn, org)
	return c, &row.UpdatedAt, err
}

func (s *anomalyService) GetAnomalyConfig(ctx context.Context, _ *connect.Request[v1.GetAnomalyConfigRequest]) (*connect.Response[v1.GetAnomalyConfigResponse], error) {
	c, updated, err := s.config(ctx, s.pool, principal(ctx).OrgID)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.GetAnomalyConfigResponse{Config: configProto(c, updated)}), nil
}

func (s *anomalyService) UpdateAnomalyConfig(ctx context.Context, req *connect.Request[v1.UpdateAnomalyConfigRequest]) (*connect.Response[v1.UpdateAnomalyConfigResponse], error) {
	in := req.Msg.Config
	th := anomaly.Thresholds{Info: in.Thresholds.Info, Warning: in.Thresholds.Warning, High: in.Thresholds.High, Critical: in.Thresholds.Critical}
	if err := th.Valid(); err != nil {
		return nil, invalidField("config.thresholds", "thresholds.ascending", "%v", err)
	}
	if in.MinDataPoints > in.LookbackDays {
		return nil, invalidField("config.min_data_points", "min_data_points.lookback", "cannot exceed lookback_days (%d)", in.LookbackDays)
	}
	metrics, methods := []string{}, []string{}
	for _, x := range in.Metrics {
		metrics = append(metrics, anomalyMetricNames[x])
	}
	for _, x := range in.Methods {
		methods = append(methods, anomalyMethodNames[x])
	}
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.UpdateAnomalyConfigResponse, error) {
		before, beforeTime, err := s.config(ctx, c.DB, c.OrgID)
		if err != nil {
			return nil, err
		}
		row, err := c.Q.AnomalySettingsUpsert(ctx, c.DB, dbsqlc.AnomalySettingsUpsertParams{
			OrgID: c.OrgID, Enabled: in.Enabled, Metrics: metrics, Methods: methods, InfoThreshold: th.Info, WarningThreshold: th.Warning,
			HighThreshold: th.High, CriticalThreshold: th.Critical, LookbackDays: in.LookbackDays, MinDataPoints: in.MinDataPoints,
			MinDailyRuns: in.MinDailyRuns,
		})
		if err != nil {
			return nil, err
		}
		after, err := anomaly.ConfigOf(ctx, c.DB, c.OrgID)
		if err != nil {
			return nil, err
		}
		out := configProto(after, &row.UpdatedAt)
		err = c.Record(ctx, "anomaly_config.update", configProto(before, beforeTime), out, events.Event{
			Domain: events.DomainAnomalies, Type: "anomaly_config_updated", Entity: entity("anomaly_config", c.OrgID),
			Summary: "Anomaly detection settings updated",
		})
		return &v1.UpdateAnomalyConfigResponse{Config: out}, err
	})
}

func (s *anomalyService) RunAnomalyDetection(ctx context.Context, req *connect.Request[v1.RunAnomalyDetectionRequest]) (*connect.Response[v1.RunAnomalyDetectionResponse], error) {
	day, err := parseDay("day", req.Msg.Day)
	if err != nil {
		return nil, err
	}
	if day != nil && day.Time.After(time.Now().Add(24*time.Hour)) {
		return nil, invalidField("day", "day.past", "%s has not begun yet", req.Msg.Day)
	}
	p := principal(ctx)
	by := p.UserID
	if by == "" {
		by = p.APIKeyID
	}
	resp, err := mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.RunAnomalyDetectionResponse, error) {
		id := ids.New(ids.AnomalyRun)
		wfID := lifecycle.AnomalyBatchWorkflowID(c.OrgID, id)
		params := dbsqlc.AnomalyRunCreateParams{OrgID: c.OrgID, ID: id, WorkflowID: wfID, Trigger: "api", RequestedBy: by}
		if day != nil {
			params.RequestedDay = *day
		}
		run, err := c.Q.AnomalyRunCreate(ctx, c.DB, params)
		if err != nil {
			return nil, err
		}
		payload, err := json.Marshal(lifecycle.AnomalyBatchInput{OrgID: c.OrgID, RunID: id, Day: req.Msg.Day})
		if err != nil {
			return nil, err
		}
		if err := c.Q.OutboxAdd(ctx, c.DB, dbsqlc.OutboxAddParams{OrgID: c.OrgID, Kind: "start", WorkflowType: lifecycle.AnomalyBatchWorkflowType,
			WorkflowID: wfID, Payload: payload}); err != nil {
			return nil, err
		}
		out := anomalyRunProto(run)
		summary := "Anomaly detection started"
		if req.Msg.Day != "" {
			summary += " for " + req.Msg.Day
		}
		err = c.Record(ctx, "anomaly_detection.run", nil, out, events.Event{
			Domain: events.DomainAnomalies, Type: "anomaly_detection_requested", Entity: entity("anomaly_run", id), Summary: summary,
		})
		return &v1.RunAnomalyDetectionResponse{Run: out}, err
	})
	s.wakeRelay()
	return resp, err
}

func (s *anomalyService) GetAnomalyDetectionRun(ctx context.Context, req *connect.Request[v1.GetAnomalyDetectionRunRequest]) (*connect.Response[v1.GetAnomalyDetectionRunResponse], error) {
	r, err := q.AnomalyRunGet(ctx, s.pool, dbsqlc.AnomalyRunGetParams{OrgID: principal(ctx).OrgID, ID: req.Msg.Id})
	if err != nil {
		return nil, notFoundOr(err, "anomaly detection run %s not found", req.Msg.Id)
	}
	return connect.NewResponse(&v1.GetAnomalyDetectionRunResponse{Run: anomalyRunProto(r)}), nil
}

func (s *anomalyService) ListAnomalyDetectionRuns(ctx context.Context, req *connect.Request[v1.ListAnomalyDetectionRunsRequest]) (*connect.Response[v1.ListAnomalyDetectionRunsResponse], error) {
	cur, err := decodeCursor(req.Msg.PageToken)
	if err != nil {
		return nil, err
	}
	size := pageSize(req.Msg.PageSize)
	rows, err := q.AnomalyRunList(ctx, s.pool, dbsqlc.AnomalyRunListParams{OrgID: principal(ctx).OrgID, BeforeID: cur.ID, Max: size + 1})
	if err != nil {
		return nil, err
	}
	rows, more := page(rows, size)
	out := &v1.ListAnomalyDetectionRunsResponse{}
	for _, r := range rows {
		out.Runs = append(out.Runs, anomalyRunProto(r))
	}
	if more {
		out.NextPageToken = encodeCursor(cursor{ID: rows[len(rows)-1].ID})
	}
	return connect.NewResponse(out), nil
}
