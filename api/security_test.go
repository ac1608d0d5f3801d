package api_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/governor-hq/governor/api"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
)

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	a := setup(t)
	ctx := context.Background()
	other := bootstrap(t, a.pool, "Other tenant "+t.Name())
	b := a.clientsFor(other.Secret)

	prj, err := a.admin.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: "secret-project"}))
	require.NoError(t, err)
	agt, err := a.admin.accounts.CreateAgent(ctx, connect.NewRequest(&v1.CreateAgentRequest{ProjectId: prj.Msg.Project.Id, Name: "a"}))
	require.NoError(t, err)

	// Another tenant's objects are NotFound, never visible, never changeable.
	_, err = b.accounts.GetProject(ctx, connect.NewRequest(&v1.GetProjectRequest{Id: prj.Msg.Project.Id}))
	requireCode(t, connect.CodeNotFound, err)
	_, err = b.accounts.GetAgent(ctx, connect.NewRequest(&v1.GetAgentRequest{Id: agt.Msg.Agent.Id}))
	requireCode(t, connect.CodeNotFound, err)
	_, err = b.accounts.GetUser(ctx, connect.NewRequest(&v1.GetUserRequest{Id: a.org.Admin.Id}))
	requireCode(t, connect.CodeNotFound, err)
	name := "taken over"
	_, err = b.accounts.UpdateProject(ctx, connect.NewRequest(&v1.UpdateProjectRequest{Id: prj.Msg.Project.Id, Name: &name}))
	requireCode(t, connect.CodeNotFound, err)
	_, err = b.accounts.CreateAgent(ctx, connect.NewRequest(&v1.CreateAgentRequest{ProjectId: prj.Msg.Project.Id, Name: "intruder"}))
	requireCode(t, connect.CodeNotFound, err)
	_, err = b.keys.GetApiKey(ctx, connect.NewRequest(&v1.GetApiKeyRequest{Id: a.org.APIKey.Id}))
	requireCode(t, connect.CodeNotFound, err)
	_, err = b.keys.FreezeApiKey(ctx, connect.NewRequest(&v1.FreezeApiKeyRequest{Id: a.org.APIKey.Id}))
	requireCode(t, connect.CodeNotFound, err)
	_, err = b.keys.CreateApiKey(ctx, connect.NewRequest(&v1.CreateApiKeyRequest{Name: "x", Kind: v1.ApiKeyKind_API_KEY_KIND_INGEST, AgentId: agt.Msg.Agent.Id}))
	requireCode(t, connect.CodeNotFound, err)
	_, err = b.keys.CreateApiKey(ctx, connect.NewRequest(&v1.CreateApiKeyRequest{Name: "x", Kind: v1.ApiKeyKind_API_KEY_KIND_USER, UserId: a.org.Admin.Id}))
	requireCode(t, connect.CodeNotFound, err)

	// Lists, the ledger and the timeline show only the caller's organization.
	projects, err := b.accounts.ListProjects(ctx, connect.NewRequest(&v1.ListProjectsRequest{}))
	require.NoError(t, err)
	require.Empty(t, projects.Msg.Projects)
	keys, err := b.keys.ListApiKeys(ctx, connect.NewRequest(&v1.ListApiKeysRequest{}))
	require.NoError(t, err)
	require.Len(t, keys.Msg.ApiKeys, 1)
	require.Equal(t, other.APIKey.Id, keys.Msg.ApiKeys[0].Id)
	entries, err := b.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{EntityId: prj.Msg.Project.Id}))
	require.NoError(t, err)
	require.Empty(t, entries.Msg.Entries)
	evs, err := b.timeline.ListEvents(ctx, connect.NewRequest(&v1.ListEventsRequest{}))
	require.NoError(t, err)
	for _, e := range evs.Msg.Events {
		require.NotEqual(t, prj.Msg.Project.Id, e.Entity.Id)
	}
	org, err := b.accounts.GetOrganization(ctx, connect.NewRequest(&v1.GetOrganizationRequest{}))
	require.NoError(t, err)
	require.Equal(t, other.Organization.Id, org.Msg.Organization.Id)
}

