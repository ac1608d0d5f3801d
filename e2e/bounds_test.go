package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/lifecycle"
)

func errorInfo(t *testing.T, err error) *errdetails.ErrorInfo {
	t.Helper()
	var ce *connect.Error
	require.True(t, errors.As(err, &ce), "%v", err)
	for _, d := range ce.Details() {
		if v, derr := d.Value(); derr == nil {
			if info, ok := v.(*errdetails.ErrorInfo); ok {
				return info
			}
		}
	}
	t.Fatalf("no ErrorInfo detail in %v", err)
	return nil
}

// The review's critical finding: one ingest key could disable any budget because the cost
// arithmetic wrapped. Every attack it listed is refused now, with the field named, and the
// organization keeps admitting normally afterwards.
func TestHostileNumbersCannotBreakABudget(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "attacker")
	ctx := context.Background()
	lim := tn.createLimit(t, &v1.CreateLimitRequest{Name: "$10 a day", Scope: orgScope(),
		Metric: v1.LimitMetric_LIMIT_METRIC_COST, Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 10 * dollar})

	// An estimate of int64-max used to be admitted and then broke every later admission.
	_, err := ag.ingest.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: ag.agentID,
		Estimate: &v1.Estimate{CostMicros: math.MaxInt64}}))
	requireInvalidField(t, err, "estimate.cost_micros")
	// Token estimates of 2.5e11 were priced at 41 µ$ by a wrapped product; they cost
	// $625,000 and the $10 budget refuses them.
	_, err = ag.ingest.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: ag.agentID, Model: "gpt-4o",
		Estimate: &v1.Estimate{InputTokens: 250_000_000_000}}))
	rb := blockedDetail(t, err)
	require.EqualValues(t, 625_000*dollar, rb.Blocking.Requested)
	_, err = ag.ingest.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: ag.agentID, Model: "gpt-4o",
		Estimate: &v1.Estimate{InputTokens: 4_000_000_000_000}}))
	requireInvalidField(t, err, "estimate.input_tokens")

	// A run admitted normally cannot report a cost that wraps, or tokens that do.
	run, err := admit(t, ag.ingest, ag.agentID, 1*dollar)
	require.NoError(t, err)
	_, err = ag.ingest.runs.CompleteRun(ctx, connect.NewRequest(&v1.CompleteRunRequest{RunId: run.Id,
		Status: v1.RunStatus_RUN_STATUS_SUCCEEDED, InputTokens: 4_000_000_000_000}))
	requireInvalidField(t, err, "input_tokens")
	huge := int64(5e18)
	_, err = ag.ingest.runs.CompleteRun(ctx, connect.NewRequest(&v1.CompleteRunRequest{RunId: run.Id,
		Status: v1.RunStatus_RUN_STATUS_SUCCEEDED, CostMicros: &huge}))
	requireInvalidField(t, err, "cost_micros")
	// At the bounds, a price can still make tokens cost more than a run may: refused,
	// naming the field, before anything is stored.
	_, err = tn.admin.limits.SetModelPrice(ctx, connect.NewRequest(&v1.SetModelPriceRequest{Model: "gpt-4o",
		InputMicrosPerMillionTokens: 1_000_000_000_000, OutputMicrosPerMillionTokens: 1}))
	require.NoError(t, err)
	_, err = ag.ingest.runs.CompleteRun(ctx, connect.NewRequest(&v1.CompleteRunRequest{RunId: run.Id,
		Status: v1.RunStatus_RUN_STATUS_SUCCEEDED, InputTokens: 1_000_000_000_000}))
	requireInvalidField(t, err, "input_tokens")
	// The honest report settles, and the counter holds exactly what was spent.
	complete(t, ag.ingest, run.Id, v1.RunStatus_RUN_STATUS_SUCCEEDED, 3*dollar)
	settled := waitSettled(t, tn.admin, run.Id)
	require.EqualValues(t, 3*dollar, settled.Actual.CostMicros)

	// The organization still admits, and the budget still holds: $3 used, $8 refused.
	_, err = admit(t, ag.ingest, ag.agentID, 8*dollar)
	rb = blockedDetail(t, err)
	require.Equal(t, lim.Id, rb.Blocking.LimitId)
	require.EqualValues(t, 3*dollar, rb.Blocking.Used)
	ok, err := admit(t, ag.ingest, ag.agentID, 7*dollar)
	require.NoError(t, err)
	require.Equal(t, v1.RunStatus_RUN_STATUS_ADMITTED, ok.Status)

	// Limits are bounded too.
	_, err = tn.admin.limits.CreateLimit(ctx, connect.NewRequest(&v1.CreateLimitRequest{Scope: orgScope(),
		Metric: v1.LimitMetric_LIMIT_METRIC_TOKENS, Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: math.MaxInt64}))
	requireInvalidField(t, err, "amount")
	big := int64(math.MaxInt64)
	_, err = tn.admin.limits.UpdateLimit(ctx, connect.NewRequest(&v1.UpdateLimitRequest{Id: lim.Id, Amount: &big}))
	requireInvalidField(t, err, "amount")
}

