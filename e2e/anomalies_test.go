package e2e

import (
	"context"
	"math"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/ids"
)

// seedDay writes n settled runs (and their cost records) of an agent on a past day, as
// the run lifecycle would have: cost, tokens and latency per run, the first `failed` runs
// failed.
func seedDay(t *testing.T, tn *tenant, ag agentKit, day time.Time, n int, costMicros int64, failed int, latencyMs int64) {
	t.Helper()
	b := &pgx.Batch{}
	at := day.Add(12 * time.Hour)
	for i := range n {
		runID, status := ids.New(ids.Run), "succeeded"
		if i < failed {
			status = "failed"
		}
		b.Queue(`INSERT INTO runs (org_id, id, project_id, agent_id, api_key_id, model, feature, status, admitted_at, settled_at,
		           reported_at, reported_status, cost_micros, input_tokens, output_tokens, latency_ms)
		         VALUES ($1, $2, $3, $4, $5, 'gpt-4o', 'chat', $6, $7, $7, $7, $6, $8, 1000, 200, $9)`,
			tn.org.Organization.Id, runID, ag.projectID, ag.agentID, ag.keyID, status, at, costMicros, latencyMs)
		b.Queue(`INSERT INTO cost_records (org_id, id, run_id, project_id, agent_id, api_key_id, model, feature, cost_micros,
		           input_tokens, output_tokens, run_status, recorded_at, latency_ms)
		         VALUES ($1, $2, $3, $4, $5, $6, 'gpt-4o', 'chat', $7, 1000, 200, $8, $9, $10)`,
			tn.org.Organization.Id, ids.New(ids.CostRecord), runID, ag.projectID, ag.agentID, ag.keyID, costMicros, status, at, latencyMs)
	}
	require.NoError(t, tn.pool.SendBatch(context.Background(), b).Close())
}

// runDetection asks for detection and waits for it to finish.
func runDetection(t *testing.T, tn *tenant, day string) *v1.AnomalyDetectionRun {
	t.Helper()
	ctx := context.Background()
	resp, err := tn.admin.anomalies.RunAnomalyDetection(ctx, connect.NewRequest(&v1.RunAnomalyDetectionRequest{Day: day}))
	require.NoError(t, err)
	run := resp.Msg.Run
	require.Equal(t, "anomaly-batch/"+tn.org.Organization.Id+"/"+run.Id, run.WorkflowId)
	eventually(t, patience, func() bool {
		r, err := tn.admin.anomalies.GetAnomalyDetectionRun(ctx, connect.NewRequest(&v1.GetAnomalyDetectionRunRequest{Id: run.Id}))
		require.NoError(t, err)
		run = r.Msg.Run
		return run.Status == v1.AnomalyRunStatus_ANOMALY_RUN_STATUS_SUCCEEDED || run.Status == v1.AnomalyRunStatus_ANOMALY_RUN_STATUS_FAILED
	})
	require.Equal(t, v1.AnomalyRunStatus_ANOMALY_RUN_STATUS_SUCCEEDED, run.Status, run.Error)
	return run
}

func (tn *tenant) anomaliesOf(t *testing.T, types ...v1.AnomalyType) []*v1.Anomaly {
	t.Helper()
	resp, err := tn.admin.anomalies.ListAnomalies(context.Background(), connect.NewRequest(&v1.ListAnomaliesRequest{Types: types, PageSize: 500}))
	require.NoError(t, err)
	return resp.Msg.Anomalies
}