func TestRolesLimitWhatKeysMayDo(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	viewer, _ := b.newUserKey(t, v1.Role_ROLE_VIEWER)
	approver, _ := b.newUserKey(t, v1.Role_ROLE_APPROVER)
	prj, err := b.admin.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: "p"}))
	require.NoError(t, err)
	ingestResp, err := b.admin.keys.CreateApiKey(ctx, connect.NewRequest(&v1.CreateApiKeyRequest{Name: "agent", Kind: v1.ApiKeyKind_API_KEY_KIND_INGEST}))
	require.NoError(t, err)
	ingest := b.clientsFor(ingestResp.Msg.Secret)

	for name, c := range map[string]clients{"viewer": viewer, "approver": approver} {
		_, err := c.accounts.ListProjects(ctx, connect.NewRequest(&v1.ListProjectsRequest{}))
		require.NoError(t, err, name)
		_, err = c.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{}))
		require.NoError(t, err, name)
		_, err = c.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: "by " + name}))
		requireCode(t, connect.CodePermissionDenied, err)
		_, err = c.keys.CreateApiKey(ctx, connect.NewRequest(&v1.CreateApiKeyRequest{Name: "x", Kind: v1.ApiKeyKind_API_KEY_KIND_INGEST}))
		requireCode(t, connect.CodePermissionDenied, err)
		_, err = c.keys.FreezeApiKey(ctx, connect.NewRequest(&v1.FreezeApiKeyRequest{Id: b.org.APIKey.Id}))
		requireCode(t, connect.CodePermissionDenied, err)
	}
	_, err = ingest.accounts.GetProject(ctx, connect.NewRequest(&v1.GetProjectRequest{Id: prj.Msg.Project.Id}))
	requireCode(t, connect.CodePermissionDenied, err)
	_, err = ingest.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{}))
	requireCode(t, connect.CodePermissionDenied, err)

	// A refused call changes nothing and records nothing.
	entries, err := b.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{Action: "project.create"}))
	require.NoError(t, err)
	require.Len(t, entries.Msg.Entries, 1)
}

// Every RPC of every Governor service must say what it needs; one that does not would be
// refused to everyone.
func TestEveryRPCHasAPermission(t *testing.T) {
	t.Parallel()
	n := 0
	protoregistry.GlobalFiles.RangeFilesByPackage("governor.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				proc := "/" + string(sd.FullName()) + "/" + string(sd.Methods().Get(j).Name())
				require.Contains(t, api.Permissions(), proc)
				n++
			}
		}
		return true
	})
	require.Greater(t, n, 20)
}

