// Package e2e holds end-to-end tests: a real API server and a real Temporal worker, on a
// real PostgreSQL and a real Temporal server, driven through the generated Connect clients
// the way a customer's code would drive them.
package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/governor-hq/governor/api"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/gen/governor/v1/governorv1connect"
	"github.com/governor-hq/governor/internal/alerts"
	"github.com/governor-hq/governor/internal/envelope"
	"github.com/governor-hq/governor/internal/signing"
	"github.com/governor-hq/governor/internal/testenv"
	"github.com/governor-hq/governor/workers"
)

func TestMain(m *testing.M) {
	// The test binary doubles as a second API server process: see startChildAPI.
	if os.Getenv(childAPIEnv) != "" {
		runChildAPI()
		return
	}
	if os.Getenv(childWorkerEnv) != "" {
		runChildWorker()
		return
	}
	testenv.Main(m)
}

// stack is one API server and one worker, shared by the package's tests (each test works in
// an organization of its own).
type stack struct {
	pool      *pgxpool.Pool
	temporal  client.Client
	taskQueue string
	baseURL   string
	http      *http.Client
}

var (
	sharedStack *stack
	stackOnce   sync.Once
	stackErr    error
)

func logger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("GOVERNOR_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// dialTemporal connects to the test Temporal server.
func dialTemporal(t testing.TB) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: testenv.TemporalAddress(t), Namespace: testenv.TemporalNamespace(),
		Logger: nopLogger{}})
	require.NoError(t, err)
	return c
}

// signalKeys sign and verify proposal decisions between the tests' API servers and
// workers, child processes included (hence a fixed key: it protects nothing outside tests).
var signalKeys = func() signing.Keyring {
	k, err := signing.ParseKeyring("governor-e2e-signal-key-0123456789abcdefghij")
	if err != nil {
		panic(err)
	}
	return k
}()

func getStack(t *testing.T) *stack {
	t.Helper()
	pool := testenv.DB(t)
	stackOnce.Do(func() {
		s := &stack{pool: pool, taskQueue: fmt.Sprintf("e2e-%d", time.Now().UnixNano()), http: &http.Client{Timeout: time.Minute}}
		s.temporal = dialTemporal(t)
		// The stack lives until every test of the package is done.
		ctx, stop := context.WithCancel(context.Background())
		var running sync.WaitGroup
		testenv.AtExit(func() { stop(); running.Wait(); s.temporal.Close() })
		running.Go(func() {
			if err := workers.Run(ctx, workers.Deps{Client: s.temporal, Pool: pool, Log: logger(), TaskQueue: s.taskQueue, Namespace: testenv.TemporalNamespace(),
				Alerts: testDeliverOptions(), SignalKeys: signalKeys}); err != nil {
				stackErr = err
			}
		})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			stackErr = err
			return
		}
		srv := api.New(pool, logger(), api.Options{IdempotencyTTL: time.Hour, RunLease: time.Minute, Temporal: s.temporal, TaskQueue: s.taskQueue,
			Keyring: testKeyring(), AlertEndpoints: testEndpoints, SignalKeys: signalKeys})
		running.Go(func() { _ = srv.Serve(ctx, ln, nil) })
		s.baseURL = "http://" + ln.Addr().String()
		sharedStack = s
	})
	require.NoError(t, stackErr)
	return sharedStack
}

// The package's servers and workers seal alert channels' credentials with one
// key-encryption key, handed to child processes through the environment as an operator
// would hand it to a deployment.
const childKEKEnv = "GOVERNOR_E2E_KEK"

var testKEK = sync.OnceValue(func() string {
	if k := os.Getenv(childKEKEnv); k != "" {
		return k
	}
	return envelope.GenerateKEK()
})

func testKeyring() *envelope.Keyring {
	k, err := envelope.ParseKEK(testKEK())
	if err != nil {
		panic(err)
	}
	kr, err := envelope.NewKeyring(k)
	if err != nil {
		panic(err)
	}
	return kr
}

// The receivers of these tests listen on 127.0.0.1 over plain http. Production refuses
// both; the harness allows them explicitly, through the operator's settings.
var testEndpoints = alerts.EndpointPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, AllowHTTP: true}

func testDeliverOptions() alerts.DeliverOptions {
	return alerts.DeliverOptions{Endpoints: testEndpoints, Keyring: testKeyring()}
}

// tenant is an organization with its admin's clients.
type tenant struct {
	*stack
	org   api.BootstrapResult
	admin clients
}

type clients struct {
	accounts  governorv1connect.AccountServiceClient
	keys      governorv1connect.ApiKeyServiceClient
	audit     governorv1connect.AuditServiceClient
	timeline  governorv1connect.TimelineServiceClient
	limits    governorv1connect.LimitServiceClient
	runs      governorv1connect.RunServiceClient
	incidents governorv1connect.IncidentServiceClient
	policies  governorv1connect.PolicyServiceClient
	alerts    governorv1connect.AlertServiceClient
	anomalies governorv1connect.AnomalyServiceClient
	analytics governorv1connect.AnalyticsServiceClient
}

