package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/governor-hq/governor/db"
	"github.com/governor-hq/governor/db/dbsqlc"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/actor"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/lifecycle"
	"github.com/governor-hq/governor/internal/runs"
)

type runService struct{ *Server }

var runStatusEnums = map[string]v1.RunStatus{
	"admitted": v1.RunStatus_RUN_STATUS_ADMITTED, "succeeded": v1.RunStatus_RUN_STATUS_SUCCEEDED,
	"failed": v1.RunStatus_RUN_STATUS_FAILED, "cancelled": v1.RunStatus_RUN_STATUS_CANCELLED,
	"expired": v1.RunStatus_RUN_STATUS_EXPIRED, "blocked": v1.RunStatus_RUN_STATUS_BLOCKED,
}

var runStatusNames = func() map[v1.RunStatus]string {
	m := invert(runStatusEnums)
	m[v1.RunStatus_RUN_STATUS_SETTLING] = "settling" // a filter word: admitted and reported
	return m
}()

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func runProto(r dbsqlc.Run) *v1.Run {
	out := &v1.Run{
		Id: r.ID, ProjectId: r.ProjectID, AgentId: r.AgentID, ApiKeyId: r.ApiKeyID, Model: r.Model, Feature: r.Feature,
		ClientRunId: deref(r.ClientRunID), Status: runStatusOf(r),
		Estimate:  &v1.Usage{CostMicros: r.EstCostMicros, InputTokens: r.EstInputTokens, OutputTokens: r.EstOutputTokens},
		LatencyMs: deref(r.LatencyMs), ErrorCode: r.ErrorCode, ErrorMessage: r.ErrorMessage,
		AdmitTime: ts(r.AdmittedAt), LeaseExpireTime: tsp(r.LeaseExpiresAt), CompleteTime: tsp(r.ReportedAt),
		SettleTime: tsp(r.SettledAt), BlockedBy: checksProto(runs.DecodeChecks(r.BlockedBy)),
		Warnings: checksProto(runs.DecodeChecks(r.Warnings)),
	}
	_ = json.Unmarshal(r.Tags, &out.Tags)
	if r.SettledAt != nil {
		out.Actual = &v1.Usage{CostMicros: deref(r.CostMicros), InputTokens: deref(r.InputTokens), OutputTokens: deref(r.OutputTokens)}
	}
	if r.Status != "blocked" {
		out.WorkflowId = lifecycle.RunWorkflowID(r.ID)
	}
	out.BlockedByPolicyRuleId = deref(r.BlockedByRule)
	out.DeadLetterTime, out.DeadLetterError = tsp(r.DeadLetteredAt), r.DeadLetterError
	out.RetryOf = deref(r.RetryOf)
	return out
}

// runStatusOf is a run's status as the API shows it: a reported run that is not settled
// yet is SETTLING.
func runStatusOf(r dbsqlc.Run) v1.RunStatus {
	if r.Status == "admitted" && r.ReportedAt != nil {
		return v1.RunStatus_RUN_STATUS_SETTLING
	}
	return runStatusEnums[r.Status]
}

func costRecordProto(c dbsqlc.CostRecord) *v1.CostRecord {
	return &v1.CostRecord{
		Id: c.ID, RunId: c.RunID, ProjectId: c.ProjectID, AgentId: c.AgentID, ApiKeyId: c.ApiKeyID, Model: c.Model,
		Feature: c.Feature, CostMicros: c.CostMicros, InputTokens: c.InputTokens, OutputTokens: c.OutputTokens,
		RunStatus: runStatusEnums[c.RunStatus], RecordTime: ts(c.RecordedAt),
	}
}

