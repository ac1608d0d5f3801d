package api_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/governor-hq/governor/api"
	"github.com/governor-hq/governor/db"
	"github.com/governor-hq/governor/db/dbsqlc"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	c "github.com/governor-hq/governor/gen/governor/v1/governorv1connect"
	"github.com/governor-hq/governor/internal/alerts"
	"github.com/governor-hq/governor/internal/audit"
	"github.com/governor-hq/governor/internal/devstack"
	"github.com/governor-hq/governor/internal/envelope"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/incidents"
	"github.com/governor-hq/governor/internal/lifecycle"
	"github.com/governor-hq/governor/internal/runs"
	"github.com/governor-hq/governor/internal/signing"
	"github.com/governor-hq/governor/internal/testenv"
)

// exemptWrites are the mutating RPCs that append no audit entry, each with the reason.
// Their recipes still run (the reads need what they make).
var exemptWrites = map[string]string{
	c.RunServiceAdmitRunProcedure: "a run, not a governance change: admission writes the run, its reservations, its workflow's " +
		"outbox row and a run_admitted event on the timeline",
	c.RunServiceHeartbeatRunProcedure: "extends a run's lease: bookkeeping of a run, on the timeline only",
	c.RunServiceCompleteRunProcedure: "a run's outcome as its agent reports it; the settlement that follows is the worker's " +
		"(its incidents, dead letters and retries are audited)",
	c.AlertServiceMarkNotificationReadProcedure: "a user's own read markers on their in-app notifications: changes nothing " +
		"anyone else sees or any decision",
	c.SessionServiceSignInProcedure: "opens a console session for a key the caller already holds: grants nothing the key " +
		"does not (logged, not a governance change)",
	c.SessionServiceSignOutProcedure: "ends the caller's own console session",
	c.RunServiceRecordLlmCallsProcedure: "a run's LLM calls as its agent reports them, like its completion: records of a run, " +
		"not a governance change",
	c.RunServiceRecordFeedbackProcedure: "a score on a run: on the timeline (run_feedback_recorded), not a governance change",
}

// streamReads are server streams: they cannot carry NO_SIDE_EFFECTS (which Connect uses
// for GET of unary calls), but are reads and are held to the same proof.
var streamReads = map[string]bool{
	c.TimelineServiceWatchEventsProcedure:     true,
	c.AlertServiceWatchNotificationsProcedure: true,
	c.AnalyticsServiceWatchOverviewProcedure:  true,
	c.ExportServiceExportProcedure:            true,
}

// walk is one organization on a private PostgreSQL cluster, served by a private API
// server with no worker: whatever changes in the database during a call, the call did.
type walk struct {
	t        *testing.T
	ctx      context.Context
	pool     *pgxpool.Pool
	temporal client.Client
	org      api.BootstrapResult
	admin    allClients
	ingest   allClients
	// fresh is the admin of a second organization that nothing has happened in yet.
	fresh    allClients
	freshKey string
	settler  *runs.Settler
	url      string
	// what the recipes made, for the ones after them
	projectID, agentID, userID, ingestKeyID, limitID, channelID, routeID, ruleID           string
	runID, deadRunID, otherRunID, incidentID, otherIncidentID, proposalID, otherProposalID string
	alertID, deliveryID, anomalyID, anomalyRunID                                           string
	// ran records every RPC a recipe called.
	ran map[string]bool
}

type allClients struct {
	accounts  c.AccountServiceClient
	keys      c.ApiKeyServiceClient
	audit     c.AuditServiceClient
	timeline  c.TimelineServiceClient
	limits    c.LimitServiceClient
	runs      c.RunServiceClient
	incidents c.IncidentServiceClient
	policies  c.PolicyServiceClient
	alerts    c.AlertServiceClient
	anomalies c.AnomalyServiceClient
	analytics c.AnalyticsServiceClient
	sessions  c.SessionServiceClient
	logs      c.LogServiceClient
	exports   c.ExportServiceClient
}

func newAllClients(h *http.Client, url, secret string) allClients {
	o := bearer(secret)
	return allClients{
		accounts: c.NewAccountServiceClient(h, url, o), keys: c.NewApiKeyServiceClient(h, url, o),
		audit: c.NewAuditServiceClient(h, url, o), timeline: c.NewTimelineServiceClient(h, url, o),
		limits: c.NewLimitServiceClient(h, url, o), runs: c.NewRunServiceClient(h, url, o),
		incidents: c.NewIncidentServiceClient(h, url, o), policies: c.NewPolicyServiceClient(h, url, o),
		alerts: c.NewAlertServiceClient(h, url, o), anomalies: c.NewAnomalyServiceClient(h, url, o),
		analytics: c.NewAnalyticsServiceClient(h, url, o), sessions: c.NewSessionServiceClient(h, url, o),
		logs: c.NewLogServiceClient(h, url, o), exports: c.NewExportServiceClient(h, url, o),
	}
}

// step is a recipe: it performs one RPC (and may set up what it needs by other means).
type step struct {
	rpc string
	do  func(w *walk) error
}

func req[T any](m *T) *connect.Request[T] { return connect.NewRequest(m) }

