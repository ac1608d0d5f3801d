package api

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"

	"github.com/governor-hq/governor/db"
	"github.com/governor-hq/governor/db/dbsqlc"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/authz"
	"github.com/governor-hq/governor/internal/change"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/ids"
)

type accountService struct{ *Server }

var q = dbsqlc.New()

func entity(typ, id string) events.Ref { return events.Ref{Type: typ, ID: id} }

func (s *accountService) GetOrganization(ctx context.Context, _ *connect.Request[v1.GetOrganizationRequest]) (*connect.Response[v1.GetOrganizationResponse], error) {
	o, err := q.OrgGet(ctx, s.pool, principal(ctx).OrgID)
	if err != nil {
		return nil, db.NotFound(err)
	}
	return connect.NewResponse(&v1.GetOrganizationResponse{Organization: organizationProto(o)}), nil
}

func (s *accountService) UpdateOrganization(ctx context.Context, req *connect.Request[v1.UpdateOrganizationRequest]) (*connect.Response[v1.UpdateOrganizationResponse], error) {
	if req.Msg.TimeZone != nil {
		if _, err := time.LoadLocation(req.Msg.GetTimeZone()); err != nil || req.Msg.GetTimeZone() == "Local" {
			return nil, invalidField("time_zone", "time_zone.iana", "%q is not an IANA time zone name", req.Msg.GetTimeZone())
		}
	}
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.UpdateOrganizationResponse, error) {
		before, err := c.Q.OrgGetForUpdate(ctx, c.DB, c.OrgID)
		if err != nil {
			return nil, db.NotFound(err)
		}
		after, err := c.Q.OrgUpdate(ctx, c.DB, dbsqlc.OrgUpdateParams{ID: c.OrgID, Name: req.Msg.Name, TimeZone: req.Msg.TimeZone})
		if err != nil {
			return nil, err
		}
		b, a := organizationProto(before), organizationProto(after)
		err = c.Record(ctx, "organization.update", b, a, events.Event{
			Domain: events.DomainAccounts, Type: "organization_updated", Entity: entity("organization", c.OrgID),
			Summary: "Organization settings updated",
		})
		return &v1.UpdateOrganizationResponse{Organization: a}, err
	})
}

func (s *accountService) CreateProject(ctx context.Context, req *connect.Request[v1.CreateProjectRequest]) (*connect.Response[v1.CreateProjectResponse], error) {
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.CreateProjectResponse, error) {
		p, err := c.Q.ProjectCreate(ctx, c.DB, dbsqlc.ProjectCreateParams{
			OrgID: c.OrgID, ID: ids.New(ids.Project), Name: req.Msg.Name, Description: req.Msg.Description,
		})
		if err != nil {
			return nil, err
		}
		out := projectProto(p)
		err = c.Record(ctx, "project.create", nil, out, events.Event{
			Domain: events.DomainAccounts, Type: "project_created", Entity: entity("project", p.ID),
			Summary: "Project " + p.Name + " created",
		})
		return &v1.CreateProjectResponse{Project: out}, err
	})
}

func (s *accountService) GetProject(ctx context.Context, req *connect.Request[v1.GetProjectRequest]) (*connect.Response[v1.GetProjectResponse], error) {
	p, err := q.ProjectGet(ctx, s.pool, dbsqlc.ProjectGetParams{OrgID: principal(ctx).OrgID, ID: req.Msg.Id})
	if err != nil {
		return nil, notFoundOr(err, "project %s not found", req.Msg.Id)
	}
	return connect.NewResponse(&v1.GetProjectResponse{Project: projectProto(p)}), nil
}

func (s *accountService) ListProjects(ctx context.Context, req *connect.Request[v1.ListProjectsRequest]) (*connect.Response[v1.ListProjectsResponse], error) {
	cur, err := decodeCursor(req.Msg.PageToken)
	if err != nil {
		return nil, err
	}
	size := pageSize(req.Msg.PageSize)
	rows, err := q.ProjectList(ctx, s.pool, dbsqlc.ProjectListParams{OrgID: principal(ctx).OrgID, AfterID: cur.ID, Max: size + 1})
	if err != nil {
		return nil, err
	}
	rows, more := page(rows, size)
	out := &v1.ListProjectsResponse{}
	for _, p := range rows {
		out.Projects = append(out.Projects, projectProto(p))
	}
	if more {
		out.NextPageToken = encodeCursor(cursor{ID: rows[len(rows)-1].ID})
	}
	return connect.NewResponse(out), nil
}