func (s *runService) AdmitRun(ctx context.Context, req *connect.Request[v1.AdmitRunRequest]) (*connect.Response[v1.AdmitRunResponse], error) {
	m := req.Msg
	res, err := s.admitter.Admit(ctx, runs.AdmitRequest{
		Caller: principal(ctx), RequestID: actor.RequestID(ctx), AgentID: m.AgentId, Model: m.Model, Feature: m.Feature,
		Tags: m.Tags, ClientRunID: m.ClientRunId, Lease: m.Lease.AsDuration(), RetryOf: m.RetryOf,
		Estimate: runs.Estimate{CostMicros: m.Estimate.GetCostMicros(), InputTokens: m.Estimate.GetInputTokens(), OutputTokens: m.Estimate.GetOutputTokens()},
	})
	if err != nil {
		return nil, runsError(err)
	}
	checks := checksProto(runs.Records(res.Decision.Checks))
	switch {
	case res.PolicyRule != nil:
		return nil, policyBlockedError(res)
	case res.IsBlocked():
		return nil, blockedError(res, checks)
	}
	return connect.NewResponse(&v1.AdmitRunResponse{Run: runProto(res.Run), Checks: checks, Replayed: res.Replayed}), nil
}

// blockedError is the ResourceExhausted error of a refused admission: which limit, how
// much is used and reserved, and when it resets, as a RunBlocked detail (plus the standard
// ErrorInfo and RetryInfo, which generic clients understand).
func blockedError(res runs.AdmitResult, checks []*v1.LimitCheck) error {
	b := runs.Record(*res.Decision.Blocking)
	name := b.LimitID
	if b.LimitName != "" {
		name = fmt.Sprintf("%q (%s)", b.LimitName, b.LimitID)
	}
	msg := fmt.Sprintf("run blocked by the %s %s limit %s of %s on %s %s: used %s, reserved %s, this run needs %s, %s left; resets at %s",
		b.Window, b.Metric, name, formatAmount(b.Metric, b.Limit), b.ScopeType, b.ScopeID,
		formatAmount(b.Metric, b.Used), formatAmount(b.Metric, b.Reserved), formatAmount(b.Metric, b.Requested),
		formatAmount(b.Metric, b.Remaining), b.ResetTime.Format(time.RFC3339))
	if b.Metric == "cost" {
		msg = "budget exceeded: " + msg
	}
	err := connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("%s", msg))
	if d, derr := connect.NewErrorDetail(&v1.RunBlocked{RunId: res.Run.ID, Blocking: checkProto(b), Checks: checks, RetryTime: timestamppb.New(b.ResetTime)}); derr == nil {
		err.AddDetail(d)
	}
	if d, derr := connect.NewErrorDetail(&errdetails.ErrorInfo{Reason: "LIMIT_EXCEEDED", Domain: "governor", Metadata: map[string]string{
		"run_id": res.Run.ID, "limit_id": b.LimitID, "scope": b.ScopeType + "/" + b.ScopeID, "metric": b.Metric, "window": b.Window,
	}}); derr == nil {
		err.AddDetail(d)
	}
	retry := time.Until(b.ResetTime)
	if retry > 0 {
		if d, derr := connect.NewErrorDetail(&errdetails.RetryInfo{RetryDelay: durationpb.New(retry)}); derr == nil {
			err.AddDetail(d)
		}
		err.Meta().Set("Retry-After", fmt.Sprint(int64(math.Ceil(retry.Seconds()))))
	}
	return err
}

// policyBlockedError is the PermissionDenied error of a run a policy rule refused, with
// the rule and the incident it came from in a RunBlocked detail.
func policyBlockedError(res runs.AdmitResult) error {
	r := res.PolicyRule
	msg := fmt.Sprintf("run blocked by policy rule %s (%s)", r.ID, r.Name)
	if r.SourceIncidentID != "" {
		msg += ", which prevents the failures of incident " + r.SourceIncidentID
	}
	err := connect.NewError(connect.CodePermissionDenied, errors.New(msg))
	if d, derr := connect.NewErrorDetail(&v1.RunBlocked{RunId: res.Run.ID, PolicyRuleId: r.ID, PolicyRuleName: r.Name, PolicyIncidentId: r.SourceIncidentID}); derr == nil {
		err.AddDetail(d)
	}
	if d, derr := connect.NewErrorDetail(&errdetails.ErrorInfo{Reason: "POLICY_BLOCKED", Domain: "governor", Metadata: map[string]string{
		"run_id": res.Run.ID, "policy_rule_id": r.ID, "incident_id": r.SourceIncidentID,
	}}); derr == nil {
		err.AddDetail(d)
	}
	return err
}

