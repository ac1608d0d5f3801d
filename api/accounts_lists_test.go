package api_test

import (
	"context"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
)

// ListAgents lists the organization's agents in id order, narrowed to a project when
// asked, page by page; another organization's never appear.
func TestListAgents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var ids []string
	projects := map[string]string{} // agent -> project
	for _, name := range []string{"alpha", "beta"} {
		p, err := b.admin.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: name}))
		require.NoError(t, err)
		for _, agent := range []string{name + "-1", name + "-2"} {
			a, err := b.admin.accounts.CreateAgent(ctx, connect.NewRequest(&v1.CreateAgentRequest{ProjectId: p.Msg.Project.Id, Name: agent}))
			require.NoError(t, err)
			ids = append(ids, a.Msg.Agent.Id)
			projects[a.Msg.Agent.Id] = p.Msg.Project.Id
		}
	}
	other := b.clientsFor(bootstrap(t, b.pool, "Other "+t.Name()).Secret)
	op, err := other.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: "theirs"}))
	require.NoError(t, err)
	_, err = other.accounts.CreateAgent(ctx, connect.NewRequest(&v1.CreateAgentRequest{ProjectId: op.Msg.Project.Id, Name: "their agent"}))
	require.NoError(t, err)

	var got []string
	pages := 0
	for token := ""; ; {
		resp, err := b.admin.accounts.ListAgents(ctx, connect.NewRequest(&v1.ListAgentsRequest{PageSize: 3, PageToken: token}))
		require.NoError(t, err)
		pages++
		for _, a := range resp.Msg.Agents {
			got = append(got, a.Id)
			require.Equal(t, projects[a.Id], a.ProjectId)
			require.NotNil(t, a.CreateTime)
		}
		if token = resp.Msg.NextPageToken; token == "" {
			break
		}
	}
	require.Equal(t, ids, got, "every agent of the organization, in id order, none of the other's")
	require.Equal(t, 2, pages)

	beta := projects[ids[2]]
	resp, err := b.admin.accounts.ListAgents(ctx, connect.NewRequest(&v1.ListAgentsRequest{ProjectId: beta}))
	require.NoError(t, err)
	require.Len(t, resp.Msg.Agents, 2)
	require.Equal(t, ids[2:], []string{resp.Msg.Agents[0].Id, resp.Msg.Agents[1].Id})
	require.Empty(t, resp.Msg.NextPageToken)
	// The other organization's project, named by id, lists nothing.
	resp, err = b.admin.accounts.ListAgents(ctx, connect.NewRequest(&v1.ListAgentsRequest{ProjectId: op.Msg.Project.Id}))
	require.NoError(t, err)
	require.Empty(t, resp.Msg.Agents)
	// Viewers read it; a bad project id names the field.
	viewer, _ := b.newUserKey(t, v1.Role_ROLE_VIEWER)
	resp, err = viewer.accounts.ListAgents(ctx, connect.NewRequest(&v1.ListAgentsRequest{}))
	require.NoError(t, err)
	require.Len(t, resp.Msg.Agents, 4)
	_, err = b.admin.accounts.ListAgents(ctx, connect.NewRequest(&v1.ListAgentsRequest{ProjectId: "not a project"}))
	requireCode(t, connect.CodeInvalidArgument, err)
	require.Contains(t, err.Error(), "project_id")
}