func (s *accountService) UpdateProject(ctx context.Context, req *connect.Request[v1.UpdateProjectRequest]) (*connect.Response[v1.UpdateProjectResponse], error) {
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.UpdateProjectResponse, error) {
		before, err := c.Q.ProjectGetForUpdate(ctx, c.DB, dbsqlc.ProjectGetForUpdateParams{OrgID: c.OrgID, ID: req.Msg.Id})
		if err != nil {
			return nil, notFoundOr(err, "project %s not found", req.Msg.Id)
		}
		after, err := c.Q.ProjectUpdate(ctx, c.DB, dbsqlc.ProjectUpdateParams{
			OrgID: c.OrgID, ID: req.Msg.Id, Name: req.Msg.Name, Description: req.Msg.Description,
		})
		if err != nil {
			return nil, err
		}
		out := projectProto(after)
		err = c.Record(ctx, "project.update", projectProto(before), out, events.Event{
			Domain: events.DomainAccounts, Type: "project_updated", Entity: entity("project", after.ID),
			Summary: "Project " + after.Name + " updated",
		})
		return &v1.UpdateProjectResponse{Project: out}, err
	})
}

func (s *accountService) CreateAgent(ctx context.Context, req *connect.Request[v1.CreateAgentRequest]) (*connect.Response[v1.CreateAgentResponse], error) {
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.CreateAgentResponse, error) {
		if _, err := c.Q.ProjectGet(ctx, c.DB, dbsqlc.ProjectGetParams{OrgID: c.OrgID, ID: req.Msg.ProjectId}); err != nil {
			return nil, notFoundOr(err, "project_id: project %s not found", req.Msg.ProjectId)
		}
		a, err := c.Q.AgentCreate(ctx, c.DB, dbsqlc.AgentCreateParams{
			OrgID: c.OrgID, ID: ids.New(ids.Agent), ProjectID: req.Msg.ProjectId, Name: req.Msg.Name, Description: req.Msg.Description,
		})
		if err != nil {
			return nil, err
		}
		out := agentProto(a)
		err = c.Record(ctx, "agent.create", nil, out, events.Event{
			Domain: events.DomainAccounts, Type: "agent_created", Entity: entity("agent", a.ID),
			Related: []events.Ref{entity("project", a.ProjectID)},
			Summary: "Agent " + a.Name + " created",
		})
		return &v1.CreateAgentResponse{Agent: out}, err
	})
}

func (s *accountService) GetAgent(ctx context.Context, req *connect.Request[v1.GetAgentRequest]) (*connect.Response[v1.GetAgentResponse], error) {
	a, err := q.AgentGet(ctx, s.pool, dbsqlc.AgentGetParams{OrgID: principal(ctx).OrgID, ID: req.Msg.Id})
	if err != nil {
		return nil, notFoundOr(err, "agent %s not found", req.Msg.Id)
	}
	return connect.NewResponse(&v1.GetAgentResponse{Agent: agentProto(a)}), nil
}

func (s *accountService) ListAgents(ctx context.Context, req *connect.Request[v1.ListAgentsRequest]) (*connect.Response[v1.ListAgentsResponse], error) {
	cur, err := decodeCursor(req.Msg.PageToken)
	if err != nil {
		return nil, err
	}
	size := pageSize(req.Msg.PageSize)
	rows, err := q.AgentList(ctx, s.pool, dbsqlc.AgentListParams{
		OrgID: principal(ctx).OrgID, ProjectID: req.Msg.ProjectId, AfterID: cur.ID, Max: size + 1,
	})
	if err != nil {
		return nil, err
	}
	rows, more := page(rows, size)
	out := &v1.ListAgentsResponse{}
	for _, a := range rows {
		out.Agents = append(out.Agents, agentProto(a))
	}
	if more {
		out.NextPageToken = encodeCursor(cursor{ID: rows[len(rows)-1].ID})
	}
	return connect.NewResponse(out), nil
}

func (s *accountService) UpdateAgent(ctx context.Context, req *connect.Request[v1.UpdateAgentRequest]) (*connect.Response[v1.UpdateAgentResponse], error) {
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.UpdateAgentResponse, error) {
		before, err := c.Q.AgentGetForUpdate(ctx, c.DB, dbsqlc.AgentGetForUpdateParams{OrgID: c.OrgID, ID: req.Msg.Id})
		if err != nil {
			return nil, notFoundOr(err, "agent %s not found", req.Msg.Id)
		}
		after, err := c.Q.AgentUpdate(ctx, c.DB, dbsqlc.AgentUpdateParams{
			OrgID: c.OrgID, ID: req.Msg.Id, Name: req.Msg.Name, Description: req.Msg.Description,
		})
		if err != nil {
			return nil, err
		}
		out := agentProto(after)
		err = c.Record(ctx, "agent.update", agentProto(before), out, events.Event{
			Domain: events.DomainAccounts, Type: "agent_updated", Entity: entity("agent", after.ID),
			Related: []events.Ref{entity("project", after.ProjectID)},
			Summary: "Agent " + after.Name + " updated",
		})
		return &v1.UpdateAgentResponse{Agent: out}, err
	})
}