func (s *runService) HeartbeatRun(ctx context.Context, req *connect.Request[v1.HeartbeatRunRequest]) (*connect.Response[v1.HeartbeatRunResponse], error) {
	lease := req.Msg.Lease.AsDuration()
	if lease <= 0 {
		lease = s.opts.RunLease
	}
	until, err := runs.Heartbeat(ctx, s.pool, principal(ctx), req.Msg.RunId, lease)
	if err != nil {
		return nil, runsError(err)
	}
	return connect.NewResponse(&v1.HeartbeatRunResponse{LeaseExpireTime: timestamppb.New(until)}), nil
}

func (s *runService) CompleteRun(ctx context.Context, req *connect.Request[v1.CompleteRunRequest]) (*connect.Response[v1.CompleteRunResponse], error) {
	m := req.Msg
	wait := m.WaitForSettlement.AsDuration()
	var sub *events.Subscription
	if wait > 0 {
		// Subscribed before the report commits, so the settlement's event cannot be missed.
		sub = s.hub.Subscribe(principal(ctx).OrgID)
		defer sub.Close()
	}
	run, err := runs.RecordReport(ctx, s.pool, principal(ctx), m.RunId, runs.Report{
		Status: runStatusNames[m.Status], InputTokens: m.InputTokens, OutputTokens: m.OutputTokens, CostMicros: m.CostMicros,
		LatencyMs: m.LatencyMs, ErrorCode: m.ErrorCode, ErrorMessage: m.ErrorMessage,
	})
	if err != nil {
		return nil, runsError(err)
	}
	s.wakeRelay()
	if wait > 0 && run.SettledAt == nil {
		if run, err = s.waitSettled(ctx, sub, run, wait); err != nil {
			return nil, err
		}
	}
	return connect.NewResponse(&v1.CompleteRunResponse{Run: runProto(run), Settled: run.SettledAt != nil}), nil
}

// waitSettled waits until run is settled or wait has passed, and returns it as it stands.
// It wakes on the settlement's event, and also looks every second in case the event
// stream had to resynchronize.
func (s *runService) waitSettled(ctx context.Context, sub *events.Subscription, run dbsqlc.Run, wait time.Duration) (dbsqlc.Run, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	look := time.NewTicker(time.Second)
	defer look.Stop()
	for {
		select {
		case <-ctx.Done():
			return s.reread(context.WithoutCancel(ctx), run)
		case e := <-sub.C:
			if e.EntityType != "run" || e.EntityID != run.ID || e.Domain != events.DomainRuns {
				continue
			}
		case <-sub.Resync:
		case <-look.C:
		}
		cur, err := s.reread(ctx, run)
		if err != nil || cur.SettledAt != nil {
			return cur, err
		}
	}
}

func (s *runService) reread(ctx context.Context, run dbsqlc.Run) (dbsqlc.Run, error) {
	return q.RunGet(ctx, s.pool, dbsqlc.RunGetParams{OrgID: run.OrgID, ID: run.ID})
}

func (s *runService) RetrySettlement(ctx context.Context, req *connect.Request[v1.RetrySettlementRequest]) (*connect.Response[v1.RetrySettlementResponse], error) {
	run, err := runs.RetrySettlement(ctx, s.pool, principal(ctx), actor.RequestID(ctx), req.Msg.RunId)
	if err != nil {
		return nil, runsError(err)
	}
	s.wakeRelay()
	return connect.NewResponse(&v1.RetrySettlementResponse{Run: runProto(run)}), nil
}

func (s *runService) GetRun(ctx context.Context, req *connect.Request[v1.GetRunRequest]) (*connect.Response[v1.GetRunResponse], error) {
	r, err := q.RunGet(ctx, s.pool, dbsqlc.RunGetParams{OrgID: principal(ctx).OrgID, ID: req.Msg.Id})
	if err != nil {
		return nil, notFoundOr(err, "run %s not found", req.Msg.Id)
	}
	return connect.NewResponse(&v1.GetRunResponse{Run: runProto(r)}), nil
}