// A model with no price is not silently free: under a cost limit, tokens alone are refused
// at admission and at completion with FailedPrecondition naming the model and the fix;
// with a price (or a cost given) the same run goes through.
func TestUnpricedModelsAreNotFreeUnderACostLimit(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "finetuned")
	ctx := context.Background()

	// No cost limit: tokens of an unpriced model are admitted (nothing to protect).
	free, err := ag.ingest.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: ag.agentID, Model: "my-finetune",
		Estimate: &v1.Estimate{InputTokens: 1000}}))
	require.NoError(t, err)

	lim := tn.createLimit(t, &v1.CreateLimitRequest{Name: "monthly", Scope: orgScope(),
		Metric: v1.LimitMetric_LIMIT_METRIC_COST, Window: v1.LimitWindow_LIMIT_WINDOW_MONTH, Amount: 100 * dollar})
	_, err = ag.ingest.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: ag.agentID, Model: "my-finetune",
		Estimate: &v1.Estimate{InputTokens: 1000, OutputTokens: 10}}))
	requireCode(t, connect.CodeFailedPrecondition, err)
	require.Contains(t, err.Error(), `model "my-finetune" has no price`)
	require.Contains(t, err.Error(), "SetModelPrice")
	require.Contains(t, err.Error(), lim.Id)
	info := errorInfo(t, err)
	require.Equal(t, "MODEL_UNPRICED", info.Reason)
	require.Equal(t, "my-finetune", info.Metadata["model"])
	// CheckLimits says the same as admission would.
	_, err = ag.ingest.limits.CheckLimits(ctx, connect.NewRequest(&v1.CheckLimitsRequest{AgentId: ag.agentID, Model: "my-finetune",
		Estimate: &v1.Estimate{InputTokens: 1000}}))
	requireCode(t, connect.CodeFailedPrecondition, err)

	// Giving the cost works; completing with tokens alone does not.
	run, err := ag.ingest.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: ag.agentID, Model: "my-finetune",
		Estimate: &v1.Estimate{CostMicros: dollar, InputTokens: 1000}}))
	require.NoError(t, err)
	_, err = ag.ingest.runs.CompleteRun(ctx, connect.NewRequest(&v1.CompleteRunRequest{RunId: run.Msg.Run.Id,
		Status: v1.RunStatus_RUN_STATUS_SUCCEEDED, InputTokens: 2000, OutputTokens: 100}))
	requireCode(t, connect.CodeFailedPrecondition, err)
	require.Contains(t, err.Error(), "give cost_micros")

	// Once priced, tokens become cost at admission and at settlement.
	_, err = tn.admin.limits.SetModelPrice(ctx, connect.NewRequest(&v1.SetModelPriceRequest{Model: "my-finetune",
		InputMicrosPerMillionTokens: 2 * dollar, OutputMicrosPerMillionTokens: 8 * dollar}))
	require.NoError(t, err)
	_, err = ag.ingest.runs.CompleteRun(ctx, connect.NewRequest(&v1.CompleteRunRequest{RunId: run.Msg.Run.Id,
		Status: v1.RunStatus_RUN_STATUS_SUCCEEDED, InputTokens: 1_000_000, OutputTokens: 100_000}))
	require.NoError(t, err)
	settled := waitSettled(t, tn.admin, run.Msg.Run.Id)
	require.EqualValues(t, 2*dollar+800_000, settled.Actual.CostMicros)
	priced, err := ag.ingest.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: ag.agentID, Model: "my-finetune",
		Estimate: &v1.Estimate{InputTokens: 1_000_000}}))
	require.NoError(t, err)
	require.EqualValues(t, 2*dollar, priced.Msg.Run.Estimate.CostMicros)

	// The run admitted before the limit existed holds no cost reservation: its report is
	// accepted and settled at the (now known) price.
	_, err = ag.ingest.runs.CompleteRun(ctx, connect.NewRequest(&v1.CompleteRunRequest{RunId: free.Msg.Run.Id,
		Status: v1.RunStatus_RUN_STATUS_SUCCEEDED, InputTokens: 500_000}))
	require.NoError(t, err)
	require.EqualValues(t, dollar, waitSettled(t, tn.admin, free.Msg.Run.Id).Actual.CostMicros)
}