// Seed 000, Scenario 4 (budget breach escalation): a monthly budget of $1000; spend
// reaches $1050; anomaly detection runs; a BUDGET_EXCEEDED anomaly is created; an
// incident is opened from it (linked both ways); the console shows a "Budget exceeded"
// notification; the customer's webhook fired. Running detection again changes nothing.
func TestScenario4BudgetBreachEscalation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "Europe/Paris")
	ag := tn.newAgent(t, "big spender")
	hook := newReceiver(t)
	ch := tn.webhookChannel(t, hook, "customer endpoint", nil) // no routes: high and critical go to every webhook
	lim := tn.createLimit(t, &v1.CreateLimitRequest{Name: "monthly budget", Scope: orgScope(), Metric: v1.LimitMetric_LIMIT_METRIC_COST,
		Window: v1.LimitWindow_LIMIT_WINDOW_MONTH, Amount: 1000 * dollar})

	// Ten runs estimated at $1 each cost $105 each: $1050.
	for range 10 {
		spend(t, tn, ag, 105*dollar)
	}
	eff, err := tn.admin.limits.CheckLimits(ctx, connect.NewRequest(&v1.CheckLimitsRequest{AgentId: ag.agentID, Estimate: &v1.Estimate{CostMicros: 1}}))
	require.NoError(t, err)
	require.EqualValues(t, 1050*dollar, eff.Msg.Checks[0].Used)

	run := runDetection(t, tn, "")
	require.EqualValues(t, 1, run.AnomaliesFound)
	budget := tn.anomaliesOf(t, v1.AnomalyType_ANOMALY_TYPE_BUDGET_EXCEEDED)
	require.Len(t, budget, 1)
	an := budget[0]
	require.Equal(t, lim.Id, an.LimitId)
	require.Equal(t, v1.AnomalyMethod_ANOMALY_METHOD_BUDGET, an.Method)
	require.Equal(t, v1.AnomalySeverity_ANOMALY_SEVERITY_HIGH, an.Severity)
	require.EqualValues(t, 1000*dollar, an.Baseline)
	require.EqualValues(t, 1050*dollar, an.Observed)
	require.InDelta(t, 5.0, an.Deviation, 0.001, "5% over")
	require.NotEmpty(t, an.RunId)
	require.NotEmpty(t, an.IncidentId)
	require.NotEmpty(t, an.AlertId)

	// The incident, opened from the anomaly, points back at it.
	inc, err := tn.admin.incidents.GetIncident(ctx, connect.NewRequest(&v1.GetIncidentRequest{Id: an.IncidentId}))
	require.NoError(t, err)
	require.Equal(t, v1.IncidentCategory_INCIDENT_CATEGORY_BUDGET_EXCEEDED, inc.Msg.Incident.Category)
	require.Equal(t, "anomaly", inc.Msg.Incident.SourceType)
	require.Equal(t, an.Id, inc.Msg.Incident.SourceId)
	linked, err := tn.admin.anomalies.ListAnomalies(ctx, connect.NewRequest(&v1.ListAnomaliesRequest{IncidentId: an.IncidentId}))
	require.NoError(t, err)
	require.Len(t, linked.Msg.Anomalies, 1)

	// "Budget exceeded" in the console, and at the customer's endpoint (once).
	var note *v1.Notification
	for _, n := range tn.notifications(t) {
		if n.Kind == v1.AlertKind_ALERT_KIND_BUDGET_EXCEEDED {
			note = n
		}
	}
	require.NotNil(t, note)
	require.Contains(t, note.Title, "Budget exceeded")
	require.Contains(t, note.Title, "$1,050.00 of $1,000.00")
	require.Equal(t, an.AlertId, note.AlertId)
	var fired []received
	eventually(t, patience, func() bool {
		fired = nil
		for _, g := range hook.successes() {
			if g.Payload.Type == "alert.budget_exceeded" {
				fired = append(fired, g)
			}
		}
		return len(fired) == 1
	})
	require.Equal(t, an.AlertId, fired[0].Payload.Data.ID)

	// Idempotent: the same batch again creates nothing.
	again := runDetection(t, tn, "")
	require.EqualValues(t, 1, again.AnomaliesFound)
	require.EqualValues(t, 0, again.AnomaliesCreated)
	require.Len(t, tn.anomaliesOf(t, v1.AnomalyType_ANOMALY_TYPE_BUDGET_EXCEEDED), 1)
	incs, err := tn.admin.incidents.ListIncidents(ctx, connect.NewRequest(&v1.ListIncidentsRequest{
		Categories: []v1.IncidentCategory{v1.IncidentCategory_INCIDENT_CATEGORY_BUDGET_EXCEEDED}}))
	require.NoError(t, err)
	require.Len(t, incs.Msg.Incidents, 1)
	// The second batch raised nothing new, and the one alert's delivery is over with
	// nothing owed: the receiver cannot get it again.
	raised := tn.alertsOf(t, v1.AlertKind_ALERT_KIND_BUDGET_EXCEEDED)
	require.Len(t, raised, 1)
	require.Equal(t, an.AlertId, raised[0].Id)
	tn.waitDeliveriesDone(t, an.AlertId, ch.Id)
	n := 0
	for _, g := range hook.all() {
		if g.Payload.Type == "alert.budget_exceeded" {
			n++
		}
	}
	require.Equal(t, 1, n, "the webhook fired once")

	// Audited: who asked for detection.
	entries, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{Action: "anomaly_detection.run"}))
	require.NoError(t, err)
	require.Len(t, entries.Msg.Entries, 2)
}