// UpdateAgent changes only the fields given, records the change on the ledger (before and
// after) and on the timeline; only admins may, and only their organization's agents.
func TestUpdateAgent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	p, err := b.admin.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: "support"}))
	require.NoError(t, err)
	a, err := b.admin.accounts.CreateAgent(ctx, connect.NewRequest(&v1.CreateAgentRequest{ProjectId: p.Msg.Project.Id, Name: "triage",
		Description: "sorts tickets"}))
	require.NoError(t, err)
	id := a.Msg.Agent.Id

	name := "triage-v2"
	up, err := b.admin.accounts.UpdateAgent(ctx, connect.NewRequest(&v1.UpdateAgentRequest{Id: id, Name: &name}))
	require.NoError(t, err)
	require.Equal(t, "triage-v2", up.Msg.Agent.Name)
	require.Equal(t, "sorts tickets", up.Msg.Agent.Description, "fields not given stay")
	require.Equal(t, p.Msg.Project.Id, up.Msg.Agent.ProjectId)
	desc := "sorts and answers tickets"
	up, err = b.admin.accounts.UpdateAgent(ctx, connect.NewRequest(&v1.UpdateAgentRequest{Id: id, Description: &desc}))
	require.NoError(t, err)
	require.Equal(t, "triage-v2", up.Msg.Agent.Name)
	require.Equal(t, desc, up.Msg.Agent.Description)
	got, err := b.admin.accounts.GetAgent(ctx, connect.NewRequest(&v1.GetAgentRequest{Id: id}))
	require.NoError(t, err)
	require.Equal(t, "triage-v2", got.Msg.Agent.Name)
	require.Equal(t, desc, got.Msg.Agent.Description)

	entries, err := b.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{EntityId: id, Action: "agent.update"}))
	require.NoError(t, err)
	require.Len(t, entries.Msg.Entries, 2)
	require.Contains(t, entries.Msg.Entries[0].BeforeJson, `"name": "triage"`)
	require.Contains(t, entries.Msg.Entries[0].AfterJson, `"name": "triage-v2"`)
	require.Equal(t, b.org.Admin.Id, entries.Msg.Entries[0].Actor.UserId)
	evs, err := b.admin.timeline.ListEvents(ctx, connect.NewRequest(&v1.ListEventsRequest{Filter: &v1.EventFilter{
		Types: []string{"agent_updated"}, Entity: &v1.EntityRef{Type: "agent", Id: id}}}))
	require.NoError(t, err)
	require.Len(t, evs.Msg.Events, 2)

	viewer, _ := b.newUserKey(t, v1.Role_ROLE_VIEWER)
	_, err = viewer.accounts.UpdateAgent(ctx, connect.NewRequest(&v1.UpdateAgentRequest{Id: id, Name: &name}))
	requireCode(t, connect.CodePermissionDenied, err)
	other := b.clientsFor(bootstrap(t, b.pool, "Other "+t.Name()).Secret)
	stolen := "stolen"
	_, err = other.accounts.UpdateAgent(ctx, connect.NewRequest(&v1.UpdateAgentRequest{Id: id, Name: &stolen}))
	requireCode(t, connect.CodeNotFound, err)
	empty := ""
	_, err = b.admin.accounts.UpdateAgent(ctx, connect.NewRequest(&v1.UpdateAgentRequest{Id: id, Name: &empty}))
	requireCode(t, connect.CodeInvalidArgument, err)
	require.Contains(t, err.Error(), "name")
	got, err = b.admin.accounts.GetAgent(ctx, connect.NewRequest(&v1.GetAgentRequest{Id: id}))
	require.NoError(t, err)
	require.Equal(t, "triage-v2", got.Msg.Agent.Name, "refused updates changed nothing")
}

// ListUsers lists the organization's users with their roles and state, page by page.
func TestListUsers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	roles := map[string]v1.Role{b.org.Admin.Id: v1.Role_ROLE_ADMIN}
	for _, role := range []v1.Role{v1.Role_ROLE_APPROVER, v1.Role_ROLE_VIEWER} {
		_, k := b.newUserKey(t, role)
		roles[k.UserId] = role
	}
	var viewerID string
	for id, r := range roles {
		if r == v1.Role_ROLE_VIEWER {
			viewerID = id
		}
	}
	yes := true
	_, err := b.admin.accounts.UpdateUser(ctx, connect.NewRequest(&v1.UpdateUserRequest{Id: viewerID, Deactivated: &yes}))
	require.NoError(t, err)
	_ = bootstrap(t, b.pool, "Other "+t.Name()) // its admin must not show up

	got := map[string]*v1.User{}
	pages := 0
	for token := ""; ; {
		resp, err := b.admin.accounts.ListUsers(ctx, connect.NewRequest(&v1.ListUsersRequest{PageSize: 2, PageToken: token}))
		require.NoError(t, err)
		pages++
		for _, u := range resp.Msg.Users {
			got[u.Id] = u
		}
		if token = resp.Msg.NextPageToken; token == "" {
			break
		}
	}
	require.Equal(t, 2, pages)
	require.Len(t, got, 3)
	for id, role := range roles {
		require.Contains(t, got, id)
		require.Equal(t, role, got[id].Role)
		require.Equal(t, id == viewerID, got[id].Deactivated, id)
	}
	require.Equal(t, "admin@example.com", got[b.org.Admin.Id].Email)
}
