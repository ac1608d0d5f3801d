package api_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
)

// The walkthrough: a bootstrap key creates a project, an agent and an ingest key,
// and each action is on the audit ledger and the timeline.
func TestBootstrapKeyCreatesProjectAgentAndIngestKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	prj, err := b.admin.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: "support-bot", Description: "customer support"}))
	require.NoError(t, err)
	require.Regexp(t, `^prj_[0-9a-z]{26}$`, prj.Msg.Project.Id)
	agt, err := b.admin.accounts.CreateAgent(ctx, connect.NewRequest(&v1.CreateAgentRequest{ProjectId: prj.Msg.Project.Id, Name: "triage"}))
	require.NoError(t, err)
	require.Equal(t, prj.Msg.Project.Id, agt.Msg.Agent.ProjectId)
	key, err := b.admin.keys.CreateApiKey(ctx, connect.NewRequest(&v1.CreateApiKeyRequest{
		Name: "triage ingest", Kind: v1.ApiKeyKind_API_KEY_KIND_INGEST, AgentId: agt.Msg.Agent.Id,
	}))
	require.NoError(t, err)
	k := key.Msg.ApiKey
	require.Equal(t, v1.Role_ROLE_INGEST, k.Role)
	require.Equal(t, prj.Msg.Project.Id, k.ProjectId, "an agent-bound key is bound to the agent's project")
	require.True(t, strings.HasPrefix(key.Msg.Secret, k.Prefix+"_"))

	// The secret is never shown again.
	got, err := b.admin.keys.GetApiKey(ctx, connect.NewRequest(&v1.GetApiKeyRequest{Id: k.Id}))
	require.NoError(t, err)
	require.NotContains(t, got.Msg.String(), key.Msg.Secret)

	// The ledger holds each action, with the acting key and user.
	entries, err := b.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{}))
	require.NoError(t, err)
	var actions []string
	for _, e := range entries.Msg.Entries {
		actions = append(actions, e.Action)
	}
	require.Equal(t, []string{"organization.create", "alert_channel.create", "user.create", "api_key.create", "project.create", "agent.create", "api_key.create"}, actions)
	last := entries.Msg.Entries[6]
	require.Equal(t, k.Id, last.EntityId)
	require.Equal(t, "api_key", last.EntityType)
	require.Equal(t, b.org.APIKey.Id, last.Actor.ApiKeyId)
	require.Equal(t, b.org.Admin.Id, last.Actor.UserId)
	require.Empty(t, last.BeforeJson)
	require.Contains(t, last.AfterJson, k.Id)
	require.NotContains(t, last.AfterJson, key.Msg.Secret, "the ledger never holds a secret")
	require.NotEmpty(t, last.RequestId)
	require.Equal(t, entries.Msg.Entries[5].Hash, last.PreviousHash, "entries are chained")

	byType, err := b.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{EntityType: "api_key"}))
	require.NoError(t, err)
	require.Len(t, byType.Msg.Entries, 2)

	evs, err := b.admin.timeline.ListEvents(ctx, connect.NewRequest(&v1.ListEventsRequest{}))
	require.NoError(t, err)
	var types []string
	for _, e := range evs.Msg.Events {
		types = append(types, e.Type)
	}
	require.Equal(t, []string{"organization_created", "channel_created", "user_created", "api_key_created", "project_created", "agent_created", "api_key_created"}, types)

	// Events about the agent include the key bound to it (related entities).
	agentEvents, err := b.admin.timeline.ListEvents(ctx, connect.NewRequest(&v1.ListEventsRequest{
		Filter: &v1.EventFilter{Entity: &v1.EntityRef{Type: "agent", Id: agt.Msg.Agent.Id}},
	}))
	require.NoError(t, err)
	require.Len(t, agentEvents.Msg.Events, 2)
	require.Equal(t, "api_key_created", agentEvents.Msg.Events[1].Type)
}

func TestUpdatesRecordBeforeAndAfter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	prj, err := b.admin.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: "alpha"}))
	require.NoError(t, err)
	name := "beta"
	up, err := b.admin.accounts.UpdateProject(ctx, connect.NewRequest(&v1.UpdateProjectRequest{Id: prj.Msg.Project.Id, Name: &name}))
	require.NoError(t, err)
	require.Equal(t, "beta", up.Msg.Project.Name)
	entries, err := b.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{Action: "project.update"}))
	require.NoError(t, err)
	require.Len(t, entries.Msg.Entries, 1)
	require.Contains(t, entries.Msg.Entries[0].BeforeJson, `"name": "alpha"`)
	require.Contains(t, entries.Msg.Entries[0].AfterJson, `"name": "beta"`)

	tz := "America/New_York"
	org, err := b.admin.accounts.UpdateOrganization(ctx, connect.NewRequest(&v1.UpdateOrganizationRequest{TimeZone: &tz}))
	require.NoError(t, err)
	require.Equal(t, tz, org.Msg.Organization.TimeZone)

	bad := "Mars/Olympus_Mons"
	_, err = b.admin.accounts.UpdateOrganization(ctx, connect.NewRequest(&v1.UpdateOrganizationRequest{TimeZone: &bad}))
	requireCode(t, connect.CodeInvalidArgument, err)
	require.Contains(t, err.Error(), "time_zone")

	// Names are unique per organization.
	_, err = b.admin.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: "beta"}))
	requireCode(t, connect.CodeAlreadyExists, err)
}

func TestLastAdminCannotBeRemoved(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	yes := true
	_, err := b.admin.accounts.UpdateUser(ctx, connect.NewRequest(&v1.UpdateUserRequest{Id: b.org.Admin.Id, Deactivated: &yes}))
	requireCode(t, connect.CodeFailedPrecondition, err)
	viewer := v1.Role_ROLE_VIEWER
	_, err = b.admin.accounts.UpdateUser(ctx, connect.NewRequest(&v1.UpdateUserRequest{Id: b.org.Admin.Id, Role: &viewer}))
	requireCode(t, connect.CodeFailedPrecondition, err)
	// Nothing of the refused changes was recorded.
	entries, err := b.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{Action: "user.update"}))
	require.NoError(t, err)
	require.Empty(t, entries.Msg.Entries)
}

func TestPagination(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var want []string
	for i := range 7 {
		p, err := b.admin.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: fmt.Sprintf("p%d", i)}))
		require.NoError(t, err)
		want = append(want, p.Msg.Project.Id)
	}
	var got []string
	token := ""
	pages := 0
	for {
		resp, err := b.admin.accounts.ListProjects(ctx, connect.NewRequest(&v1.ListProjectsRequest{PageSize: 3, PageToken: token}))
		require.NoError(t, err)
		pages++
		for _, p := range resp.Msg.Projects {
			got = append(got, p.Id)
		}
		token = resp.Msg.NextPageToken
		if token == "" {
			break
		}
	}
	require.Equal(t, want, got)
	require.Equal(t, 3, pages)

	// The ledger pages newest first too.
	first, err := b.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{NewestFirst: true, PageSize: 4}))
	require.NoError(t, err)
	require.Len(t, first.Msg.Entries, 4)
	second, err := b.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{NewestFirst: true, PageSize: 4, PageToken: first.Msg.NextPageToken}))
	require.NoError(t, err)
	require.Equal(t, first.Msg.Entries[3].Sequence-1, second.Msg.Entries[0].Sequence)

	_, err = b.admin.accounts.ListProjects(ctx, connect.NewRequest(&v1.ListProjectsRequest{PageToken: "not-a-token"}))
	requireCode(t, connect.CodeInvalidArgument, err)
	require.Contains(t, err.Error(), "page_token")
}
