package api

import (
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/governor-hq/governor/db/dbsqlc"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/actor"
	"github.com/governor-hq/governor/internal/authz"
)

// Conversions from database rows to API messages. Rows never leave the server.

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

func tsp(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}

func str(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func strp(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

var roleToProto = map[string]v1.Role{
	authz.RoleAdmin:    v1.Role_ROLE_ADMIN,
	authz.RoleApprover: v1.Role_ROLE_APPROVER,
	authz.RoleViewer:   v1.Role_ROLE_VIEWER,
	authz.RoleIngest:   v1.Role_ROLE_INGEST,
}

func roleFromProto(r v1.Role) string {
	for k, v := range roleToProto {
		if v == r {
			return k
		}
	}
	return ""
}

func organizationProto(o dbsqlc.Organization) *v1.Organization {
	return &v1.Organization{Id: o.ID, Name: o.Name, TimeZone: o.TimeZone, CreateTime: ts(o.CreatedAt), UpdateTime: ts(o.UpdatedAt)}
}

func projectProto(p dbsqlc.Project) *v1.Project {
	return &v1.Project{Id: p.ID, Name: p.Name, Description: p.Description, CreateTime: ts(p.CreatedAt), UpdateTime: ts(p.UpdatedAt)}
}

func agentProto(a dbsqlc.Agent) *v1.Agent {
	return &v1.Agent{Id: a.ID, ProjectId: a.ProjectID, Name: a.Name, Description: a.Description, CreateTime: ts(a.CreatedAt), UpdateTime: ts(a.UpdatedAt)}
}

func userProto(u dbsqlc.User) *v1.User {
	return &v1.User{Id: u.ID, Email: u.Email, DisplayName: u.DisplayName, Role: roleToProto[u.Role],
		Deactivated: u.DeactivatedAt != nil, CreateTime: ts(u.CreatedAt), UpdateTime: ts(u.UpdatedAt)}
}

var keyStatusToProto = map[string]v1.ApiKeyStatus{
	"active":  v1.ApiKeyStatus_API_KEY_STATUS_ACTIVE,
	"frozen":  v1.ApiKeyStatus_API_KEY_STATUS_FROZEN,
	"revoked": v1.ApiKeyStatus_API_KEY_STATUS_REVOKED,
}

var keyKindToProto = map[string]v1.ApiKeyKind{
	"user":   v1.ApiKeyKind_API_KEY_KIND_USER,
	"ingest": v1.ApiKeyKind_API_KEY_KIND_INGEST,
}

// apiKeyProto renders a key; role is its user's role for user keys.
func apiKeyProto(k dbsqlc.ApiKey, userRole string) *v1.ApiKey {
	role := userRole
	if k.Kind == "ingest" {
		role = authz.RoleIngest
	}
	out := &v1.ApiKey{
		Id: k.ID, Name: k.Name, Kind: keyKindToProto[k.Kind], Prefix: k.Prefix,
		Status: keyStatusToProto[k.Status], Role: roleToProto[role],
		UserId: str(k.UserID), ProjectId: str(k.ProjectID), AgentId: str(k.AgentID),
		RequestsPerMinute: k.RequestsPerMinute,
		CreateTime:        ts(k.CreatedAt), UpdateTime: ts(k.UpdatedAt),
		LastUsedTime: tsp(k.LastUsedAt), ExpireTime: tsp(k.ExpiresAt),
		FreezeTime: tsp(k.FrozenAt), RevokeTime: tsp(k.RevokedAt), RotateTime: tsp(k.RotatedAt),
	}
	if k.PrevSecretHash != nil && k.PrevSecretExpiresAt != nil && k.PrevSecretExpiresAt.After(time.Now()) {
		out.PreviousSecretExpireTime = ts(*k.PrevSecretExpiresAt)
	}
	return out
}

func apiKeyDetailProto(k dbsqlc.ApiKeyDetail) *v1.ApiKey {
	return apiKeyProto(dbsqlc.ApiKey{
		OrgID: k.OrgID, ID: k.ID, Name: k.Name, Kind: k.Kind, Prefix: k.Prefix,
		PrevSecretHash: k.PrevSecretHash, PrevSecretExpiresAt: k.PrevSecretExpiresAt, Status: k.Status,
		UserID: k.UserID, ProjectID: k.ProjectID, AgentID: k.AgentID, RequestsPerMinute: k.RequestsPerMinute,
		ExpiresAt: k.ExpiresAt, LastUsedAt: k.LastUsedAt, CreatedAt: k.CreatedAt, UpdatedAt: k.UpdatedAt,
		FrozenAt: k.FrozenAt, RevokedAt: k.RevokedAt, RotatedAt: k.RotatedAt,
	}, k.UserRole)
}

var actorKindToProto = map[string]v1.ActorKind{
	actor.KindAPIKey: v1.ActorKind_ACTOR_KIND_API_KEY,
	actor.KindSystem: v1.ActorKind_ACTOR_KIND_SYSTEM,
}

func actorProto(kind, keyID, userID, system string) *v1.Actor {
	return &v1.Actor{Kind: actorKindToProto[kind], ApiKeyId: keyID, UserId: userID, System: system}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