// The database refuses impossible states even if a code path forgot a check.
func TestTheDatabaseRefusesNegativeMoney(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "checked")
	ctx := context.Background()
	tn.createLimit(t, &v1.CreateLimitRequest{Scope: orgScope(), Metric: v1.LimitMetric_LIMIT_METRIC_COST,
		Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 10 * dollar})
	run, err := admit(t, ag.ingest, ag.agentID, dollar)
	require.NoError(t, err)
	for _, stmt := range []string{
		`UPDATE limit_counters SET used = -1 WHERE limit_id IN (SELECT id FROM limits WHERE org_id = $1)`,
		`UPDATE limit_counters SET reserved = -1 WHERE limit_id IN (SELECT id FROM limits WHERE org_id = $1)`,
		`UPDATE limit_counters SET used = 9000000000000000000 WHERE limit_id IN (SELECT id FROM limits WHERE org_id = $1)`,
		`UPDATE runs SET est_cost_micros = -5 WHERE org_id = $1`,
		`UPDATE runs SET cost_micros = -5 WHERE org_id = $1`,
		`UPDATE run_reservations SET amount = -5 WHERE run_id IN (SELECT id FROM runs WHERE org_id = $1)`,
		`UPDATE limits SET amount = 9000000000000000000 WHERE org_id = $1`,
	} {
		_, err := tn.pool.Exec(ctx, stmt, tn.org.Organization.Id)
		require.Error(t, err, stmt)
		require.Contains(t, err.Error(), "violates check constraint", stmt)
	}
	complete(t, ag.ingest, run.Id, v1.RunStatus_RUN_STATUS_SUCCEEDED, dollar)
	require.EqualValues(t, dollar, waitSettled(t, tn.admin, run.Id).Actual.CostMicros)
}