func (s *accountService) CreateUser(ctx context.Context, req *connect.Request[v1.CreateUserRequest]) (*connect.Response[v1.CreateUserResponse], error) {
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.CreateUserResponse, error) {
		u, err := c.Q.UserCreate(ctx, c.DB, dbsqlc.UserCreateParams{
			OrgID: c.OrgID, ID: ids.New(ids.User), Email: req.Msg.Email, DisplayName: req.Msg.DisplayName,
			Role: roleFromProto(req.Msg.Role),
		})
		if err != nil {
			return nil, err
		}
		out := userProto(u)
		err = c.Record(ctx, "user.create", nil, out, events.Event{
			Domain: events.DomainAccounts, Type: "user_created", Entity: entity("user", u.ID),
			Summary: "User " + u.Email + " created with role " + u.Role,
		})
		return &v1.CreateUserResponse{User: out}, err
	})
}

func (s *accountService) GetUser(ctx context.Context, req *connect.Request[v1.GetUserRequest]) (*connect.Response[v1.GetUserResponse], error) {
	u, err := q.UserGet(ctx, s.pool, dbsqlc.UserGetParams{OrgID: principal(ctx).OrgID, ID: req.Msg.Id})
	if err != nil {
		return nil, notFoundOr(err, "user %s not found", req.Msg.Id)
	}
	return connect.NewResponse(&v1.GetUserResponse{User: userProto(u)}), nil
}

func (s *accountService) ListUsers(ctx context.Context, req *connect.Request[v1.ListUsersRequest]) (*connect.Response[v1.ListUsersResponse], error) {
	cur, err := decodeCursor(req.Msg.PageToken)
	if err != nil {
		return nil, err
	}
	size := pageSize(req.Msg.PageSize)
	rows, err := q.UserList(ctx, s.pool, dbsqlc.UserListParams{OrgID: principal(ctx).OrgID, AfterID: cur.ID, Max: size + 1})
	if err != nil {
		return nil, err
	}
	rows, more := page(rows, size)
	out := &v1.ListUsersResponse{}
	for _, u := range rows {
		out.Users = append(out.Users, userProto(u))
	}
	if more {
		out.NextPageToken = encodeCursor(cursor{ID: rows[len(rows)-1].ID})
	}
	return connect.NewResponse(out), nil
}

func (s *accountService) UpdateUser(ctx context.Context, req *connect.Request[v1.UpdateUserRequest]) (*connect.Response[v1.UpdateUserResponse], error) {
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.UpdateUserResponse, error) {
		before, err := c.Q.UserGetForUpdate(ctx, c.DB, dbsqlc.UserGetForUpdateParams{OrgID: c.OrgID, ID: req.Msg.Id})
		if err != nil {
			return nil, notFoundOr(err, "user %s not found", req.Msg.Id)
		}
		var role *string
		if req.Msg.Role != nil {
			r := roleFromProto(req.Msg.GetRole())
			role = &r
		}
		after, err := c.Q.UserUpdate(ctx, c.DB, dbsqlc.UserUpdateParams{
			OrgID: c.OrgID, ID: req.Msg.Id, DisplayName: req.Msg.DisplayName, Role: role, Deactivated: req.Msg.Deactivated,
		})
		if err != nil {
			return nil, err
		}
		if before.Role == authz.RoleAdmin && before.DeactivatedAt == nil {
			admins, err := c.Q.UserCountActiveAdmins(ctx, c.DB, c.OrgID)
			if err != nil {
				return nil, err
			}
			if admins == 0 {
				return nil, failedPrecondition("user %s is the last active admin of the organization", before.ID)
			}
		}
		out := userProto(after)
		err = c.Record(ctx, "user.update", userProto(before), out, events.Event{
			Domain: events.DomainAccounts, Type: "user_updated", Entity: entity("user", after.ID),
			Summary: "User " + after.Email + " updated",
		})
		return &v1.UpdateUserResponse{User: out}, err
	})
}

// notFoundOr turns a missing row into a NotFound error with a message naming what is
// missing; other errors pass through.
func notFoundOr(err error, format string, args ...any) error {
	if errors.Is(db.NotFound(err), db.ErrNotFound) {
		return notFound(format, args...)
	}
	return err
}