func TestKeyStates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	c, key := b.newUserKey(t, v1.Role_ROLE_VIEWER)
	call := func(c clients) error {
		_, err := c.accounts.GetOrganization(ctx, connect.NewRequest(&v1.GetOrganizationRequest{}))
		return err
	}
	require.NoError(t, call(c))

	// No key, garbage, an unknown key.
	requireCode(t, connect.CodeUnauthenticated, call(b.clientsFor("")))
	requireCode(t, connect.CodeUnauthenticated, call(b.clientsFor("let-me-in")))
	requireCode(t, connect.CodeUnauthenticated, call(b.clientsFor("gvk_AAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB")))

	// Frozen: refused until unfrozen. Freezing twice is a no-op with one audit entry.
	for range 2 {
		fr, err := b.admin.keys.FreezeApiKey(ctx, connect.NewRequest(&v1.FreezeApiKeyRequest{Id: key.Id, Reason: "investigating"}))
		require.NoError(t, err)
		require.Equal(t, v1.ApiKeyStatus_API_KEY_STATUS_FROZEN, fr.Msg.ApiKey.Status)
	}
	requireCode(t, connect.CodePermissionDenied, call(c))
	_, err := b.admin.keys.UnfreezeApiKey(ctx, connect.NewRequest(&v1.UnfreezeApiKeyRequest{Id: key.Id}))
	require.NoError(t, err)
	require.NoError(t, call(c))
	freezes, err := b.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{EntityId: key.Id, Action: "api_key.freeze"}))
	require.NoError(t, err)
	require.Len(t, freezes.Msg.Entries, 1)
	require.Contains(t, freezes.Msg.Entries[0].BeforeJson, "API_KEY_STATUS_ACTIVE")
	require.Contains(t, freezes.Msg.Entries[0].AfterJson, "API_KEY_STATUS_FROZEN")

	// Rotation with a grace period: both secrets work; without one, only the new. (An
	// admin rotates keys of their own: rotating the viewer's would hand them its secret.)
	_, err = b.admin.keys.RotateApiKey(ctx, connect.NewRequest(&v1.RotateApiKeyRequest{Id: key.Id}))
	requireCode(t, connect.CodePermissionDenied, err)
	own, err := b.admin.keys.CreateApiKey(ctx, connect.NewRequest(&v1.CreateApiKeyRequest{Name: "admin's second", Kind: v1.ApiKeyKind_API_KEY_KIND_USER, UserId: b.org.Admin.Id}))
	require.NoError(t, err)
	oldSecretClients := b.clientsFor(own.Msg.Secret)
	require.NoError(t, call(oldSecretClients))
	rot, err := b.admin.keys.RotateApiKey(ctx, connect.NewRequest(&v1.RotateApiKeyRequest{Id: own.Msg.ApiKey.Id, GracePeriod: durationpb.New(time.Hour)}))
	require.NoError(t, err)
	require.NotNil(t, rot.Msg.ApiKey.PreviousSecretExpireTime)
	newClients := b.clientsFor(rot.Msg.Secret)
	require.NoError(t, call(oldSecretClients))
	require.NoError(t, call(newClients))
	rot2, err := b.admin.keys.RotateApiKey(ctx, connect.NewRequest(&v1.RotateApiKeyRequest{Id: own.Msg.ApiKey.Id}))
	require.NoError(t, err)
	requireCode(t, connect.CodeUnauthenticated, call(oldSecretClients))
	requireCode(t, connect.CodeUnauthenticated, call(newClients))
	latest := b.clientsFor(rot2.Msg.Secret)
	require.NoError(t, call(latest))
	_, err = b.admin.keys.RevokeApiKey(ctx, connect.NewRequest(&v1.RevokeApiKeyRequest{Id: own.Msg.ApiKey.Id}))
	require.NoError(t, err)
	requireCode(t, connect.CodeUnauthenticated, call(latest))

	// Revoked: gone for good (an admin may revoke anyone's key).
	_, err = b.admin.keys.RevokeApiKey(ctx, connect.NewRequest(&v1.RevokeApiKeyRequest{Id: key.Id}))
	require.NoError(t, err)
	requireCode(t, connect.CodeUnauthenticated, call(c))
	_, err = b.admin.keys.UnfreezeApiKey(ctx, connect.NewRequest(&v1.UnfreezeApiKeyRequest{Id: key.Id}))
	requireCode(t, connect.CodeFailedPrecondition, err)

	// Last use is recorded.
	got, err := b.admin.keys.GetApiKey(ctx, connect.NewRequest(&v1.GetApiKeyRequest{Id: key.Id}))
	require.NoError(t, err)
	require.NotNil(t, got.Msg.ApiKey.LastUsedTime)
	require.WithinDuration(t, time.Now(), got.Msg.ApiKey.LastUsedTime.AsTime(), time.Minute)
}

func TestExpiredKeysAndDeactivatedUsers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	u, err := b.admin.accounts.CreateUser(ctx, connect.NewRequest(&v1.CreateUserRequest{Email: "temp@example.com", Role: v1.Role_ROLE_VIEWER}))
	require.NoError(t, err)
	expires := time.Now().Add(1500 * time.Millisecond)
	_, secret, err := api.IssueUserKey(ctx, b.pool, "test:issue-user-key", api.IssueUserKeyInput{
		OrgID: b.org.Organization.Id, UserID: u.Msg.User.Id, Name: "short", ExpiresAt: &expires,
	})
	require.NoError(t, err)
	c := b.clientsFor(secret)
	_, err = c.accounts.GetOrganization(ctx, connect.NewRequest(&v1.GetOrganizationRequest{}))
	require.NoError(t, err)
	yes := true
	_, err = b.admin.accounts.UpdateUser(ctx, connect.NewRequest(&v1.UpdateUserRequest{Id: u.Msg.User.Id, Deactivated: &yes}))
	require.NoError(t, err)
	_, err = c.accounts.GetOrganization(ctx, connect.NewRequest(&v1.GetOrganizationRequest{}))
	requireCode(t, connect.CodePermissionDenied, err)
	no := false
	_, err = b.admin.accounts.UpdateUser(ctx, connect.NewRequest(&v1.UpdateUserRequest{Id: u.Msg.User.Id, Deactivated: &no}))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := c.accounts.GetOrganization(ctx, connect.NewRequest(&v1.GetOrganizationRequest{}))
		return connect.CodeOf(err) == connect.CodeUnauthenticated
	}, 10*time.Second, 100*time.Millisecond, "the key expires")

	_, err = b.admin.keys.CreateApiKey(ctx, connect.NewRequest(&v1.CreateApiKeyRequest{
		Name: "past", Kind: v1.ApiKeyKind_API_KEY_KIND_USER, UserId: u.Msg.User.Id,
		ExpireTime: timestamppb.New(time.Now().Add(-time.Hour)),
	}))
	requireCode(t, connect.CodeInvalidArgument, err)
	require.Contains(t, err.Error(), "expire_time")
}