// A budget lowered below what was already spent: no settlement crossed it, so only the
// batch notices. It records the anomaly, opens the incident and raises the alert itself.
func TestBatchFindsABudgetLoweredBelowSpend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "spender")
	lim := tn.createLimit(t, &v1.CreateLimitRequest{Name: "daily budget", Scope: orgScope(), Metric: v1.LimitMetric_LIMIT_METRIC_COST,
		Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 100 * dollar, AlertThresholdsPercent: []int32{50}})
	spend(t, tn, ag, 60*dollar)
	amount := int64(40 * dollar)
	_, err := tn.admin.limits.UpdateLimit(ctx, connect.NewRequest(&v1.UpdateLimitRequest{Id: lim.Id, Amount: &amount}))
	require.NoError(t, err)
	require.Empty(t, tn.alertsOf(t, v1.AlertKind_ALERT_KIND_BUDGET_EXCEEDED))

	runDetection(t, tn, "")
	an := tn.anomaliesOf(t, v1.AnomalyType_ANOMALY_TYPE_BUDGET_EXCEEDED)
	require.Len(t, an, 1)
	require.InDelta(t, 50.0, an[0].Deviation, 0.001)
	raised := tn.alertsOf(t, v1.AlertKind_ALERT_KIND_BUDGET_EXCEEDED)
	require.Len(t, raised, 1)
	require.Equal(t, an[0].AlertId, raised[0].Id)
	related := map[string]string{}
	for _, r := range raised[0].Related {
		related[r.Type] = r.Id
	}
	require.Equal(t, an[0].Id, related["anomaly"])
	require.Equal(t, an[0].IncidentId, related["incident"])
}

// A month of steady usage for two agents, then a spike of one of them yesterday.
// Detection finds it (critical, by both methods), at the agent and at every level that
// contains it (its key, its model, the organization); one incident and one alert stand for
// all of them. Error rate and latency spikes are found too. Nothing is found for the
// steady agent; running again creates nothing.
func TestDetectionFindsAPlantedSpikeOnceWithOneIncident(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	steady := tn.newAgent(t, "steady")
	spiky := tn.newAgent(t, "spiky")
	today := time.Now().UTC().Truncate(24 * time.Hour)
	for d := 28; d >= 2; d-- {
		day := today.AddDate(0, 0, -d)
		wiggle := int64(math.Round(500_000 * math.Sin(float64(d)))) // ±$0.50
		seedDay(t, tn, steady, day, 20, (10*dollar+wiggle)/20, 0, 800)
		seedDay(t, tn, spiky, day, 20, (12*dollar-wiggle)/20, int(d%2), 1000+int64(d%3)*20)
	}
	yesterday := today.AddDate(0, 0, -1)
	seedDay(t, tn, steady, yesterday, 20, 10*dollar/20, 0, 800)
	seedDay(t, tn, spiky, yesterday, 20, 96*dollar/20, 12, 4000) // 8x cost, 60% errors, 4x latency

	run := runDetection(t, tn, "")
	require.Equal(t, []string{yesterday.Format("2006-01-02")}, run.Days)
	all := tn.anomaliesOf(t, v1.AnomalyType_ANOMALY_TYPE_METRIC_SPIKE)
	byKey := map[string]*v1.Anomaly{}
	for _, a := range all {
		require.NotEqual(t, steady.agentID, a.Entity.Id, "the steady agent is not anomalous")
		byKey[a.Entity.Type+"/"+a.Metric.String()] = a
	}
	cost := byKey["agent/ANOMALY_METRIC_COST"]
	require.NotNil(t, cost, "the agent's cost spike: %v", byKey)
	require.Equal(t, spiky.agentID, cost.Entity.Id)
	require.Equal(t, v1.AnomalySeverity_ANOMALY_SEVERITY_CRITICAL, cost.Severity)
	require.InDelta(t, 96*dollar, cost.Observed, 1)
	require.Greater(t, cost.Deviation, 5.0)
	require.Greater(t, cost.Score, int32(80))
	require.Greater(t, cost.Confidence, 0.8)
	require.Equal(t, yesterday.Format("2006-01-02"), cost.Day)
	require.NotEmpty(t, cost.IncidentId)
	require.NotEmpty(t, cost.AlertId)
	for _, k := range []string{"api_key/ANOMALY_METRIC_COST", "model/ANOMALY_METRIC_COST", "organization/ANOMALY_METRIC_COST"} {
		require.NotNil(t, byKey[k], k)
		require.Equal(t, cost.IncidentId, byKey[k].IncidentId, "%s joins the agent's incident", k)
		require.Equal(t, cost.AlertId, byKey[k].AlertId, "%s joins the agent's alert", k)
		require.Contains(t, byKey[k].ContextJson, cost.Id, "explained_by")
	}
	require.NotNil(t, byKey["agent/ANOMALY_METRIC_ERROR_RATE"])
	require.NotNil(t, byKey["agent/ANOMALY_METRIC_LATENCY"])
	require.Nil(t, byKey["agent/ANOMALY_METRIC_TOKENS"], "tokens did not change")

	inc, err := tn.admin.incidents.GetIncident(ctx, connect.NewRequest(&v1.GetIncidentRequest{Id: cost.IncidentId}))
	require.NoError(t, err)
	require.Equal(t, v1.IncidentCategory_INCIDENT_CATEGORY_COST_ANOMALY, inc.Msg.Incident.Category)
	require.Equal(t, cost.Id, inc.Msg.Incident.SourceId)
	costAlerts := 0
	for _, a := range tn.alertsOf(t, v1.AlertKind_ALERT_KIND_ANOMALY) {
		if a.Entity.Id == cost.Id {
			costAlerts++
		}
	}
	require.Equal(t, 1, costAlerts)

	again := runDetection(t, tn, "")
	require.EqualValues(t, 0, again.AnomaliesCreated)
	require.Equal(t, run.AnomaliesFound, again.AnomaliesFound)
	require.Len(t, tn.anomaliesOf(t, v1.AnomalyType_ANOMALY_TYPE_METRIC_SPIKE), len(all))
}