func (s *stack) clientsFor(secret string) clients {
	auth := connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+secret)
			return next(ctx, req)
		}
	}))
	return clients{
		accounts: governorv1connect.NewAccountServiceClient(s.http, s.baseURL, auth),
		keys:     governorv1connect.NewApiKeyServiceClient(s.http, s.baseURL, auth),
		audit:    governorv1connect.NewAuditServiceClient(s.http, s.baseURL, auth),
		timeline: governorv1connect.NewTimelineServiceClient(s.http, s.baseURL, auth),
		limits:   governorv1connect.NewLimitServiceClient(s.http, s.baseURL, auth),
		runs:     governorv1connect.NewRunServiceClient(s.http, s.baseURL, auth),

		incidents: governorv1connect.NewIncidentServiceClient(s.http, s.baseURL, auth),
		policies:  governorv1connect.NewPolicyServiceClient(s.http, s.baseURL, auth),
		alerts:    governorv1connect.NewAlertServiceClient(s.http, s.baseURL, auth),
		anomalies: governorv1connect.NewAnomalyServiceClient(s.http, s.baseURL, auth),
		analytics: governorv1connect.NewAnalyticsServiceClient(s.http, s.baseURL, auth),
	}
}

func newTenant(t *testing.T, timeZone string) *tenant {
	t.Helper()
	s := getStack(t)
	res, err := api.Bootstrap(context.Background(), s.pool, "test:bootstrap", api.BootstrapInput{
		OrgName: t.Name(), TimeZone: timeZone, AdminEmail: "admin@example.com",
	})
	require.NoError(t, err)
	return &tenant{stack: s, org: res, admin: s.clientsFor(res.Secret)}
}

// agent makes a project and an agent, and an ingest key bound to the agent.
type agentKit struct {
	projectID string
	agentID   string
	keyID     string
	ingest    clients
}

func (tn *tenant) newAgent(t *testing.T, name string) agentKit {
	t.Helper()
	ctx := context.Background()
	p, err := tn.admin.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: "project of " + name}))
	require.NoError(t, err)
	return tn.newAgentIn(t, p.Msg.Project.Id, name)
}

func (tn *tenant) newAgentIn(t *testing.T, projectID, name string) agentKit {
	t.Helper()
	ctx := context.Background()
	a, err := tn.admin.accounts.CreateAgent(ctx, connect.NewRequest(&v1.CreateAgentRequest{ProjectId: projectID, Name: name}))
	require.NoError(t, err)
	k, err := tn.admin.keys.CreateApiKey(ctx, connect.NewRequest(&v1.CreateApiKeyRequest{Name: name + " ingest", Kind: v1.ApiKeyKind_API_KEY_KIND_INGEST, AgentId: a.Msg.Agent.Id}))
	require.NoError(t, err)
	return agentKit{projectID: projectID, agentID: a.Msg.Agent.Id, keyID: k.Msg.ApiKey.Id, ingest: tn.clientsFor(k.Msg.Secret)}
}

func (tn *tenant) createLimit(t *testing.T, req *v1.CreateLimitRequest) *v1.Limit {
	t.Helper()
	l, err := tn.admin.limits.CreateLimit(context.Background(), connect.NewRequest(req))
	require.NoError(t, err)
	return l.Msg.Limit
}

func orgScope() *v1.LimitScopeRef {
	return &v1.LimitScopeRef{Type: v1.LimitScope_LIMIT_SCOPE_ORGANIZATION}
}

const dollar = 1_000_000

// waitSettled polls until the run is settled by its workflow.
func waitSettled(t *testing.T, c clients, runID string) *v1.Run {
	t.Helper()
	var run *v1.Run
	eventually(t, patience, func() bool {
		r, err := c.runs.GetRun(context.Background(), connect.NewRequest(&v1.GetRunRequest{Id: runID}))
		require.NoError(t, err)
		run = r.Msg.Run
		return run.SettleTime != nil
	}, "run %s settles", runID)
	return run
}

func requireCode(t *testing.T, want connect.Code, err error) {
	t.Helper()
	require.Error(t, err)
	require.Equalf(t, want.String(), connect.CodeOf(err).String(), "error: %v", err)
}

type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}

// userKit is a user of a tenant with the clients of their key.
type userKit struct {
	clients
	userID string
}

func (tn *tenant) newUser(t *testing.T, role v1.Role) (userKit, *v1.ApiKey) {
	t.Helper()
	ctx := context.Background()
	u, err := tn.admin.accounts.CreateUser(ctx, connect.NewRequest(&v1.CreateUserRequest{
		Email: strings.ToLower(role.String()) + "-" + time.Now().Format("150405.000000") + "@example.com", Role: role}))
	require.NoError(t, err)
	// No API key may mint a key that acts as another user; the operator's path issues it.
	k, secret, err := api.IssueUserKey(ctx, tn.pool, "test:issue-user-key", api.IssueUserKeyInput{
		OrgID: tn.org.Organization.Id, UserID: u.Msg.User.Id, Name: "key of " + u.Msg.User.Email})
	require.NoError(t, err)
	return userKit{clients: tn.clientsFor(secret), userID: u.Msg.User.Id}, k
}
