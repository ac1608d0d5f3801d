package api_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/gen/governor/v1/governorv1connect"
)

// h2cClient speaks cleartext HTTP/2, as gRPC clients do.
func h2cClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Protocols: func() *http.Protocols { p := new(http.Protocols); p.SetUnencryptedHTTP2(true); return p }(),
	}}
}

func TestGRPCHealthReflectionAndMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	h2 := h2cClient()

	// The same service over the gRPC and gRPC-Web protocols.
	for name, opt := range map[string]connect.ClientOption{"grpc": connect.WithGRPC(), "grpc-web": connect.WithGRPCWeb()} {
		c := governorv1connect.NewAccountServiceClient(h2, b.baseURL, bearer(b.org.Secret), opt)
		org, err := c.GetOrganization(ctx, connect.NewRequest(&v1.GetOrganizationRequest{}))
		require.NoError(t, err, name)
		require.Equal(t, b.org.Organization.Id, org.Msg.Organization.Id)
		_, err = governorv1connect.NewAccountServiceClient(h2, b.baseURL, opt).GetOrganization(ctx, connect.NewRequest(&v1.GetOrganizationRequest{}))
		requireCode(t, connect.CodeUnauthenticated, err)
	}

	health := connect.NewClient[healthpb.HealthCheckRequest, healthpb.HealthCheckResponse](h2, b.baseURL+"/grpc.health.v1.Health/Check", connect.WithGRPC())
	hr, err := health.CallUnary(ctx, connect.NewRequest(&healthpb.HealthCheckRequest{}))
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, hr.Msg.Status)
	hr, err = health.CallUnary(ctx, connect.NewRequest(&healthpb.HealthCheckRequest{Service: "governor.v1.AuditService"}))
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, hr.Msg.Status)
	_, err = health.CallUnary(ctx, connect.NewRequest(&healthpb.HealthCheckRequest{Service: "nope.Service"}))
	requireCode(t, connect.CodeNotFound, err)
	list, err := connect.NewClient[healthpb.HealthListRequest, healthpb.HealthListResponse](h2, b.baseURL+"/grpc.health.v1.Health/List", connect.WithGRPC()).
		CallUnary(ctx, connect.NewRequest(&healthpb.HealthListRequest{}))
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, list.Msg.Statuses["governor.v1.RunService"].GetStatus())

	// Server reflection, v1 and v1alpha, as grpcurl and buf curl use it.
	for _, path := range []string{"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"} {
		rc := connect.NewClient[reflectionpb.ServerReflectionRequest, reflectionpb.ServerReflectionResponse](h2, b.baseURL+path, connect.WithGRPC())
		stream := rc.CallBidiStream(ctx)
		require.NoError(t, stream.Send(&reflectionpb.ServerReflectionRequest{
			MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{ListServices: "*"},
		}))
		require.NoError(t, stream.CloseRequest())
		msg, err := stream.Receive()
		require.NoError(t, err, path)
		require.NoError(t, stream.CloseResponse())
		var got []string
		for _, s := range msg.GetListServicesResponse().GetService() {
			got = append(got, s.Name)
		}
		for _, want := range []string{"governor.v1.AccountService", "governor.v1.ApiKeyService", "governor.v1.AuditService", "governor.v1.TimelineService", "grpc.health.v1.Health"} {
			require.Contains(t, got, want, path)
		}
	}

	resp, err := b.http.Get(b.baseURL + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Contains(t, string(body), `governor_rpc_requests_total{code="ok",procedure="/governor.v1.AccountService/GetOrganization"}`)
	require.Contains(t, string(body), `governor_rpc_requests_total{code="unauthenticated",procedure="/governor.v1.AccountService/GetOrganization"}`)
	require.Contains(t, string(body), "governor_rpc_duration_seconds_bucket")
}

func TestWatchEventsDeliversLiveAndReplays(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	stream, err := b.admin.timeline.WatchEvents(ctx, connect.NewRequest(&v1.WatchEventsRequest{
		Filter: &v1.EventFilter{Domains: []string{"accounts"}},
	}))
	require.NoError(t, err)
	defer stream.Close()
	// Headers arrive once the server has subscribed: from here on nothing is missed.
	_ = stream.ResponseHeader()

	p, err := b.admin.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: "live"}))
	require.NoError(t, err)
	_, err = b.admin.keys.CreateApiKey(ctx, connect.NewRequest(&v1.CreateApiKeyRequest{Name: "filtered out", Kind: v1.ApiKeyKind_API_KEY_KIND_INGEST}))
	require.NoError(t, err)
	a, err := b.admin.accounts.CreateAgent(ctx, connect.NewRequest(&v1.CreateAgentRequest{ProjectId: p.Msg.Project.Id, Name: "live-agent"}))
	require.NoError(t, err)

	require.True(t, stream.Receive(), stream.Err())
	first := stream.Msg().Event
	require.Equal(t, "project_created", first.Type)
	require.Equal(t, p.Msg.Project.Id, first.Entity.Id)
	require.True(t, stream.Receive(), stream.Err())
	require.Equal(t, "agent_created", stream.Msg().Event.Type, "the keys-domain event is filtered out")
	require.Equal(t, a.Msg.Agent.Id, stream.Msg().Event.Entity.Id)

	// Resuming after a sequence replays what followed it, then goes live.
	resumed, err := b.admin.timeline.WatchEvents(ctx, connect.NewRequest(&v1.WatchEventsRequest{AfterSequence: first.Sequence}))
	require.NoError(t, err)
	defer resumed.Close()
	var types []string
	for len(types) < 2 && resumed.Receive() {
		types = append(types, resumed.Msg().Event.Type)
	}
	require.Equal(t, []string{"api_key_created", "agent_created"}, types)

	// Another tenant's events never arrive.
	other := bootstrap(t, b.pool, "Other "+t.Name())
	oc := b.clientsFor(other.Secret)
	_, err = oc.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: "theirs"}))
	require.NoError(t, err)
	_, err = b.admin.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: "ours"}))
	require.NoError(t, err)
	require.True(t, stream.Receive(), stream.Err())
	require.True(t, strings.HasSuffix(stream.Msg().Event.Summary, "ours created"), stream.Msg().Event.Summary)
}