// Detection settings are per organization, validated and audited.
func TestAnomalyConfigIsValidatedAndAudited(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	got, err := tn.admin.anomalies.GetAnomalyConfig(ctx, connect.NewRequest(&v1.GetAnomalyConfigRequest{}))
	require.NoError(t, err)
	c := got.Msg.Config
	require.True(t, c.Enabled)
	require.Equal(t, &v1.AnomalyThresholds{Info: 2, Warning: 3, High: 4, Critical: 5}, c.Thresholds)
	require.EqualValues(t, 28, c.LookbackDays)
	require.EqualValues(t, 7, c.MinDataPoints)
	require.Len(t, c.Metrics, 4)
	require.Len(t, c.Methods, 2)

	c.Thresholds = &v1.AnomalyThresholds{Info: 3, Warning: 2, High: 4, Critical: 5}
	_, err = tn.admin.anomalies.UpdateAnomalyConfig(ctx, connect.NewRequest(&v1.UpdateAnomalyConfigRequest{Config: c}))
	requireCode(t, connect.CodeInvalidArgument, err)
	c.Thresholds = &v1.AnomalyThresholds{Info: 2.5, Warning: 3.5, High: 4.5, Critical: 6}
	c.Methods = []v1.AnomalyMethod{v1.AnomalyMethod_ANOMALY_METHOD_IQR}
	c.LookbackDays = 14
	up, err := tn.admin.anomalies.UpdateAnomalyConfig(ctx, connect.NewRequest(&v1.UpdateAnomalyConfigRequest{Config: c}))
	require.NoError(t, err)
	require.Equal(t, []v1.AnomalyMethod{v1.AnomalyMethod_ANOMALY_METHOD_IQR}, up.Msg.Config.Methods)
	require.NotNil(t, up.Msg.Config.UpdateTime)
	entries, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{Action: "anomaly_config.update"}))
	require.NoError(t, err)
	require.Len(t, entries.Msg.Entries, 1)
	require.Contains(t, entries.Msg.Entries[0].BeforeJson, `"lookback_days": 28`)
	require.Contains(t, entries.Msg.Entries[0].AfterJson, `"lookback_days": 14`)

	// A viewer reads but cannot change it.
	viewer, _ := tn.newUser(t, v1.Role_ROLE_VIEWER)
	_, err = viewer.anomalies.GetAnomalyConfig(ctx, connect.NewRequest(&v1.GetAnomalyConfigRequest{}))
	require.NoError(t, err)
	_, err = viewer.anomalies.UpdateAnomalyConfig(ctx, connect.NewRequest(&v1.UpdateAnomalyConfigRequest{Config: c}))
	requireCode(t, connect.CodePermissionDenied, err)
	_, err = viewer.anomalies.RunAnomalyDetection(ctx, connect.NewRequest(&v1.RunAnomalyDetectionRequest{}))
	requireCode(t, connect.CodePermissionDenied, err)
	_ = http.StatusOK
}