// Every RPC of the API, from the generated descriptors: each NO_SIDE_EFFECTS one (and
// each server stream) is called and proven not to write: the private cluster assigns no
// transaction id during the call. Every other one is performed and appends an audit entry
// with the caller as actor, in the caller's organization, or is exempt with a reason.
func TestEveryRPCReadsOrIsAudited(t *testing.T) {
	t.Parallel()
	all := describedRPCs(t)
	reads, writesA, writesB := readRecipes(), writeRecipes(), closingWriteRecipes()

	// A new RPC without a recipe fails here, by name.
	have := map[string]bool{}
	for _, s := range append(append(append([]step{}, reads...), writesA...), writesB...) {
		require.Falsef(t, have[s.rpc] && !streamReads[s.rpc], "two recipes for %s", s.rpc)
		have[s.rpc] = true
	}
	var missing []string
	for rpc, idem := range all {
		switch {
		case idem == descriptorpb.MethodOptions_NO_SIDE_EFFECTS && !containsRPC(reads, rpc):
			missing = append(missing, rpc+": NO_SIDE_EFFECTS, needs a read recipe in readRecipes")
		case idem != descriptorpb.MethodOptions_NO_SIDE_EFFECTS && streamReads[rpc] && !containsRPC(reads, rpc):
			missing = append(missing, rpc+": a streamed read, needs a recipe in readRecipes")
		case idem != descriptorpb.MethodOptions_NO_SIDE_EFFECTS && !streamReads[rpc] && !containsRPC(writesA, rpc) && !containsRPC(writesB, rpc):
			missing = append(missing, rpc+": mutating, needs a recipe in writeRecipes (audited) or an entry in exemptWrites")
		}
	}
	for rpc := range have {
		if _, ok := all[rpc]; !ok {
			missing = append(missing, rpc+": has a recipe but is not an RPC of the API (renamed?)")
		}
	}
	for _, s := range writesA {
		if all[s.rpc] == descriptorpb.MethodOptions_NO_SIDE_EFFECTS {
			missing = append(missing, s.rpc+": NO_SIDE_EFFECTS but has a write recipe")
		}
	}
	for rpc := range exemptWrites {
		if all[rpc] == descriptorpb.MethodOptions_NO_SIDE_EFFECTS {
			missing = append(missing, rpc+": NO_SIDE_EFFECTS and exempt from audit: it must not write at all")
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "RPCs without a recipe in rpcwalk_test.go")

	w := newWalk(t)
	for _, s := range writesA {
		w.write(s)
	}
	w.quiesce()
	w.requireXmaxSees()
	for _, s := range reads {
		w.read(s)
	}
	for _, s := range writesB {
		w.write(s)
	}
	for rpc := range all {
		require.Truef(t, w.ran[rpc], "%s: its recipe did not call it", rpc)
	}
	v, err := audit.Verify(w.ctx, w.pool, w.org.Organization.Id)
	require.NoError(t, err)
	require.Nil(t, v.First, "the chain verifies after the walk: %+v", v.First)
}

func containsRPC(steps []step, rpc string) bool {
	for _, s := range steps {
		if s.rpc == rpc {
			return true
		}
	}
	return false
}

// describedRPCs lists every RPC of package governor.v1 with its idempotency level.
func describedRPCs(t *testing.T) map[string]descriptorpb.MethodOptions_IdempotencyLevel {
	out := map[string]descriptorpb.MethodOptions_IdempotencyLevel{}
	protoregistry.GlobalFiles.RangeFilesByPackage("governor.v1", func(f protoreflect.FileDescriptor) bool {
		for i := 0; i < f.Services().Len(); i++ {
			s := f.Services().Get(i)
			for j := 0; j < s.Methods().Len(); j++ {
				m := s.Methods().Get(j)
				opts, _ := m.Options().(*descriptorpb.MethodOptions)
				out["/"+string(s.FullName())+"/"+string(m.Name())] = opts.GetIdempotencyLevel()
			}
		}
		return true
	})
	require.Greater(t, len(out), 80, "the descriptors of governor.v1 are registered")
	return out
}

func newWalk(t *testing.T) *walk {
	t.Helper()
	ctx := context.Background()
	pg, err := devstack.PrivatePostgres(ctx, filepath.Join(t.TempDir(), "pg"), "governor", t.Logf)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, pg.Stop(context.Background())) })
	pool, err := pgxpool.New(ctx, pg.URL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = db.MigrateUp(ctx, pool)
	require.NoError(t, err)

	tc, err := client.Dial(client.Options{HostPort: testenv.TemporalAddress(t), Namespace: testenv.TemporalNamespace(), Logger: nopTemporalLogger{}})
	require.NoError(t, err)
	t.Cleanup(tc.Close)
	kek, err := envelope.ParseKEK(envelope.GenerateKEK())
	require.NoError(t, err)
	kr, err := envelope.NewKeyring(kek)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srvCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	// No worker polls this task queue: workflows the outbox starts wait, and nothing but
	// the API and this test touches the database.
	srv := api.New(pool, quietLogger(), api.Options{IdempotencyTTL: time.Hour, Temporal: tc,
		TaskQueue: fmt.Sprintf("rpcwalk-%d", time.Now().UnixNano()), Keyring: kr, AnalyticsRollEvery: -1, SignalKeys: walkSignalKeys(t),
		AlertEndpoints: alerts.EndpointPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, AllowHTTP: true}})
	go func() { done <- srv.Serve(srvCtx, ln, nil) }()
	t.Cleanup(func() { stop(); require.NoError(t, <-done) })

	org, err := api.Bootstrap(ctx, pool, "test:bootstrap", api.BootstrapInput{OrgName: "Walk", AdminEmail: "walk@example.com"})
	require.NoError(t, err)
	other, err := api.Bootstrap(ctx, pool, "test:bootstrap", api.BootstrapInput{OrgName: "Untouched", AdminEmail: "new@example.com"})
	require.NoError(t, err)
	h := &http.Client{Timeout: time.Minute}
	url := "http://" + ln.Addr().String()
	settler := runs.NewSettler(pool, incidents.OnRunSettled, alerts.OnRunSettled)
	settler.OnDeadLetter(alerts.OnSettlementDeadLettered)
	return &walk{t: t, ctx: ctx, pool: pool, temporal: tc, org: org, admin: newAllClients(h, url, org.Secret), settler: settler, url: url,
		fresh: newAllClients(h, url, other.Secret), freshKey: other.APIKey.Id,
		ran: map[string]bool{}}
}

type nopTemporalLogger struct{}

func (nopTemporalLogger) Debug(string, ...any) {}
func (nopTemporalLogger) Info(string, ...any)  {}
func (nopTemporalLogger) Warn(string, ...any)  {}
func (nopTemporalLogger) Error(string, ...any) {}

func (w *walk) headSeq() int64 {
	h, err := dbsqlc.New().AuditHeadGet(w.ctx, w.pool, w.org.Organization.Id)
	require.NoError(w.t, err)
	return h.LastSeq
}

