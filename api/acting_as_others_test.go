package api_test

import (
	"context"
	"google.golang.org/protobuf/types/known/durationpb"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/api"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/gen/governor/v1/governorv1connect"
	"github.com/governor-hq/governor/internal/authz"
)

// Keys may not act as other keys or other users: issue 8, section 5.

// An Idempotency-Key is the calling key's: another key of the same organization sending
// the same one (with the same request) makes its own request and never gets the first
// key's response.
func TestIdempotencyRecordsBelongToTheCallingKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	second, err := b.admin.keys.CreateApiKey(ctx, connect.NewRequest(&v1.CreateApiKeyRequest{Name: "admin's second key",
		Kind: v1.ApiKeyKind_API_KEY_KIND_USER, UserId: b.org.Admin.Id}))
	require.NoError(t, err)
	other := b.clientsFor(second.Msg.Secret)
	create := func(c clients) *connect.Response[v1.CreateApiKeyResponse] {
		req := connect.NewRequest(&v1.CreateApiKeyRequest{Name: "agent key", Kind: v1.ApiKeyKind_API_KEY_KIND_INGEST})
		req.Header().Set("Idempotency-Key", "shared-key-1")
		resp, err := c.keys.CreateApiKey(ctx, req)
		require.NoError(t, err)
		return resp
	}
	a1 := create(b.admin)
	b1 := create(other)
	require.Empty(t, b1.Header().Get(api.ReplayedHeader), "not a replay of the other key's request")
	require.NotEqual(t, a1.Msg.ApiKey.Id, b1.Msg.ApiKey.Id, "its own key was created")
	require.NotEqual(t, a1.Msg.Secret, b1.Msg.Secret, "and the first key's secret was not handed over")
	// Each key still replays its own.
	a2, b2 := create(b.admin), create(other)
	require.Equal(t, "true", a2.Header().Get(api.ReplayedHeader))
	require.Equal(t, a1.Msg.ApiKey.Id, a2.Msg.ApiKey.Id)
	require.Equal(t, "true", b2.Header().Get(api.ReplayedHeader))
	require.Equal(t, b1.Msg.ApiKey.Id, b2.Msg.ApiKey.Id)

	var records int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM idempotency_records WHERE org_id = $1`, b.org.Organization.Id).Scan(&records))
	require.Equal(t, 2, records, "one record per calling key")
	created, err := b.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{Action: "api_key.create", EntityType: "api_key"}))
	require.NoError(t, err)
	ingest := 0
	for _, e := range created.Msg.Entries {
		if strings.Contains(e.AfterJson, "agent key") {
			ingest++
		}
	}
	require.Equal(t, 2, ingest, "two requests, two changes")
}

// An admin cannot mint or rotate a key that acts as another user (which would let them
// approve as an approver, or be audited as them); revoking and freezing are fine. Admins
// create ingest keys and keys of their own.
func TestAdminsCannotMintOrRotateKeysThatActAsOthers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	approver, approverKey := b.newUserKey(t, v1.Role_ROLE_APPROVER)

	_, err := b.admin.keys.CreateApiKey(ctx, connect.NewRequest(&v1.CreateApiKeyRequest{Name: "impersonation",
		Kind: v1.ApiKeyKind_API_KEY_KIND_USER, UserId: approverKey.UserId}))
	requireCode(t, connect.CodePermissionDenied, err)
	require.Contains(t, err.Error(), "own user")
	_, err = b.admin.keys.RotateApiKey(ctx, connect.NewRequest(&v1.RotateApiKeyRequest{Id: approverKey.Id}))
	requireCode(t, connect.CodePermissionDenied, err)
	_, err = approver.accounts.GetOrganization(ctx, connect.NewRequest(&v1.GetOrganizationRequest{}))
	require.NoError(t, err, "the refused rotation left the approver's secret working")
	keys, err := b.admin.keys.ListApiKeys(ctx, connect.NewRequest(&v1.ListApiKeysRequest{UserId: approverKey.UserId}))
	require.NoError(t, err)
	require.Len(t, keys.Msg.ApiKeys, 1, "no key was minted for the approver")
	rotations, err := b.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{Action: "api_key.rotate"}))
	require.NoError(t, err)
	require.Empty(t, rotations.Msg.Entries)

	// What an admin may do.
	own, err := b.admin.keys.CreateApiKey(ctx, connect.NewRequest(&v1.CreateApiKeyRequest{Name: "mine",
		Kind: v1.ApiKeyKind_API_KEY_KIND_USER, UserId: b.org.Admin.Id}))
	require.NoError(t, err)
	_, err = b.admin.keys.RotateApiKey(ctx, connect.NewRequest(&v1.RotateApiKeyRequest{Id: own.Msg.ApiKey.Id}))
	require.NoError(t, err)
	ing, err := b.admin.keys.CreateApiKey(ctx, connect.NewRequest(&v1.CreateApiKeyRequest{Name: "agent", Kind: v1.ApiKeyKind_API_KEY_KIND_INGEST}))
	require.NoError(t, err)
	_, err = b.admin.keys.RotateApiKey(ctx, connect.NewRequest(&v1.RotateApiKeyRequest{Id: ing.Msg.ApiKey.Id}))
	require.NoError(t, err)
	// Any user rotates their own key; an ingest key only an admin rotates.
	_, err = approver.keys.RotateApiKey(ctx, connect.NewRequest(&v1.RotateApiKeyRequest{Id: ing.Msg.ApiKey.Id}))
	requireCode(t, connect.CodePermissionDenied, err)
	rotated, err := approver.keys.RotateApiKey(ctx, connect.NewRequest(&v1.RotateApiKeyRequest{Id: approverKey.Id, GracePeriod: durationpb.New(time.Minute)}))
	require.NoError(t, err)
	require.NotEmpty(t, rotated.Msg.Secret)
	_, err = b.admin.keys.FreezeApiKey(ctx, connect.NewRequest(&v1.FreezeApiKeyRequest{Id: approverKey.Id}))
	require.NoError(t, err)
	_, err = b.admin.keys.RevokeApiKey(ctx, connect.NewRequest(&v1.RevokeApiKeyRequest{Id: approverKey.Id}))
	require.NoError(t, err)
	_, err = approver.accounts.GetOrganization(ctx, connect.NewRequest(&v1.GetOrganizationRequest{}))
	requireCode(t, connect.CodeUnauthenticated, err)

	// Another organization's user stays NotFound, not PermissionDenied.
	other := bootstrap(t, b.pool, "Other "+t.Name())
	_, err = b.admin.keys.CreateApiKey(ctx, connect.NewRequest(&v1.CreateApiKeyRequest{Name: "x",
		Kind: v1.ApiKeyKind_API_KEY_KIND_USER, UserId: other.Admin.Id}))
	requireCode(t, connect.CodeNotFound, err)
}

// ingestClients are the clients an agent's key uses.
type ingestClients struct {
	limits governorv1connect.LimitServiceClient
	runs   governorv1connect.RunServiceClient
}

func (b *testBundle) ingestFor(secret string) ingestClients {
	return ingestClients{
		limits: governorv1connect.NewLimitServiceClient(b.http, b.baseURL, bearer(secret)),
		runs:   governorv1connect.NewRunServiceClient(b.http, b.baseURL, bearer(secret)),
	}
}

func (b *testBundle) ingestKey(t *testing.T, req *v1.CreateApiKeyRequest) (ingestClients, string) {
	t.Helper()
	req.Kind = v1.ApiKeyKind_API_KEY_KIND_INGEST
	if req.Name == "" {
		req.Name = "ingest"
	}
	k, err := b.admin.keys.CreateApiKey(context.Background(), connect.NewRequest(req))
	require.NoError(t, err)
	return b.ingestFor(k.Msg.Secret), k.Msg.ApiKey.Id
}

// Every RPC an ingest key may call keeps it to its project or agent, and to itself: it
// cannot read another project's limits and usage, nor run as another key.
func TestIngestKeysStayInTheirProject(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	mk := func(name string) (string, string, string) {
		p, err := b.admin.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: name}))
		require.NoError(t, err)
		a1, err := b.admin.accounts.CreateAgent(ctx, connect.NewRequest(&v1.CreateAgentRequest{ProjectId: p.Msg.Project.Id, Name: name + "-a"}))
		require.NoError(t, err)
		a2, err := b.admin.accounts.CreateAgent(ctx, connect.NewRequest(&v1.CreateAgentRequest{ProjectId: p.Msg.Project.Id, Name: name + "-b"}))
		require.NoError(t, err)
		return p.Msg.Project.Id, a1.Msg.Agent.Id, a2.Msg.Agent.Id
	}
	mine, mineA, mineB := mk("mine")
	_, theirs, _ := mk("theirs")
	limit, err := governorv1connect.NewLimitServiceClient(b.http, b.baseURL, bearer(b.org.Secret)).CreateLimit(ctx, connect.NewRequest(&v1.CreateLimitRequest{
		Scope: &v1.LimitScopeRef{Type: v1.LimitScope_LIMIT_SCOPE_AGENT, Id: theirs}, Metric: v1.LimitMetric_LIMIT_METRIC_COST,
		Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 5_000_000, Name: "their budget"}))
	require.NoError(t, err)

	projectKey, projectKeyID := b.ingestKey(t, &v1.CreateApiKeyRequest{ProjectId: mine})
	agentKey, _ := b.ingestKey(t, &v1.CreateApiKeyRequest{AgentId: mineA})
	theirKey, theirKeyID := b.ingestKey(t, &v1.CreateApiKeyRequest{AgentId: theirs})
	orgKey, _ := b.ingestKey(t, &v1.CreateApiKeyRequest{})

	check := func(c ingestClients, agent, key string) error {
		_, err := c.limits.CheckLimits(ctx, connect.NewRequest(&v1.CheckLimitsRequest{AgentId: agent, ApiKeyId: key,
			Estimate: &v1.Estimate{CostMicros: 1}}))
		return err
	}
	// CheckLimits: the own project's agents only, as itself only.
	require.NoError(t, check(projectKey, mineA, ""))
	require.NoError(t, check(projectKey, mineB, projectKeyID))
	err = check(projectKey, theirs, "")
	requireCode(t, connect.CodePermissionDenied, err)
	require.Contains(t, err.Error(), "project "+mine)
	requireCode(t, connect.CodePermissionDenied, check(projectKey, mineA, theirKeyID))
	requireCode(t, connect.CodeNotFound, check(projectKey, "agt_00000000000000000000000000", ""))
	requireCode(t, connect.CodePermissionDenied, check(agentKey, mineB, ""))
	require.NoError(t, check(agentKey, mineA, ""))
	require.NoError(t, check(orgKey, theirs, ""), "an unbound ingest key is the organization's")
	requireCode(t, connect.CodePermissionDenied, check(orgKey, theirs, theirKeyID))
	// What the refusal withheld: their limit and its usage.
	own, err := theirKey.limits.CheckLimits(ctx, connect.NewRequest(&v1.CheckLimitsRequest{AgentId: theirs}))
	require.NoError(t, err)
	require.Len(t, own.Msg.Checks, 1)
	require.Equal(t, limit.Msg.Limit.Id, own.Msg.Checks[0].LimitId)

	// GetEffectiveLimits is not an ingest key's to call at all.
	_, err = projectKey.limits.GetEffectiveLimits(ctx, connect.NewRequest(&v1.GetEffectiveLimitsRequest{AgentId: mineA}))
	requireCode(t, connect.CodePermissionDenied, err)

	// AdmitRun, HeartbeatRun, CompleteRun: only for the key's own project's runs.
	_, err = projectKey.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: theirs}))
	requireCode(t, connect.CodePermissionDenied, err)
	theirRun, err := theirKey.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: theirs, Estimate: &v1.Estimate{CostMicros: 1}}))
	require.NoError(t, err)
	runID := theirRun.Msg.Run.Id
	_, err = projectKey.runs.HeartbeatRun(ctx, connect.NewRequest(&v1.HeartbeatRunRequest{RunId: runID}))
	requireCode(t, connect.CodePermissionDenied, err)
	cost := int64(1)
	_, err = projectKey.runs.CompleteRun(ctx, connect.NewRequest(&v1.CompleteRunRequest{RunId: runID, Status: v1.RunStatus_RUN_STATUS_SUCCEEDED, CostMicros: &cost}))
	requireCode(t, connect.CodePermissionDenied, err)
	_, err = theirKey.runs.HeartbeatRun(ctx, connect.NewRequest(&v1.HeartbeatRunRequest{RunId: runID}))
	require.NoError(t, err, "its own key still may")
	_, err = projectKey.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: mineB}))
	require.NoError(t, err)
}

// The RPCs an ingest key may call are exactly the ones TestIngestKeysStayInTheirProject
// checks: opening another one to ingest keys fails here until it is scoped and tested.
func TestIngestKeysReachOnlyScopedRPCs(t *testing.T) {
	t.Parallel()
	var open []string
	for proc, need := range api.Permissions() {
		if authz.Allows(authz.RoleIngest, need) {
			open = append(open, proc)
		}
	}
	require.ElementsMatch(t, []string{
		governorv1connect.LimitServiceCheckLimitsProcedure,
		governorv1connect.RunServiceAdmitRunProcedure,
		governorv1connect.RunServiceHeartbeatRunProcedure,
		governorv1connect.RunServiceCompleteRunProcedure,
		// Scoped like CompleteRun: only runs the key may act for (e2e records tests).
		governorv1connect.RunServiceRecordLlmCallsProcedure,
		governorv1connect.RunServiceRecordFeedbackProcedure,
	}, open)
}