func TestValidationNamesTheField(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	cases := []struct {
		name  string
		call  func() error
		field string
	}{
		{"empty name", func() error {
			_, err := b.admin.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{}))
			return err
		}, "name"},
		{"bad id", func() error {
			_, err := b.admin.accounts.GetProject(ctx, connect.NewRequest(&v1.GetProjectRequest{Id: "42; DROP TABLE projects"}))
			return err
		}, "id"},
		{"bad email", func() error {
			_, err := b.admin.accounts.CreateUser(ctx, connect.NewRequest(&v1.CreateUserRequest{Email: "nope", Role: v1.Role_ROLE_VIEWER}))
			return err
		}, "email"},
		{"user role ingest", func() error {
			_, err := b.admin.accounts.CreateUser(ctx, connect.NewRequest(&v1.CreateUserRequest{Email: "a@b.co", Role: v1.Role_ROLE_INGEST}))
			return err
		}, "role"},
		{"user key without user", func() error {
			_, err := b.admin.keys.CreateApiKey(ctx, connect.NewRequest(&v1.CreateApiKeyRequest{Name: "k", Kind: v1.ApiKeyKind_API_KEY_KIND_USER}))
			return err
		}, "user_id"},
		{"page size", func() error {
			_, err := b.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{PageSize: 100000}))
			return err
		}, "page_size"},
		{"grace period", func() error {
			_, err := b.admin.keys.RotateApiKey(ctx, connect.NewRequest(&v1.RotateApiKeyRequest{Id: b.org.APIKey.Id, GracePeriod: durationpb.New(365 * 24 * time.Hour)}))
			return err
		}, "grace_period"},
	}
	for _, c := range cases {
		err := c.call()
		requireCode(t, connect.CodeInvalidArgument, err)
		require.Contains(t, err.Error(), c.field, c.name)
		var ce *connect.Error
		require.True(t, errors.As(err, &ce))
		found := false
		for _, d := range ce.Details() {
			if v, err := d.Value(); err == nil {
				if _, ok := v.(*validate.Violations); ok {
					found = true
				}
			}
		}
		require.True(t, found, "%s: the error carries field violations", c.name)
	}
}

func TestRequestsPerMinuteLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	c, key := b.newUserKey(t, v1.Role_ROLE_VIEWER)
	rpm := int32(5)
	upd, err := b.admin.keys.UpdateApiKey(ctx, connect.NewRequest(&v1.UpdateApiKeyRequest{Id: key.Id, RequestsPerMinute: &rpm}))
	require.NoError(t, err)
	require.Equal(t, rpm, upd.Msg.ApiKey.RequestsPerMinute)
	ok, limited := 0, 0
	var last error
	for range 8 {
		_, err := c.accounts.GetOrganization(ctx, connect.NewRequest(&v1.GetOrganizationRequest{}))
		if err == nil {
			ok++
			continue
		}
		requireCode(t, connect.CodeResourceExhausted, err)
		limited++
		last = err
	}
	// A sliding window may carry a little of the previous minute; it never lets more
	// than the limit through.
	require.LessOrEqual(t, ok, 5)
	require.GreaterOrEqual(t, limited, 3)
	var ce *connect.Error
	require.True(t, errors.As(last, &ce))
	var retry *errdetails.RetryInfo
	var info *errdetails.ErrorInfo
	for _, d := range ce.Details() {
		v, err := d.Value()
		require.NoError(t, err)
		switch v := v.(type) {
		case *errdetails.RetryInfo:
			retry = v
		case *errdetails.ErrorInfo:
			info = v
		}
	}
	require.NotNil(t, retry)
	require.Greater(t, retry.RetryDelay.AsDuration(), time.Duration(0))
	require.NotNil(t, info)
	require.Equal(t, "API_KEY_RATE_LIMITED", info.Reason)
	require.NotEmpty(t, ce.Meta().Get("Retry-After"))
}

// A raw HTTP call, as curl would make it, gets JSON and a request id.
func TestPlainHTTPJSON(t *testing.T) {
	t.Parallel()
	b := setup(t)
	req, err := http.NewRequest(http.MethodPost, b.baseURL+"/governor.v1.AccountService/GetOrganization", strings.NewReader("{}"))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+b.org.Secret)
	req.Header.Set("X-Request-Id", "my-request-1")
	resp, err := b.http.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "my-request-1", resp.Header.Get("X-Request-Id"))
}
