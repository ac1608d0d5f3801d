package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/governor-hq/governor/api"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/lifecycle"
	"github.com/governor-hq/governor/internal/testenv"
)

// consoleSeed is the organization the browser test reads, with the numbers it must find on
// screen. web/e2e/run.mjs gets it as JSON.
type consoleSeed struct {
	URL           string            `json:"url"`
	TemporalUIURL string            `json:"temporalUiUrl"`
	Artifacts     string            `json:"artifacts"`
	Keys          map[string]string `json:"keys"` // role -> secret
	Emails        map[string]string `json:"emails"`
	Org           struct {
		ID       string `json:"id"`
		Name     string `json:"name"`
		TimeZone string `json:"timeZone"`
	} `json:"org"`
	Agents         map[string]string `json:"agents"`     // name -> id
	IngestKeys     map[string]string `json:"ingestKeys"` // agent name -> key id
	SpendMicros    map[string]int64  `json:"spendMicros"`
	TotalMicros    int64             `json:"totalMicros"`
	SettledRuns    int               `json:"settledRuns"`
	Runs           int               `json:"runs"`
	AgentRuns      map[string]int    `json:"agentRuns"`
	AgentMicros    map[string]int64  `json:"agentMicros"`
	FailedRunID    string            `json:"failedRunId"`
	FailedMicros   int64             `json:"failedMicros"`
	IncidentID     string            `json:"incidentId"`
	IncidentTitle  string            `json:"incidentTitle"`
	ProposalID     string            `json:"proposalId"`
	InAppChannelID string            `json:"inAppChannelId"`
	FailingChannel string            `json:"failingChannel"`
	Limits         []string          `json:"limits"`
}