func (s *runService) ListRuns(ctx context.Context, req *connect.Request[v1.ListRunsRequest]) (*connect.Response[v1.ListRunsResponse], error) {
	m := req.Msg
	cur, err := decodeCursor(m.PageToken)
	if err != nil {
		return nil, err
	}
	size := pageSize(m.PageSize)
	statuses := []string{}
	for _, st := range m.Statuses {
		statuses = append(statuses, runStatusNames[st])
	}
	bt, bid := time.UnixMicro(cur.Time), cur.ID
	if m.PageToken == "" {
		bt, bid = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), ""
	}
	if bid == "" {
		bid = "~" // sorts after every id
	}
	rows, err := q.RunList(ctx, s.pool, dbsqlc.RunListParams{
		OrgID: principal(ctx).OrgID, Statuses: statuses, AgentID: m.AgentId, ProjectID: m.ProjectId, ApiKeyID: m.ApiKeyId,
		Model: m.Model, Feature: m.Feature, StartTime: optTime(m.StartTime), EndTime: optTime(m.EndTime),
		BeforeTime: bt, BeforeID: bid, Max: size + 1,
	})
	if err != nil {
		return nil, err
	}
	rows, more := page(rows, size)
	out := &v1.ListRunsResponse{}
	for _, r := range rows {
		out.Runs = append(out.Runs, runProto(r))
	}
	if more {
		last := rows[len(rows)-1]
		out.NextPageToken = encodeCursor(cursor{Time: last.AdmittedAt.UnixMicro(), ID: last.ID})
	}
	return connect.NewResponse(out), nil
}

func (s *runService) GetRunCost(ctx context.Context, req *connect.Request[v1.GetRunCostRequest]) (*connect.Response[v1.GetRunCostResponse], error) {
	org := principal(ctx).OrgID
	r, err := q.RunGet(ctx, s.pool, dbsqlc.RunGetParams{OrgID: org, ID: req.Msg.RunId})
	if err != nil {
		return nil, notFoundOr(err, "run %s not found", req.Msg.RunId)
	}
	out := &v1.GetRunCostResponse{Settled: r.SettledAt != nil}
	c, err := q.CostRecordForRun(ctx, s.pool, dbsqlc.CostRecordForRunParams{OrgID: org, RunID: r.ID})
	switch {
	case err == nil:
		out.Cost = costRecordProto(c)
	case !errors.Is(db.NotFound(err), db.ErrNotFound):
		return nil, err
	}
	return connect.NewResponse(out), nil
}

func (s *runService) ListCostRecords(ctx context.Context, req *connect.Request[v1.ListCostRecordsRequest]) (*connect.Response[v1.ListCostRecordsResponse], error) {
	m := req.Msg
	cur, err := decodeCursor(m.PageToken)
	if err != nil {
		return nil, err
	}
	size := pageSize(m.PageSize)
	org := principal(ctx).OrgID
	start, end := optTime(m.StartTime), optTime(m.EndTime)
	rows, err := q.CostRecordList(ctx, s.pool, dbsqlc.CostRecordListParams{
		OrgID: org, AgentID: m.AgentId, ApiKeyID: m.ApiKeyId, ProjectID: m.ProjectId, Model: m.Model, Feature: m.Feature,
		StartTime: start, EndTime: end, AfterTime: time.UnixMicro(cur.Time), AfterID: cur.ID, Max: size + 1,
	})
	if err != nil {
		return nil, err
	}
	tot, err := q.CostRecordTotals(ctx, s.pool, dbsqlc.CostRecordTotalsParams{
		OrgID: org, AgentID: m.AgentId, ApiKeyID: m.ApiKeyId, ProjectID: m.ProjectId, Model: m.Model, Feature: m.Feature,
		StartTime: start, EndTime: end,
	})
	if err != nil {
		return nil, err
	}
	rows, more := page(rows, size)
	out := &v1.ListCostRecordsResponse{TotalCostMicros: tot.CostMicros, TotalInputTokens: tot.InputTokens,
		TotalOutputTokens: tot.OutputTokens, RecordCount: tot.Records}
	for _, c := range rows {
		out.Records = append(out.Records, costRecordProto(c))
	}
	if more {
		last := rows[len(rows)-1]
		out.NextPageToken = encodeCursor(cursor{Time: last.RecordedAt.UnixMicro(), ID: last.ID})
	}
	return connect.NewResponse(out), nil
}
