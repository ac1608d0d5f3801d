package api_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/api"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/gen/governor/v1/governorv1connect"
	"github.com/governor-hq/governor/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// testBundle is a running API server on the package's database and an organization with
// an admin key.
type testBundle struct {
	pool    *pgxpool.Pool
	baseURL string
	http    *http.Client
	org     api.BootstrapResult
	admin   clients
}

// clients are the generated clients, authenticated with one key.
type clients struct {
	accounts governorv1connect.AccountServiceClient
	keys     governorv1connect.ApiKeyServiceClient
	audit    governorv1connect.AuditServiceClient
	timeline governorv1connect.TimelineServiceClient
}

func quietLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("GOVERNOR_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// startServer runs a real API server on a loopback port until the test ends.
func startServer(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	s := api.New(pool, quietLogger(), api.Options{IdempotencyTTL: time.Hour})
	go func() { done <- s.Serve(ctx, ln, nil) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return "http://" + ln.Addr().String()
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool := testenv.DB(t)
	b := &testBundle{pool: pool, baseURL: startServer(t, pool), http: &http.Client{Timeout: 30 * time.Second}}
	b.org = bootstrap(t, pool, "Acme "+t.Name())
	b.admin = b.clientsFor(b.org.Secret)
	return b
}

func bootstrap(t *testing.T, pool *pgxpool.Pool, name string) api.BootstrapResult {
	t.Helper()
	res, err := api.Bootstrap(context.Background(), pool, "test:bootstrap", api.BootstrapInput{
		OrgName: name, TimeZone: "Europe/Berlin", AdminEmail: "admin@example.com", AdminName: "Ada",
	})
	require.NoError(t, err)
	return res
}

// bearer adds the API key to every request.
func bearer(secret string) connect.ClientOption {
	return connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			if secret != "" {
				req.Header().Set("Authorization", "Bearer "+secret)
			}
			return next(ctx, req)
		}
	}), streamBearer(secret))
}

type streamBearer string

func (s streamBearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc { return next }
func (s streamBearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		if s != "" {
			conn.RequestHeader().Set("Authorization", "Bearer "+string(s))
		}
		return conn
	}
}
func (s streamBearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

func (b *testBundle) clientsFor(secret string, opts ...connect.ClientOption) clients {
	opts = append([]connect.ClientOption{bearer(secret)}, opts...)
	return clients{
		accounts: governorv1connect.NewAccountServiceClient(b.http, b.baseURL, opts...),
		keys:     governorv1connect.NewApiKeyServiceClient(b.http, b.baseURL, opts...),
		audit:    governorv1connect.NewAuditServiceClient(b.http, b.baseURL, opts...),
		timeline: governorv1connect.NewTimelineServiceClient(b.http, b.baseURL, opts...),
	}
}

// newUserKey creates a user with the role and a key for them, and returns its clients.
func (b *testBundle) newUserKey(t *testing.T, role v1.Role) (clients, *v1.ApiKey) {
	t.Helper()
	ctx := context.Background()
	u, err := b.admin.accounts.CreateUser(ctx, connect.NewRequest(&v1.CreateUserRequest{
		Email: role.String() + "-" + time.Now().Format("150405.000000") + "@example.com", Role: role,
	}))
	require.NoError(t, err)
	// An admin's key cannot mint a key that acts as another user; the operator's path can.
	k, secret, err := api.IssueUserKey(ctx, b.pool, "test:issue-user-key", api.IssueUserKeyInput{
		OrgID: b.org.Organization.Id, UserID: u.Msg.User.Id, Name: "key of " + u.Msg.User.Email,
	})
	require.NoError(t, err)
	return b.clientsFor(secret), k
}

func requireCode(t *testing.T, want connect.Code, err error) {
	t.Helper()
	require.Error(t, err)
	require.Equalf(t, want.String(), connect.CodeOf(err).String(), "error: %v", err)
}