// write performs a mutating recipe and checks its audit entry.
func (w *walk) write(s step) {
	w.t.Helper()
	before := w.headSeq()
	err := s.do(w)
	require.NoErrorf(w.t, err, "%s", s.rpc)
	w.ran[s.rpc] = true
	if _, ok := exemptWrites[s.rpc]; ok {
		return
	}
	var n int
	require.NoError(w.t, w.pool.QueryRow(w.ctx, `SELECT count(*) FROM audit_entries
		WHERE org_id = $1 AND seq > $2 AND actor_kind = 'api_key' AND actor_api_key_id = $3 AND actor_user_id = $4`,
		w.org.Organization.Id, before, w.org.APIKey.Id, w.org.Admin.Id).Scan(&n))
	require.Positivef(w.t, n, "%s changed something but appended no audit entry with the caller (key %s) as actor", s.rpc, w.org.APIKey.Id)
}

func (w *walk) xmax() uint64 {
	var x uint64
	require.NoError(w.t, w.pool.QueryRow(w.ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint`).Scan(&x))
	return x
}

// quiesce waits until the outbox relay has handed everything to Temporal: after that,
// nothing writes unless a call does.
func (w *walk) quiesce() {
	w.t.Helper()
	require.Eventually(w.t, func() bool {
		n, err := dbsqlc.New().OutboxPending(w.ctx, w.pool)
		return err == nil && n == 0
	}, 60*time.Second, 50*time.Millisecond, "the outbox drains")
	// One warm-up call: its key's once-a-minute last-used touch happens now, not later.
	for _, cl := range []allClients{w.admin, w.fresh} {
		_, err := cl.accounts.GetOrganization(w.ctx, req(&v1.GetOrganizationRequest{}))
		require.NoError(w.t, err)
	}
}

// requireXmaxSees proves the measure can fail: a write between two readings moves it.
func (w *walk) requireXmaxSees() {
	before := w.xmax()
	_, err := w.pool.Exec(w.ctx, `UPDATE api_keys SET last_used_at = now() WHERE id = $1`, w.org.APIKey.Id)
	require.NoError(w.t, err)
	require.Greater(w.t, w.xmax(), before, "a write assigns a transaction id")
}

// read performs a read recipe and proves it wrote nothing.
func (w *walk) read(s step) {
	w.t.Helper()
	// The key's last-used touch is bookkeeping of authentication, not of the call: keep
	// it from falling due during the call (it is due once a minute).
	_, err := w.pool.Exec(w.ctx, `UPDATE api_keys SET last_used_at = now() WHERE id = ANY($1)`, []string{w.org.APIKey.Id, w.freshKey})
	require.NoError(w.t, err)
	before := w.xmax()
	err = s.do(w)
	after := w.xmax()
	require.NoErrorf(w.t, err, "%s", s.rpc)
	w.ran[s.rpc] = true
	require.Equalf(w.t, before, after, "%s is a read but wrote: %d transaction ids were assigned during the call", s.rpc, after-before)
}

// stream opens a server stream, takes what it sends within a moment, and closes it.
func stream[T any](w *walk, open func(ctx context.Context) (*connect.ServerStreamForClient[T], error)) error {
	ctx, cancel := context.WithTimeout(w.ctx, time.Second)
	defer cancel()
	s, err := open(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	for s.Receive() {
	}
	if err := s.Err(); err != nil && connect.CodeOf(err) != connect.CodeDeadlineExceeded && connect.CodeOf(err) != connect.CodeCanceled {
		return err
	}
	return nil
}

func ignore[T any](_ T, err error) error { return err }

// terminate ends an incident's workflow (the relay started it; no worker runs it), so a
// decision finds no workflow and the API applies it itself, as it does in production.
func (w *walk) terminateIncidentWorkflow(incidentID string) error {
	inc, err := w.admin.incidents.GetIncident(w.ctx, req(&v1.GetIncidentRequest{Id: incidentID}))
	if err != nil {
		return err
	}
	err = w.temporal.TerminateWorkflow(w.ctx, lifecycle.IncidentWorkflowID(inc.Msg.Incident.Fingerprint), "", "rpc walk: no worker")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil
	}
	return err
}

// failedRun admits a run of the walk's agent, reports it failed with code and settles it
// as the worker would: a high incident (the code is one of the organization's high error
// codes) with its proposal.
func (w *walk) failedRun(code string) (runID, incidentID, proposalID string, err error) {
	adm, err := w.ingest.runs.AdmitRun(w.ctx, req(&v1.AdmitRunRequest{AgentId: w.agentID, Model: "walk-model",
		Estimate: &v1.Estimate{CostMicros: 1000}}))
	if err != nil {
		return "", "", "", err
	}
	runID = adm.Msg.Run.Id
	if _, err := w.ingest.runs.CompleteRun(w.ctx, req(&v1.CompleteRunRequest{RunId: runID, Status: v1.RunStatus_RUN_STATUS_FAILED,
		CostMicros: ptr(int64(700)), ErrorCode: code, ErrorMessage: "walk failure"})); err != nil {
		return "", "", "", err
	}
	if _, err := w.settler.Settle(w.ctx, runID, "workflow:"+lifecycle.RunWorkflowID(runID)); err != nil {
		return "", "", "", err
	}
	incs, err := w.admin.runs.ListRunIncidents(w.ctx, req(&v1.ListRunIncidentsRequest{RunId: runID}))
	if err != nil {
		return "", "", "", err
	}
	if len(incs.Msg.Incidents) != 1 {
		return "", "", "", fmt.Errorf("run %s: %d incidents, want 1", runID, len(incs.Msg.Incidents))
	}
	incidentID = incs.Msg.Incidents[0].Id
	p, err := incidents.Propose(w.ctx, w.pool, incidentID, "workflow:incident/walk")
	if err != nil {
		return "", "", "", err
	}
	return runID, incidentID, p.ID, nil
}

func ptr[T any](v T) *T { return &v }

// writeRecipes perform every audited change (and the exempt ones), in an order where each
// finds what it needs.
func writeRecipes() []step {
	return []step{
		{c.AnalyticsServiceUpdateAnalyticsSettingsProcedure, func(w *walk) error {
			return ignore(w.admin.analytics.UpdateAnalyticsSettings(w.ctx, req(&v1.UpdateAnalyticsSettingsRequest{
				Settings: &v1.AnalyticsSettings{TagKey: "team"}})))
		}},
		{c.SessionServiceSignInProcedure, func(w *walk) error {
			// Over the Connect protocol, as the console does (the CSRF check needs it).
			return ignore(w.admin.sessions.SignIn(w.ctx, req(&v1.SignInRequest{ApiKey: w.org.Secret})))
		}},
		{c.SessionServiceSignOutProcedure, func(w *walk) error {
			return ignore(w.admin.sessions.SignOut(w.ctx, req(&v1.SignOutRequest{})))
		}},
		{c.AccountServiceUpdateOrganizationProcedure, func(w *walk) error {
			return ignore(w.admin.accounts.UpdateOrganization(w.ctx, req(&v1.UpdateOrganizationRequest{Name: ptr("Walk Inc")})))
		}},
		{c.AccountServiceCreateProjectProcedure, func(w *walk) error {
			r, err := w.admin.accounts.CreateProject(w.ctx, req(&v1.CreateProjectRequest{Name: "walk"}))
			if err == nil {
				w.projectID = r.Msg.Project.Id
			}
			return err
		}},
		{c.AccountServiceUpdateProjectProcedure, func(w *walk) error {
			return ignore(w.admin.accounts.UpdateProject(w.ctx, req(&v1.UpdateProjectRequest{Id: w.projectID, Description: ptr("walked")})))
		}},
		{c.AccountServiceCreateAgentProcedure, func(w *walk) error {
			r, err := w.admin.accounts.CreateAgent(w.ctx, req(&v1.CreateAgentRequest{ProjectId: w.projectID, Name: "walker"}))
			if err == nil {
				w.agentID = r.Msg.Agent.Id
			}
			return err
		}},
		{c.AccountServiceUpdateAgentProcedure, func(w *walk) error {
			return ignore(w.admin.accounts.UpdateAgent(w.ctx, req(&v1.UpdateAgentRequest{Id: w.agentID, Description: ptr("walks")})))
		}},
		{c.AccountServiceCreateUserProcedure, func(w *walk) error {
			r, err := w.admin.accounts.CreateUser(w.ctx, req(&v1.CreateUserRequest{Email: "viewer@example.com", Role: v1.Role_ROLE_VIEWER}))
			if err == nil {
				w.userID = r.Msg.User.Id
			}
			return err
		}},
		{c.AccountServiceUpdateUserProcedure, func(w *walk) error {
			return ignore(w.admin.accounts.UpdateUser(w.ctx, req(&v1.UpdateUserRequest{Id: w.userID, DisplayName: ptr("Vi")})))
		}},
		{c.ApiKeyServiceCreateApiKeyProcedure, func(w *walk) error {
			r, err := w.admin.keys.CreateApiKey(w.ctx, req(&v1.CreateApiKeyRequest{Name: "walker's", Kind: v1.ApiKeyKind_API_KEY_KIND_INGEST,
				AgentId: w.agentID}))
			if err == nil {
				w.ingestKeyID = r.Msg.ApiKey.Id
				w.ingest = newAllClients(&http.Client{Timeout: time.Minute}, w.url, r.Msg.Secret)
			}
			return err
		}},
		{c.ApiKeyServiceUpdateApiKeyProcedure, func(w *walk) error {
			return ignore(w.admin.keys.UpdateApiKey(w.ctx, req(&v1.UpdateApiKeyRequest{Id: w.ingestKeyID, Name: ptr("walker's key")})))
		}},
		{c.ApiKeyServiceFreezeApiKeyProcedure, func(w *walk) error {
			return ignore(w.admin.keys.FreezeApiKey(w.ctx, req(&v1.FreezeApiKeyRequest{Id: w.ingestKeyID, Reason: "walk"})))
		}},
		{c.ApiKeyServiceUnfreezeApiKeyProcedure, func(w *walk) error {
			return ignore(w.admin.keys.UnfreezeApiKey(w.ctx, req(&v1.UnfreezeApiKeyRequest{Id: w.ingestKeyID})))
		}},
		{c.ApiKeyServiceRotateApiKeyProcedure, func(w *walk) error {
			r, err := w.admin.keys.RotateApiKey(w.ctx, req(&v1.RotateApiKeyRequest{Id: w.ingestKeyID, GracePeriod: durationpb.New(time.Hour)}))
			if err == nil {
				w.ingest = newAllClients(&http.Client{Timeout: time.Minute}, w.url, r.Msg.Secret)
			}
			return err
		}},
		{c.LimitServiceCreateLimitProcedure, func(w *walk) error {
			r, err := w.admin.limits.CreateLimit(w.ctx, req(&v1.CreateLimitRequest{Name: "walk budget",
				Scope:  &v1.LimitScopeRef{Type: v1.LimitScope_LIMIT_SCOPE_ORGANIZATION},
				Metric: v1.LimitMetric_LIMIT_METRIC_COST, Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 1_000_000_000}))
			if err == nil {
				w.limitID = r.Msg.Limit.Id
			}
			return err
		}},
		{c.LimitServiceUpdateLimitProcedure, func(w *walk) error {
			return ignore(w.admin.limits.UpdateLimit(w.ctx, req(&v1.UpdateLimitRequest{Id: w.limitID, Amount: ptr(int64(2_000_000_000))})))
		}},
		{c.LimitServiceSetModelPriceProcedure, func(w *walk) error {
			return ignore(w.admin.limits.SetModelPrice(w.ctx, req(&v1.SetModelPriceRequest{Model: "walk-model",
				InputMicrosPerMillionTokens: 1_000_000, OutputMicrosPerMillionTokens: 2_000_000})))
		}},
		{c.AlertServiceCreateChannelProcedure, func(w *walk) error {
			r, err := w.admin.alerts.CreateChannel(w.ctx, req(&v1.CreateChannelRequest{Name: "walk hook", Type: v1.ChannelType_CHANNEL_TYPE_WEBHOOK,
				Url: "http://127.0.0.1:9/walk"}))
			if err == nil {
				w.channelID = r.Msg.Channel.Id
			}
			return err
		}},
		{c.AlertServiceUpdateChannelProcedure, func(w *walk) error {
			return ignore(w.admin.alerts.UpdateChannel(w.ctx, req(&v1.UpdateChannelRequest{Id: w.channelID, Name: ptr("walk hook 2")})))
		}},
		{c.AlertServiceRotateChannelSecretProcedure, func(w *walk) error {
			return ignore(w.admin.alerts.RotateChannelSecret(w.ctx, req(&v1.RotateChannelSecretRequest{Id: w.channelID})))
		}},
		{c.AlertServiceTestChannelProcedure, func(w *walk) error {
			r, err := w.admin.alerts.TestChannel(w.ctx, req(&v1.TestChannelRequest{Id: w.channelID}))
			if err == nil {
				w.alertID, w.deliveryID = r.Msg.Alert.Id, r.Msg.Delivery.Id
			}
			return err
		}},
		{c.AlertServiceCreateRouteProcedure, func(w *walk) error {
			r, err := w.admin.alerts.CreateRoute(w.ctx, req(&v1.CreateRouteRequest{Name: "walk route", ChannelIds: []string{w.channelID},
				MinSeverity: v1.AlertSeverity_ALERT_SEVERITY_HIGH}))
			if err == nil {
				w.routeID = r.Msg.Route.Id
			}
			return err
		}},
		{c.AlertServiceUpdateRouteProcedure, func(w *walk) error {
			return ignore(w.admin.alerts.UpdateRoute(w.ctx, req(&v1.UpdateRouteRequest{Id: w.routeID, Name: ptr("walk route 2")})))
		}},
		{c.IncidentServiceUpdateIncidentSettingsProcedure, func(w *walk) error {
			cur, err := w.admin.incidents.GetIncidentSettings(w.ctx, req(&v1.GetIncidentSettingsRequest{}))
			if err != nil {
				return err
			}
			s := cur.Msg.Settings
			s.HighErrorCodes = append(s.HighErrorCodes, "WALK_BOOM", "WALK_BANG")
			return ignore(w.admin.incidents.UpdateIncidentSettings(w.ctx, req(&v1.UpdateIncidentSettingsRequest{Settings: s})))
		}},
		{c.AnomalyServiceUpdateAnomalyConfigProcedure, func(w *walk) error {
			cur, err := w.admin.anomalies.GetAnomalyConfig(w.ctx, req(&v1.GetAnomalyConfigRequest{}))
			if err != nil {
				return err
			}
			cfg := cur.Msg.Config
			cfg.Enabled = !cfg.Enabled
			return ignore(w.admin.anomalies.UpdateAnomalyConfig(w.ctx, req(&v1.UpdateAnomalyConfigRequest{Config: cfg})))
		}},
		{c.PolicyServiceCreatePolicyRuleProcedure, func(w *walk) error {
			r, err := w.admin.policies.CreatePolicyRule(w.ctx, req(&v1.CreatePolicyRuleRequest{Name: "no blocked-model",
				Match: &v1.PolicyMatch{Model: "blocked-model"}}))
			if err == nil {
				w.ruleID = r.Msg.Rule.Id
			}
			return err
		}},
		{c.PolicyServiceDisablePolicyRuleProcedure, func(w *walk) error {
			return ignore(w.admin.policies.DisablePolicyRule(w.ctx, req(&v1.DisablePolicyRuleRequest{Id: w.ruleID, Reason: "walk"})))
		}},

		// Runs (exempt), and what the worker would make of them, done here as the worker.
		{c.RunServiceAdmitRunProcedure, func(w *walk) error {
			r, err := w.ingest.runs.AdmitRun(w.ctx, req(&v1.AdmitRunRequest{AgentId: w.agentID, Model: "walk-model",
				Estimate: &v1.Estimate{CostMicros: 1000}}))
			if err != nil {
				return err
			}
			w.deadRunID = r.Msg.Run.Id
			_, _, err = w.settler.DeadLetter(w.ctx, w.deadRunID, "workflow:"+lifecycle.RunWorkflowID(w.deadRunID), "walk: cannot settle")
			return err
		}},
		{c.RunServiceHeartbeatRunProcedure, func(w *walk) error {
			r, err := w.ingest.runs.AdmitRun(w.ctx, req(&v1.AdmitRunRequest{AgentId: w.agentID, Model: "walk-model",
				Estimate: &v1.Estimate{CostMicros: 1000}}))
			if err != nil {
				return err
			}
			return ignore(w.ingest.runs.HeartbeatRun(w.ctx, req(&v1.HeartbeatRunRequest{RunId: r.Msg.Run.Id})))
		}},
		{c.RunServiceCompleteRunProcedure, func(w *walk) error {
			var err error
			w.runID, w.incidentID, w.proposalID, err = w.failedRun("WALK_BOOM")
			if err != nil {
				return err
			}
			w.otherRunID, w.otherIncidentID, w.otherProposalID, err = w.failedRun("WALK_BANG")
			return err
		}},
		{c.RunServiceRecordLlmCallsProcedure, func(w *walk) error {
			return ignore(w.ingest.runs.RecordLlmCalls(w.ctx, req(&v1.RecordLlmCallsRequest{RunId: w.runID,
				Calls: []*v1.LlmCallReport{{CallId: "walk-1", Model: "gpt-4o", InputTokens: 10, OutputTokens: 5}}})))
		}},
		{c.RunServiceRecordFeedbackProcedure, func(w *walk) error {
			return ignore(w.admin.runs.RecordFeedback(w.ctx, req(&v1.RecordFeedbackRequest{FeedbackId: "walk-fb", RunId: w.runID, Score: 1})))
		}},
		{c.IncidentServiceAcknowledgeIncidentProcedure, func(w *walk) error {
			return ignore(w.admin.incidents.AcknowledgeIncident(w.ctx, req(&v1.AcknowledgeIncidentRequest{Id: w.incidentID, Note: "walking"})))
		}},
		{c.RunServiceRetrySettlementProcedure, func(w *walk) error {
			return ignore(w.admin.runs.RetrySettlement(w.ctx, req(&v1.RetrySettlementRequest{RunId: w.deadRunID})))
		}},
		{c.AlertServiceRedeliverAlertProcedure, func(w *walk) error {
			// The test alert's delivery gave up (as a worker would have recorded).
			if _, err := w.pool.Exec(w.ctx, `UPDATE alert_deliveries SET status = 'failed', failed_at = now() WHERE id = $1`, w.deliveryID); err != nil {
				return err
			}
			return ignore(w.admin.alerts.RedeliverAlert(w.ctx, req(&v1.RedeliverAlertRequest{AlertId: w.alertID, ChannelId: w.channelID})))
		}},
		{c.AnomalyServiceRunAnomalyDetectionProcedure, func(w *walk) error {
			r, err := w.admin.anomalies.RunAnomalyDetection(w.ctx, req(&v1.RunAnomalyDetectionRequest{}))
			if err != nil {
				return err
			}
			w.anomalyRunID = r.Msg.Run.Id
			// What the batch would find (no history here to find it in).
			a, err := dbsqlc.New().AnomalyInsert(w.ctx, w.pool, dbsqlc.AnomalyInsertParams{
				OrgID: w.org.Organization.Id, ID: ids.New(ids.Anomaly), DedupeKey: "walk", Type: "METRIC_SPIKE",
				EntityType: "agent", EntityID: w.agentID, Metric: "cost", Method: "zscore", Severity: "warning",
				Day:         pgtype.Date{Time: time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour), Valid: true},
				WindowStart: time.Now().Add(-24 * time.Hour), WindowEnd: time.Now(), Baseline: 1, Observed: 9, Deviation: 4,
				Score: 70, Confidence: 0.9, Context: []byte(`{}`), RunID: &w.anomalyRunID,
			})
			if err == nil {
				w.anomalyID = a.ID
			}
			return err
		}},
		{c.PolicyServiceRejectProposalProcedure, func(w *walk) error {
			if err := w.terminateIncidentWorkflow(w.otherIncidentID); err != nil {
				return err
			}
			r, err := w.admin.policies.RejectProposal(w.ctx, req(&v1.RejectProposalRequest{Id: w.otherProposalID, Comment: "no"}))
			if err == nil && r.Msg.Proposal.Status != v1.ProposalStatus_PROPOSAL_STATUS_REJECTED {
				err = fmt.Errorf("proposal is %s", r.Msg.Proposal.Status)
			}
			return err
		}},
		{c.PolicyServiceApproveProposalProcedure, func(w *walk) error {
			if err := w.terminateIncidentWorkflow(w.incidentID); err != nil {
				return err
			}
			r, err := w.admin.policies.ApproveProposal(w.ctx, req(&v1.ApproveProposalRequest{Id: w.proposalID, Comment: "yes"}))
			if err == nil && r.Msg.Proposal.Status != v1.ProposalStatus_PROPOSAL_STATUS_APPROVED {
				err = fmt.Errorf("proposal is %s", r.Msg.Proposal.Status)
			}
			return err
		}},
		{c.IncidentServiceResolveIncidentProcedure, func(w *walk) error {
			return ignore(w.admin.incidents.ResolveIncident(w.ctx, req(&v1.ResolveIncidentRequest{Id: w.otherIncidentID})))
		}},
		{c.AlertServiceMarkNotificationReadProcedure, func(w *walk) error {
			return ignore(w.admin.alerts.MarkNotificationRead(w.ctx, req(&v1.MarkNotificationReadRequest{All: true})))
		}},
	}
}

// closingWriteRecipes run after the reads: they delete what the reads read.
func closingWriteRecipes() []step {
	return []step{
		{c.AlertServiceDeleteRouteProcedure, func(w *walk) error {
			return ignore(w.admin.alerts.DeleteRoute(w.ctx, req(&v1.DeleteRouteRequest{Id: w.routeID})))
		}},
		{c.AlertServiceDeleteChannelProcedure, func(w *walk) error {
			return ignore(w.admin.alerts.DeleteChannel(w.ctx, req(&v1.DeleteChannelRequest{Id: w.channelID})))
		}},
		{c.LimitServiceDeleteLimitProcedure, func(w *walk) error {
			return ignore(w.admin.limits.DeleteLimit(w.ctx, req(&v1.DeleteLimitRequest{Id: w.limitID})))
		}},
		{c.LimitServiceDeleteModelPriceProcedure, func(w *walk) error {
			return ignore(w.admin.limits.DeleteModelPrice(w.ctx, req(&v1.DeleteModelPriceRequest{Model: "walk-model"})))
		}},
		{c.ApiKeyServiceRevokeApiKeyProcedure, func(w *walk) error {
			return ignore(w.admin.keys.RevokeApiKey(w.ctx, req(&v1.RevokeApiKeyRequest{Id: w.ingestKeyID, Reason: "walk over"})))
		}},
	}
}

// readRecipes call every read with what the writes made.
func readRecipes() []step {
	return []step{
		{c.AnalyticsServiceQueryUsageProcedure, func(w *walk) error {
			return ignore(w.admin.analytics.QueryUsage(w.ctx, req(&v1.QueryUsageRequest{StartTime: timestamppb.New(time.Now().Add(-time.Hour)),
				GroupBy: []v1.UsageDimension{v1.UsageDimension_USAGE_DIMENSION_MODEL}})))
		}},
		{c.AnalyticsServiceGetOverviewProcedure, func(w *walk) error {
			return ignore(w.admin.analytics.GetOverview(w.ctx, req(&v1.GetOverviewRequest{})))
		}},
		{c.AnalyticsServiceGetAnalyticsSettingsProcedure, func(w *walk) error {
			return ignore(w.admin.analytics.GetAnalyticsSettings(w.ctx, req(&v1.GetAnalyticsSettingsRequest{})))
		}},
		{c.AnalyticsServiceWatchOverviewProcedure, func(w *walk) error {
			return stream(w, func(ctx context.Context) (*connect.ServerStreamForClient[v1.WatchOverviewResponse], error) {
				return w.admin.analytics.WatchOverview(ctx, req(&v1.WatchOverviewRequest{}))
			})
		}},
		{c.LogServiceListLlmCallsProcedure, func(w *walk) error {
			return ignore(w.admin.logs.ListLlmCalls(w.ctx, req(&v1.ListLlmCallsRequest{Filter: &v1.LlmCallFilter{RunId: w.runID}})))
		}},
		{c.LogServiceListSystemRecordsProcedure, func(w *walk) error {
			return ignore(w.admin.logs.ListSystemRecords(w.ctx, req(&v1.ListSystemRecordsRequest{})))
		}},
		{c.RunServiceGetRunLogsProcedure, func(w *walk) error {
			return ignore(w.admin.runs.GetRunLogs(w.ctx, req(&v1.GetRunLogsRequest{RunId: w.runID})))
		}},
		{c.IncidentServiceListIncidentLlmCallsProcedure, func(w *walk) error {
			return ignore(w.admin.incidents.ListIncidentLlmCalls(w.ctx, req(&v1.ListIncidentLlmCallsRequest{Id: w.incidentID})))
		}},
		{c.ExportServiceExportProcedure, func(w *walk) error {
			return stream(w, func(ctx context.Context) (*connect.ServerStreamForClient[v1.ExportResponse], error) {
				return w.admin.exports.Export(ctx, req(&v1.ExportRequest{Dataset: v1.ExportDataset_EXPORT_DATASET_LLM_CALLS,
					Format: v1.ExportFormat_EXPORT_FORMAT_CSV}))
			})
		}},
		{c.SessionServiceWhoAmIProcedure, func(w *walk) error {
			return ignore(w.admin.sessions.WhoAmI(w.ctx, req(&v1.WhoAmIRequest{})))
		}},
		{c.AccountServiceGetOrganizationProcedure, func(w *walk) error {
			return ignore(w.admin.accounts.GetOrganization(w.ctx, req(&v1.GetOrganizationRequest{})))
		}},
		{c.AccountServiceGetProjectProcedure, func(w *walk) error {
			return ignore(w.admin.accounts.GetProject(w.ctx, req(&v1.GetProjectRequest{Id: w.projectID})))
		}},
		{c.AccountServiceListProjectsProcedure, func(w *walk) error {
			return ignore(w.admin.accounts.ListProjects(w.ctx, req(&v1.ListProjectsRequest{})))
		}},
		{c.AccountServiceGetAgentProcedure, func(w *walk) error {
			return ignore(w.admin.accounts.GetAgent(w.ctx, req(&v1.GetAgentRequest{Id: w.agentID})))
		}},
		{c.AccountServiceListAgentsProcedure, func(w *walk) error {
			return ignore(w.admin.accounts.ListAgents(w.ctx, req(&v1.ListAgentsRequest{ProjectId: w.projectID})))
		}},
		{c.AccountServiceGetUserProcedure, func(w *walk) error {
			return ignore(w.admin.accounts.GetUser(w.ctx, req(&v1.GetUserRequest{Id: w.userID})))
		}},
		{c.AccountServiceListUsersProcedure, func(w *walk) error {
			return ignore(w.admin.accounts.ListUsers(w.ctx, req(&v1.ListUsersRequest{})))
		}},
		{c.ApiKeyServiceGetApiKeyProcedure, func(w *walk) error {
			return ignore(w.admin.keys.GetApiKey(w.ctx, req(&v1.GetApiKeyRequest{Id: w.ingestKeyID})))
		}},
		{c.ApiKeyServiceListApiKeysProcedure, func(w *walk) error {
			return ignore(w.admin.keys.ListApiKeys(w.ctx, req(&v1.ListApiKeysRequest{})))
		}},
		{c.AuditServiceListAuditEntriesProcedure, func(w *walk) error {
			return ignore(w.admin.audit.ListAuditEntries(w.ctx, req(&v1.ListAuditEntriesRequest{})))
		}},
		{c.AuditServiceVerifyAuditChainProcedure, func(w *walk) error {
			return ignore(w.admin.audit.VerifyAuditChain(w.ctx, req(&v1.VerifyAuditChainRequest{})))
		}},
		{c.TimelineServiceListEventsProcedure, func(w *walk) error {
			return ignore(w.admin.timeline.ListEvents(w.ctx, req(&v1.ListEventsRequest{})))
		}},
		{c.TimelineServiceWatchEventsProcedure, func(w *walk) error {
			return stream(w, func(ctx context.Context) (*connect.ServerStreamForClient[v1.WatchEventsResponse], error) {
				return w.admin.timeline.WatchEvents(ctx, req(&v1.WatchEventsRequest{}))
			})
		}},
		{c.LimitServiceGetLimitProcedure, func(w *walk) error {
			return ignore(w.admin.limits.GetLimit(w.ctx, req(&v1.GetLimitRequest{Id: w.limitID})))
		}},
		{c.LimitServiceListLimitsProcedure, func(w *walk) error {
			return ignore(w.admin.limits.ListLimits(w.ctx, req(&v1.ListLimitsRequest{})))
		}},
		{c.LimitServiceGetEffectiveLimitsProcedure, func(w *walk) error {
			return ignore(w.admin.limits.GetEffectiveLimits(w.ctx, req(&v1.GetEffectiveLimitsRequest{AgentId: w.agentID, Model: "walk-model"})))
		}},
		{c.LimitServiceCheckLimitsProcedure, func(w *walk) error {
			return ignore(w.admin.limits.CheckLimits(w.ctx, req(&v1.CheckLimitsRequest{AgentId: w.agentID, Model: "walk-model",
				Estimate: &v1.Estimate{CostMicros: 5000}})))
		}},
		{c.LimitServiceListModelPricesProcedure, func(w *walk) error {
			return ignore(w.admin.limits.ListModelPrices(w.ctx, req(&v1.ListModelPricesRequest{})))
		}},
		{c.RunServiceGetRunProcedure, func(w *walk) error {
			return ignore(w.admin.runs.GetRun(w.ctx, req(&v1.GetRunRequest{Id: w.runID})))
		}},
		{c.RunServiceListRunsProcedure, func(w *walk) error {
			return ignore(w.admin.runs.ListRuns(w.ctx, req(&v1.ListRunsRequest{})))
		}},
		{c.RunServiceGetRunCostProcedure, func(w *walk) error {
			return ignore(w.admin.runs.GetRunCost(w.ctx, req(&v1.GetRunCostRequest{RunId: w.runID})))
		}},
		{c.RunServiceListCostRecordsProcedure, func(w *walk) error {
			return ignore(w.admin.runs.ListCostRecords(w.ctx, req(&v1.ListCostRecordsRequest{})))
		}},
		{c.RunServiceListRunIncidentsProcedure, func(w *walk) error {
			return ignore(w.admin.runs.ListRunIncidents(w.ctx, req(&v1.ListRunIncidentsRequest{RunId: w.runID})))
		}},
		{c.IncidentServiceGetIncidentProcedure, func(w *walk) error {
			return ignore(w.admin.incidents.GetIncident(w.ctx, req(&v1.GetIncidentRequest{Id: w.incidentID})))
		}},
		{c.IncidentServiceListIncidentsProcedure, func(w *walk) error {
			return ignore(w.admin.incidents.ListIncidents(w.ctx, req(&v1.ListIncidentsRequest{})))
		}},
		{c.IncidentServiceGetIncidentSourceRunProcedure, func(w *walk) error {
			return ignore(w.admin.incidents.GetIncidentSourceRun(w.ctx, req(&v1.GetIncidentSourceRunRequest{Id: w.incidentID})))
		}},
		{c.IncidentServiceListIncidentRunsProcedure, func(w *walk) error {
			return ignore(w.admin.incidents.ListIncidentRuns(w.ctx, req(&v1.ListIncidentRunsRequest{Id: w.incidentID})))
		}},
		{c.IncidentServiceGetIncidentCostImpactProcedure, func(w *walk) error {
			return ignore(w.admin.incidents.GetIncidentCostImpact(w.ctx, req(&v1.GetIncidentCostImpactRequest{Id: w.incidentID})))
		}},
		{c.IncidentServiceGetIncidentSettingsProcedure, func(w *walk) error {
			return ignore(w.admin.incidents.GetIncidentSettings(w.ctx, req(&v1.GetIncidentSettingsRequest{})))
		}},
		{c.PolicyServiceGetProposalProcedure, func(w *walk) error {
			return ignore(w.admin.policies.GetProposal(w.ctx, req(&v1.GetProposalRequest{Id: w.proposalID})))
		}},
		{c.PolicyServiceListProposalsProcedure, func(w *walk) error {
			return ignore(w.admin.policies.ListProposals(w.ctx, req(&v1.ListProposalsRequest{})))
		}},
		{c.PolicyServiceGetPolicyRuleProcedure, func(w *walk) error {
			return ignore(w.admin.policies.GetPolicyRule(w.ctx, req(&v1.GetPolicyRuleRequest{Id: w.ruleID})))
		}},
		{c.PolicyServiceListPolicyRulesProcedure, func(w *walk) error {
			return ignore(w.admin.policies.ListPolicyRules(w.ctx, req(&v1.ListPolicyRulesRequest{})))
		}},
		{c.PolicyServiceGetPolicyEffectivenessProcedure, func(w *walk) error {
			return ignore(w.admin.policies.GetPolicyEffectiveness(w.ctx, req(&v1.GetPolicyEffectivenessRequest{Id: w.ruleID})))
		}},
		{c.AlertServiceGetChannelProcedure, func(w *walk) error {
			return ignore(w.admin.alerts.GetChannel(w.ctx, req(&v1.GetChannelRequest{Id: w.channelID})))
		}},
		{c.AlertServiceListChannelsProcedure, func(w *walk) error {
			// In an organization where nothing happened yet: its in-app channel is there
			// without the read making it.
			r, err := w.fresh.alerts.ListChannels(w.ctx, req(&v1.ListChannelsRequest{}))
			if err != nil {
				return err
			}
			for _, ch := range r.Msg.Channels {
				if ch.Type == v1.ChannelType_CHANNEL_TYPE_IN_APP {
					return nil
				}
			}
			return errors.New("the organization has no in-app channel")
		}},
		{c.AlertServiceListRoutesProcedure, func(w *walk) error {
			return ignore(w.admin.alerts.ListRoutes(w.ctx, req(&v1.ListRoutesRequest{})))
		}},
		{c.AlertServiceListAlertsProcedure, func(w *walk) error {
			return ignore(w.admin.alerts.ListAlerts(w.ctx, req(&v1.ListAlertsRequest{})))
		}},
		{c.AlertServiceGetAlertProcedure, func(w *walk) error {
			return ignore(w.admin.alerts.GetAlert(w.ctx, req(&v1.GetAlertRequest{Id: w.alertID})))
		}},
		{c.AlertServiceListDeliveriesProcedure, func(w *walk) error {
			return ignore(w.admin.alerts.ListDeliveries(w.ctx, req(&v1.ListDeliveriesRequest{AlertId: w.alertID})))
		}},
		{c.AlertServiceListNotificationsProcedure, func(w *walk) error {
			return ignore(w.admin.alerts.ListNotifications(w.ctx, req(&v1.ListNotificationsRequest{})))
		}},
		{c.AlertServiceWatchNotificationsProcedure, func(w *walk) error {
			return stream(w, func(ctx context.Context) (*connect.ServerStreamForClient[v1.WatchNotificationsResponse], error) {
				return w.admin.alerts.WatchNotifications(ctx, req(&v1.WatchNotificationsRequest{IncludeUnread: true}))
			})
		}},
		{c.AnomalyServiceListAnomaliesProcedure, func(w *walk) error {
			return ignore(w.admin.anomalies.ListAnomalies(w.ctx, req(&v1.ListAnomaliesRequest{})))
		}},
		{c.AnomalyServiceGetAnomalyProcedure, func(w *walk) error {
			return ignore(w.admin.anomalies.GetAnomaly(w.ctx, req(&v1.GetAnomalyRequest{Id: w.anomalyID})))
		}},
		{c.AnomalyServiceGetAnomalyConfigProcedure, func(w *walk) error {
			return ignore(w.admin.anomalies.GetAnomalyConfig(w.ctx, req(&v1.GetAnomalyConfigRequest{})))
		}},
		{c.AnomalyServiceGetAnomalyDetectionRunProcedure, func(w *walk) error {
			return ignore(w.admin.anomalies.GetAnomalyDetectionRun(w.ctx, req(&v1.GetAnomalyDetectionRunRequest{Id: w.anomalyRunID})))
		}},
		{c.AnomalyServiceListAnomalyDetectionRunsProcedure, func(w *walk) error {
			return ignore(w.admin.anomalies.ListAnomalyDetectionRuns(w.ctx, req(&v1.ListAnomalyDetectionRunsRequest{})))
		}},
	}
}

func walkSignalKeys(t *testing.T) signing.Keyring {
	t.Helper()
	k, err := signing.ParseKeyring("governor-rpcwalk-signal-key-0123456789abcdef")
	require.NoError(t, err)
	return k
}