// chromiumPath is the browser the test drives: Debian's Chromium (scripts/test.sh installs
// it), never one an npm package downloads.
func chromiumPath() string {
	if p := os.Getenv("GOVERNOR_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// The console in a real browser: the embedded bundle served by a real API server on a real
// PostgreSQL and Temporal, an organization seeded through the API, and web/e2e/run.mjs
// (node:test + playwright-core + axe-core) signing in as each role. Then the Go side checks
// what the browser did through the API and Temporal.
func TestConsoleInABrowser(t *testing.T) {
	// Not parallel: Chromium is heavy, and the timings it reports should be its own.
	node, err := exec.LookPath("node")
	require.NoError(t, err, "node is needed for the console's browser test (scripts/test.sh installs it)")
	_, err = os.Stat(chromiumPath())
	require.NoError(t, err, "Chromium is needed for the console's browser test: apt-get install chromium (scripts/test.sh installs it), or set GOVERNOR_CHROMIUM")
	web, err := filepath.Abs(filepath.Join("..", "web"))
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(web, "node_modules", "playwright-core"))
	require.NoError(t, err, "web/node_modules is missing: run scripts/web.sh build (scripts/test.sh does)")

	tn := newTenant(t, "America/New_York")
	srv := startConsoleAPI(t, tn)
	seed := seedConsole(t, tn, srv)

	page, err := http.Get(srv + "/activity")
	require.NoError(t, err)
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	require.Equal(t, http.StatusOK, page.StatusCode, "the binary must embed a built console (scripts/web.sh build before go test): %s", body)
	require.Contains(t, string(body), `<div id="root">`)

	seedFile := filepath.Join(t.TempDir(), "seed.json")
	b, err := json.MarshalIndent(seed, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(seedFile, b, 0o600))
	require.NoError(t, os.MkdirAll(seed.Artifacts, 0o755))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-concurrency=1", "--test-reporter=spec", "e2e/run.mjs")
	cmd.Dir = web
	cmd.Env = append(os.Environ(), "GOVERNOR_E2E_SEED="+seedFile, "GOVERNOR_CHROMIUM="+chromiumPath(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	_ = os.WriteFile(filepath.Join(seed.Artifacts, "node-test-output.txt"), out.Bytes(), 0o644)
	t.Logf("web/e2e/run.mjs:\n%s", out.String())
	require.NoError(t, runErr, "the browser tests failed (output above; screenshots in %s)", seed.Artifacts)

	// The approver approved in the browser: the proposal is approved by them, its rule is
	// active, and the incident's workflow received the decision as its signal.
	c := context.Background()
	prop, err := tn.admin.policies.GetProposal(c, connect.NewRequest(&v1.GetProposalRequest{Id: seed.ProposalID}))
	require.NoError(t, err)
	require.Equal(t, v1.ProposalStatus_PROPOSAL_STATUS_APPROVED, prop.Msg.Proposal.Status)
	require.Len(t, prop.Msg.Proposal.Decisions, 1)
	approver, err := tn.admin.accounts.ListUsers(c, connect.NewRequest(&v1.ListUsersRequest{}))
	require.NoError(t, err)
	var approverID string
	for _, u := range approver.Msg.Users {
		if u.Email == seed.Emails["approver"] {
			approverID = u.Id
		}
	}
	require.Equal(t, approverID, prop.Msg.Proposal.Decisions[0].UserId)
	require.Equal(t, "approved in the console", prop.Msg.Proposal.Decisions[0].Comment)
	rule, err := tn.admin.policies.GetPolicyRule(c, connect.NewRequest(&v1.GetPolicyRuleRequest{Id: prop.Msg.Proposal.PolicyRuleId}))
	require.NoError(t, err)
	require.Equal(t, v1.PolicyRuleStatus_POLICY_RULE_STATUS_ACTIVE, rule.Msg.Rule.Status)
	require.Eventually(t, func() bool {
		it := tn.temporal.GetWorkflowHistory(c, prop.Msg.Proposal.WorkflowId, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			e, err := it.Next()
			if err != nil {
				return false
			}
			if a := e.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.SignalName == lifecycle.SignalProposalDecision {
				for _, p := range a.GetInput().GetPayloads() {
					var d lifecycle.ProposalDecision
					if json.Unmarshal(p.GetData(), &d) == nil && d.ProposalID == seed.ProposalID && d.Decision == "approve" && d.UserID == approverID {
						return true
					}
				}
			}
		}
		return false
	}, 60*time.Second, 200*time.Millisecond, "the incident workflow %s records the approval signal", prop.Msg.Proposal.WorkflowId)

	// What the admin did in the browser happened; what the viewer tried did not.
	keys, err := tn.admin.keys.ListApiKeys(c, connect.NewRequest(&v1.ListApiKeysRequest{PageSize: 500}))
	require.NoError(t, err)
	names := map[string]*v1.ApiKey{}
	for _, k := range keys.Msg.ApiKeys {
		names[k.Name] = k
	}
	require.Contains(t, names, "made in the browser")
	require.Equal(t, v1.ApiKeyStatus_API_KEY_STATUS_FROZEN, names["made in the browser"].Status)
	require.NotContains(t, names, "viewer was here", "the viewer's forbidden call changed nothing")
	limits, err := tn.admin.limits.ListLimits(c, connect.NewRequest(&v1.ListLimitsRequest{PageSize: 500}))
	require.NoError(t, err)
	var made, budget *v1.Limit
	for _, l := range limits.Msg.Limits {
		switch l.Name {
		case "weekly tokens from the browser":
			made = l
		case "monthly budget":
			budget = l
		}
	}
	require.NotNil(t, budget)
	require.EqualValues(t, 150*dollar, budget.Amount, "the budget edited in the browser")
	require.NotNil(t, made, "the limit created in the browser exists")
	require.EqualValues(t, 750000, made.Amount)
	require.Equal(t, v1.LimitMetric_LIMIT_METRIC_TOKENS, made.Metric)
	require.Equal(t, v1.LimitWindow_LIMIT_WINDOW_WEEK, made.Window)
	// The failed delivery redelivered from the browser was tried again.
	dl, err := tn.admin.alerts.ListDeliveries(c, connect.NewRequest(&v1.ListDeliveriesRequest{ChannelId: seed.FailingChannel}))
	require.NoError(t, err)
	require.NotEmpty(t, dl.Msg.Deliveries)
	eventually(t, patience, func() bool {
		dl, err := tn.admin.alerts.ListDeliveries(c, connect.NewRequest(&v1.ListDeliveriesRequest{ChannelId: seed.FailingChannel}))
		require.NoError(t, err)
		for _, d := range dl.Msg.Deliveries {
			if d.AttemptCount >= 2 {
				return true
			}
		}
		return false
	}, "a redelivered delivery makes another attempt")
}

// startConsoleAPI runs an API server (embedded console included) beside the package's
// stack, on the same database and task queue, with the console's settings.
func startConsoleAPI(t *testing.T, tn *tenant) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := api.New(tn.pool, logger(), api.Options{IdempotencyTTL: time.Hour, RunLease: 30 * time.Minute, Temporal: tn.temporal,
		TaskQueue: tn.taskQueue, TemporalUIURL: "http://127.0.0.1:8233", TemporalNamespace: testenv.TemporalNamespace(),
		Keyring: testKeyring(), AlertEndpoints: testEndpoints, SignalKeys: signalKeys})
	go func() { done <- srv.Serve(ctx, ln, nil) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return "http://" + ln.Addr().String()
}

func seedConsole(t *testing.T, tn *tenant, url string) consoleSeed {
	t.Helper()
	ctx := context.Background()
	var s consoleSeed
	s.URL = url
	s.TemporalUIURL = "http://127.0.0.1:8233"
	art, err := filepath.Abs(filepath.Join("..", "web", "e2e", "artifacts"))
	require.NoError(t, err)
	s.Artifacts = art
	s.Org.ID, s.Org.Name, s.Org.TimeZone = tn.org.Organization.Id, tn.org.Organization.Name, tn.org.Organization.TimeZone
	s.Keys = map[string]string{"admin": tn.org.Secret}
	s.Emails = map[string]string{"admin": tn.org.Admin.Email}
	for role, r := range map[string]v1.Role{"approver": v1.Role_ROLE_APPROVER, "viewer": v1.Role_ROLE_VIEWER} {
		u, err := tn.admin.accounts.CreateUser(ctx, connect.NewRequest(&v1.CreateUserRequest{Email: role + "@example.com", DisplayName: strings.ToUpper(role[:1]) + role[1:], Role: r}))
		require.NoError(t, err)
		// Only an operator issues a key that acts as another user (governor admin create-user-key).
		_, secret, err := api.IssueUserKey(ctx, tn.pool, "test:issue", api.IssueUserKeyInput{OrgID: tn.org.Organization.Id,
			UserID: u.Msg.User.Id, Name: role + " console"})
		require.NoError(t, err)
		s.Keys[role], s.Emails[role] = secret, u.Msg.User.Email
	}

	prj, err := tn.admin.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: "Support", Description: "customer support agents"}))
	require.NoError(t, err)
	s.Agents, s.IngestKeys = map[string]string{}, map[string]string{}
	kits := map[string]agentKit{}
	for _, name := range []string{"triage-bot", "billing-bot"} {
		kit := tn.newAgentIn(t, prj.Msg.Project.Id, name)
		kits[name], s.Agents[name], s.IngestKeys[name] = kit, kit.agentID, kit.keyID
	}
	highWhenCode(t, tn, "TOOL_LOOP")

	// Channels, before anything alerts: one webhook that takes deliveries, one that refuses
	// them for good (410), so there are attempts to read and a failed delivery to redeliver.
	ok := newReceiver(t)
	gone := newReceiver(t)
	gone.respond(http.StatusGone, "")
	for name, rcv := range map[string]*receiver{"ops webhook": ok, "retired endpoint": gone} {
		ch, err := tn.admin.alerts.CreateChannel(ctx, connect.NewRequest(&v1.CreateChannelRequest{Name: name, Type: v1.ChannelType_CHANNEL_TYPE_WEBHOOK, Url: rcv.URL()}))
		require.NoError(t, err)
		if rcv == gone {
			s.FailingChannel = ch.Msg.Channel.Id
		}
	}
	chans, err := tn.admin.alerts.ListChannels(ctx, connect.NewRequest(&v1.ListChannelsRequest{}))
	require.NoError(t, err)
	for _, c := range chans.Msg.Channels {
		if c.Type == v1.ChannelType_CHANNEL_TYPE_IN_APP {
			s.InAppChannelID = c.Id
		}
	}
	require.NotEmpty(t, s.InAppChannelID)

	// Runs with known costs: $13.00 settled over six runs, one more still running.
	type run struct {
		agent, model, feature string
		cents                 int64
	}
	s.SpendMicros, s.AgentRuns, s.AgentMicros = map[string]int64{}, map[string]int{}, map[string]int64{}
	for _, r := range []run{
		{"triage-bot", "gpt-4o", "summarize", 125}, {"triage-bot", "gpt-4o", "summarize", 250}, {"triage-bot", "gpt-4o-mini", "classify", 75},
		{"billing-bot", "claude-sonnet", "invoice", 400}, {"billing-bot", "claude-sonnet", "invoice", 400},
	} {
		kit := kits[r.agent]
		cost := r.cents * 10_000
		resp, err := kit.ingest.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: kit.agentID, Model: r.model, Feature: r.feature,
			Estimate: &v1.Estimate{CostMicros: cost}}))
		require.NoError(t, err)
		_, err = kit.ingest.runs.CompleteRun(ctx, connect.NewRequest(&v1.CompleteRunRequest{RunId: resp.Msg.Run.Id, Status: v1.RunStatus_RUN_STATUS_SUCCEEDED,
			CostMicros: &cost, InputTokens: 1000, OutputTokens: 250, LatencyMs: 900}))
		require.NoError(t, err)
		waitSettled(t, tn.admin, resp.Msg.Run.Id)
		s.SpendMicros[kit.keyID] += cost
		s.AgentRuns[r.agent]++
		s.AgentMicros[r.agent] += cost
		s.TotalMicros += cost
		s.SettledRuns++
	}
	failed := fail(t, tn, kits["billing-bot"], "TOOL_LOOP", `agent called tool "lookup_invoice" 40 times in a row`, 50*10_000, "claude-sonnet", "invoice")
	s.FailedRunID, s.FailedMicros = failed.Id, 50*10_000
	s.SpendMicros[kits["billing-bot"].keyID] += s.FailedMicros
	s.AgentRuns["billing-bot"]++
	s.AgentMicros["billing-bot"] += s.FailedMicros
	s.TotalMicros += s.FailedMicros
	s.SettledRuns++
	_, err = kits["triage-bot"].ingest.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: kits["triage-bot"].agentID, Model: "gpt-4o", Feature: "summarize",
		Estimate: &v1.Estimate{CostMicros: 300_000}, Lease: durationOf(30 * time.Minute)}))
	require.NoError(t, err)
	s.AgentRuns["triage-bot"]++
	s.Runs = s.SettledRuns + 1

	inc := incidentOf(t, tn.admin, failed.Id)
	s.IncidentID, s.IncidentTitle = inc.Id, inc.Title
	s.ProposalID = proposalOf(t, tn.admin, inc.Id).Id

	// Limits: an organization budget and an agent's run quota, merged.
	for _, l := range []*v1.CreateLimitRequest{
		{Name: "monthly budget", Scope: orgScope(), Metric: v1.LimitMetric_LIMIT_METRIC_COST, Window: v1.LimitWindow_LIMIT_WINDOW_MONTH, Amount: 100 * dollar},
		{Name: "triage daily runs", Scope: &v1.LimitScopeRef{Type: v1.LimitScope_LIMIT_SCOPE_AGENT, Id: kits["triage-bot"].agentID},
			Metric: v1.LimitMetric_LIMIT_METRIC_RUNS, Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 50},
	} {
		s.Limits = append(s.Limits, tn.createLimit(t, l).Id)
	}

	// The high incident's alert goes to both webhooks (no routes: high and critical go to
	// every external channel); wait until one delivered and one failed.
	eventually(t, patience, func() bool {
		dl, err := tn.admin.alerts.ListDeliveries(ctx, connect.NewRequest(&v1.ListDeliveriesRequest{}))
		require.NoError(t, err)
		var delivered, failed bool
		for _, d := range dl.Msg.Deliveries {
			delivered = delivered || d.Status == v1.DeliveryStatus_DELIVERY_STATUS_DELIVERED
			failed = failed || (d.Status == v1.DeliveryStatus_DELIVERY_STATUS_FAILED && d.ChannelId == s.FailingChannel)
		}
		return delivered && failed
	}, "the incident alert is delivered to one webhook and fails at the other")
	return s
}