// A settlement that can never succeed is dead-lettered after its retries instead of
// retried forever: the run shows it, the ledger and timeline record it with the system as
// actor, people get an in-app alert, /metrics counts it, and an operator's retry settles
// it exactly once after the cause is fixed.
func TestASettlementThatCannotSucceedIsDeadLetteredAndRetryable(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "doomed")
	ctx := context.Background()
	lim := tn.createLimit(t, &v1.CreateLimitRequest{Scope: orgScope(), Metric: v1.LimitMetric_LIMIT_METRIC_COST,
		Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 10 * dollar})
	run, err := admit(t, ag.ingest, ag.agentID, 2*dollar)
	require.NoError(t, err)

	// The fault: this run's cost record cannot be written (a value out of range, as the
	// old wrapped arithmetic produced), whatever the retry.
	fn := "fail_cost_record_" + strings.ToLower(run.Id)
	_, err = tn.pool.Exec(ctx, fmt.Sprintf(`CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.run_id = '%s' THEN RAISE EXCEPTION 'injected: bigint out of range' USING ERRCODE = '22003'; END IF; RETURN NEW; END $$`, fn, run.Id))
	require.NoError(t, err)
	_, err = tn.pool.Exec(ctx, fmt.Sprintf(`CREATE TRIGGER %s BEFORE INSERT ON cost_records FOR EACH ROW EXECUTE FUNCTION %s()`, fn, fn))
	require.NoError(t, err)
	dropped := false
	dropFault := func() {
		if !dropped {
			_, err := tn.pool.Exec(context.Background(), fmt.Sprintf(`DROP TRIGGER %s ON cost_records; DROP FUNCTION %s()`, fn, fn))
			require.NoError(t, err)
			dropped = true
		}
	}
	t.Cleanup(dropFault)

	complete(t, ag.ingest, run.Id, v1.RunStatus_RUN_STATUS_SUCCEEDED, 3*dollar)
	var got *v1.Run
	eventually(t, patience, func() bool {
		r, err := tn.admin.runs.GetRun(ctx, connect.NewRequest(&v1.GetRunRequest{Id: run.Id}))
		if err != nil {
			return false
		}
		got = r.Msg.Run
		return got.DeadLetterTime != nil
	}, "the settlement is dead-lettered")
	require.Nil(t, got.SettleTime)
	require.Contains(t, got.DeadLetterError, "bigint out of range")

	// Its reservation still counts: releasing it without charging could overspend.
	chk, err := tn.admin.limits.CheckLimits(ctx, connect.NewRequest(&v1.CheckLimitsRequest{AgentId: ag.agentID, ApiKeyId: ag.keyID,
		Estimate: &v1.Estimate{CostMicros: 1}}))
	require.NoError(t, err)
	require.EqualValues(t, 2*dollar, chk.Msg.Checks[0].Reserved)

	// Visible: the Temporal UI (search attribute), the timeline, the ledger, an in-app
	// alert and /metrics.
	eventually(t, patience, func() bool {
		return workflowStatus(t, tn.temporal, "run/"+run.Id) == "dead_letter"
	})
	evs, err := tn.admin.timeline.ListEvents(ctx, connect.NewRequest(&v1.ListEventsRequest{
		Filter: &v1.EventFilter{Types: []string{"run_settlement_dead_lettered"}, CorrelationId: run.Id}}))
	require.NoError(t, err)
	require.Len(t, evs.Msg.Events, 1)
	require.Equal(t, v1.ActorKind_ACTOR_KIND_SYSTEM, evs.Msg.Events[0].Actor.Kind)
	entries, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{
		Action: "run.settlement_dead_lettered", EntityId: run.Id}))
	require.NoError(t, err)
	require.Len(t, entries.Msg.Entries, 1)
	require.Equal(t, "workflow:run/"+run.Id, entries.Msg.Entries[0].Actor.System)
	eventually(t, patience, func() bool {
		n, err := tn.admin.alerts.ListNotifications(ctx, connect.NewRequest(&v1.ListNotificationsRequest{}))
		if err != nil {
			return false
		}
		for _, x := range n.Msg.Notifications {
			if x.Kind == v1.AlertKind_ALERT_KIND_SETTLEMENT_FAILED && x.Entity.GetId() == run.Id {
				return strings.Contains(x.Body, "RetrySettlement")
			}
		}
		return false
	}, "an in-app alert says the settlement failed")
	require.GreaterOrEqual(t, metricValue(t, tn.stack, "governor_settlements_dead_lettered"), 1.0)

	// Retrying before the cause is fixed dead-letters again; an operator's retry after the
	// fix settles it, once, and only admins may retry.
	viewer, _ := tn.newUser(t, v1.Role_ROLE_VIEWER)
	_, err = viewer.runs.RetrySettlement(ctx, connect.NewRequest(&v1.RetrySettlementRequest{RunId: run.Id}))
	requireCode(t, connect.CodePermissionDenied, err)
	dropFault()
	retried, err := tn.admin.runs.RetrySettlement(ctx, connect.NewRequest(&v1.RetrySettlementRequest{RunId: run.Id}))
	require.NoError(t, err)
	require.Nil(t, retried.Msg.Run.DeadLetterTime)
	settled := waitSettled(t, tn.admin, run.Id)
	require.EqualValues(t, 3*dollar, settled.Actual.CostMicros)
	require.Empty(t, settled.DeadLetterError)
	_, err = tn.admin.runs.RetrySettlement(ctx, connect.NewRequest(&v1.RetrySettlementRequest{RunId: run.Id}))
	requireCode(t, connect.CodeFailedPrecondition, err)
	costs, err := tn.admin.runs.ListCostRecords(ctx, connect.NewRequest(&v1.ListCostRecordsRequest{}))
	require.NoError(t, err)
	require.EqualValues(t, 1, costs.Msg.RecordCount, "settled exactly once")
	chk, err = tn.admin.limits.CheckLimits(ctx, connect.NewRequest(&v1.CheckLimitsRequest{AgentId: ag.agentID, ApiKeyId: ag.keyID,
		Estimate: &v1.Estimate{CostMicros: 1}}))
	require.NoError(t, err)
	require.Equal(t, lim.Id, chk.Msg.Checks[0].LimitId)
	require.EqualValues(t, 3*dollar, chk.Msg.Checks[0].Used)
	require.EqualValues(t, 0, chk.Msg.Checks[0].Reserved)
	eventually(t, patience, func() bool {
		return workflowStatus(t, tn.temporal, "run/"+run.Id) == "succeeded"
	})
}

// metricValue reads one unlabelled gauge from the API's /metrics.
func metricValue(t *testing.T, s *stack, name string) float64 {
	t.Helper()
	resp, err := s.http.Get(s.baseURL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			_, err := fmt.Sscan(v, &f)
			require.NoError(t, err)
			return f
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// workflowStatus is a workflow's GovernorStatus search attribute, as the Temporal UI
// shows it ("" when unset or the workflow is unknown).
func workflowStatus(t *testing.T, c client.Client, workflowID string) string {
	t.Helper()
	return workflowAttr(c, workflowID, lifecycle.SearchStatus.GetName())
}

// workflowAttr is one keyword search attribute of a workflow ("" when unset or unknown).
func workflowAttr(c client.Client, workflowID, name string) string {
	d, err := c.DescribeWorkflowExecution(context.Background(), workflowID, "")
	if err != nil {
		return ""
	}
	var v string
	if p := d.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()[name]; p != nil {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &v)
	}
	return v
}
