package api

import (
	"context"
	"time"

	"connectrpc.com/connect"

	"github.com/governor-hq/governor/db/dbsqlc"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/analytics"
	"github.com/governor-hq/governor/internal/analytics/usage"
	"github.com/governor-hq/governor/internal/apikeys"
	"github.com/governor-hq/governor/internal/authz"
	"github.com/governor-hq/governor/internal/change"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/limits"
)

type apiKeyService struct{ *Server }

var kindFromProto = map[v1.ApiKeyKind]string{
	v1.ApiKeyKind_API_KEY_KIND_USER:   "user",
	v1.ApiKeyKind_API_KEY_KIND_INGEST: "ingest",
}

var statusFromProto = map[v1.ApiKeyStatus]string{
	v1.ApiKeyStatus_API_KEY_STATUS_ACTIVE:  "active",
	v1.ApiKeyStatus_API_KEY_STATUS_FROZEN:  "frozen",
	v1.ApiKeyStatus_API_KEY_STATUS_REVOKED: "revoked",
}

// actsAsAnother refuses to hand the caller a secret that acts as another user. A user
// key carries its user's role and identity: minting or rotating one for someone else
// would let an admin approve as an approver (and make a quorum of one person), or be
// audited as them. Admins create ingest keys and keys of their own; revoking, freezing and
// renaming anyone's key is fine (it yields no secret). A user's first key is issued by an
// operator (`governor admin create-user-key`), who holds the database anyway.
func actsAsAnother(verb, userID string) error {
	return permissionDenied("a key may %s user keys only for its own user: a key of user %s would act as them "+
		"(ingest keys are fine; an operator issues a user's key with `governor admin create-user-key`)", verb, userID)
}

func (s *apiKeyService) CreateApiKey(ctx context.Context, req *connect.Request[v1.CreateApiKeyRequest]) (*connect.Response[v1.CreateApiKeyResponse], error) {
	m := req.Msg
	if m.ExpireTime != nil && !m.ExpireTime.AsTime().After(time.Now()) {
		return nil, invalidField("expire_time", "expire_time.future", "must be in the future")
	}
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.CreateApiKeyResponse, error) {
		params := dbsqlc.ApiKeyCreateParams{
			OrgID: c.OrgID, ID: ids.New(ids.APIKey), Name: m.Name, Kind: kindFromProto[m.Kind],
			RequestsPerMinute: m.RequestsPerMinute,
			UserID:            strp(m.UserId), ProjectID: strp(m.ProjectId), AgentID: strp(m.AgentId),
		}
		if m.ExpireTime != nil {
			t := m.ExpireTime.AsTime()
			params.ExpiresAt = &t
		}
		userRole := ""
		related := []events.Ref{}
		switch params.Kind {
		case "user":
			u, err := c.Q.UserGet(ctx, c.DB, dbsqlc.UserGetParams{OrgID: c.OrgID, ID: m.UserId})
			if err != nil {
				return nil, notFoundOr(err, "user_id: user %s not found", m.UserId)
			}
			if u.DeactivatedAt != nil {
				return nil, failedPrecondition("user %s is deactivated", u.ID)
			}
			if u.ID != c.Actor.UserID {
				return nil, actsAsAnother("create", u.ID)
			}
			userRole = u.Role
			related = append(related, entity("user", u.ID))
		case "ingest":
			if m.ProjectId != "" {
				if _, err := c.Q.ProjectGet(ctx, c.DB, dbsqlc.ProjectGetParams{OrgID: c.OrgID, ID: m.ProjectId}); err != nil {
					return nil, notFoundOr(err, "project_id: project %s not found", m.ProjectId)
				}
				related = append(related, entity("project", m.ProjectId))
			}
			if m.AgentId != "" {
				a, err := c.Q.AgentGet(ctx, c.DB, dbsqlc.AgentGetParams{OrgID: c.OrgID, ID: m.AgentId})
				if err != nil {
					return nil, notFoundOr(err, "agent_id: agent %s not found", m.AgentId)
				}
				if m.ProjectId != "" && a.ProjectID != m.ProjectId {
					return nil, invalidField("agent_id", "agent_id.in_project", "agent %s is not in project %s", a.ID, m.ProjectId)
				}
				// An agent-bound key is bound to the agent's project too.
				params.ProjectID = &a.ProjectID
				related = append(related, entity("agent", a.ID))
			}
		}
		secret := apikeys.New()
		params.Prefix, params.SecretHash = secret.Prefix, secret.Hash
		k, err := c.Q.ApiKeyCreate(ctx, c.DB, params)
		if err != nil {
			return nil, err
		}
		out := apiKeyProto(k, userRole)
		err = c.Record(ctx, "api_key.create", nil, out, events.Event{
			Domain: events.DomainKeys, Type: "api_key_created", Entity: entity("api_key", k.ID), Related: related,
			Summary: "API key " + k.Name + " (" + k.Prefix + ") created",
		})
		return &v1.CreateApiKeyResponse{ApiKey: out, Secret: secret.Plaintext}, err
	})
}

func (s *apiKeyService) GetApiKey(ctx context.Context, req *connect.Request[v1.GetApiKeyRequest]) (*connect.Response[v1.GetApiKeyResponse], error) {
	k, err := q.ApiKeyGet(ctx, s.pool, dbsqlc.ApiKeyGetParams{OrgID: principal(ctx).OrgID, ID: req.Msg.Id})
	if err != nil {
		return nil, notFoundOr(err, "API key %s not found", req.Msg.Id)
	}
	out := apiKeyDetailProto(k)
	spend, err := s.spendThisMonth(ctx, k.OrgID, []string{k.ID})
	if err != nil {
		return nil, err
	}
	out.SpendThisMonthMicros = spend[k.ID]
	return connect.NewResponse(&v1.GetApiKeyResponse{ApiKey: out}), nil
}

func (s *apiKeyService) ListApiKeys(ctx context.Context, req *connect.Request[v1.ListApiKeysRequest]) (*connect.Response[v1.ListApiKeysResponse], error) {
	cur, err := decodeCursor(req.Msg.PageToken)
	if err != nil {
		return nil, err
	}
	size := pageSize(req.Msg.PageSize)
	rows, err := q.ApiKeyList(ctx, s.pool, dbsqlc.ApiKeyListParams{
		OrgID: principal(ctx).OrgID, Status: statusFromProto[req.Msg.Status], Kind: kindFromProto[req.Msg.Kind],
		UserID: req.Msg.UserId, AgentID: req.Msg.AgentId, AfterID: cur.ID, Max: size + 1,
	})
	if err != nil {
		return nil, err
	}
	rows, more := page(rows, size)
	keyIDs := make([]string, 0, len(rows))
	for _, k := range rows {
		keyIDs = append(keyIDs, k.ID)
	}
	spend, err := s.spendThisMonth(ctx, principal(ctx).OrgID, keyIDs)
	if err != nil {
		return nil, err
	}
	out := &v1.ListApiKeysResponse{}
	for _, k := range rows {
		pk := apiKeyDetailProto(k)
		pk.SpendThisMonthMicros = spend[k.ID]
		out.ApiKeys = append(out.ApiKeys, pk)
	}
	if more {
		out.NextPageToken = encodeCursor(cursor{ID: rows[len(rows)-1].ID})
	}
	return connect.NewResponse(out), nil
}

// keyChange locks a key, lets fn change it, and records the change. fn returns the new row,
// or nil when there is nothing to change (a retried freeze of a frozen key): then nothing is
// written and the current state is returned.
func keyChange(ctx context.Context, c *change.Tx, id, action, eventType, summary string,
	fn func(k dbsqlc.ApiKey) (*dbsqlc.ApiKey, error)) (*v1.ApiKey, error) {
	before, err := c.Q.ApiKeyGetForUpdate(ctx, c.DB, dbsqlc.ApiKeyGetForUpdateParams{OrgID: c.OrgID, ID: id})
	if err != nil {
		return nil, notFoundOr(err, "API key %s not found", id)
	}
	role := ""
	if before.UserID != nil {
		u, err := c.Q.UserGet(ctx, c.DB, dbsqlc.UserGetParams{OrgID: c.OrgID, ID: *before.UserID})
		if err != nil {
			return nil, err
		}
		role = u.Role
	}
	after, err := fn(before)
	if err != nil {
		return nil, err
	}
	if after == nil {
		return apiKeyProto(before, role), nil
	}
	out := apiKeyProto(*after, role)
	err = c.Record(ctx, action, apiKeyProto(before, role), out, events.Event{
		Domain: events.DomainKeys, Type: eventType, Entity: entity("api_key", id),
		Summary: "API key " + after.Name + " (" + after.Prefix + ") " + summary,
	})
	return out, err
}

func (s *apiKeyService) UpdateApiKey(ctx context.Context, req *connect.Request[v1.UpdateApiKeyRequest]) (*connect.Response[v1.UpdateApiKeyResponse], error) {
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.UpdateApiKeyResponse, error) {
		k, err := keyChange(ctx, c, req.Msg.Id, "api_key.update", "api_key_updated", "updated", func(k dbsqlc.ApiKey) (*dbsqlc.ApiKey, error) {
			after, err := c.Q.ApiKeyUpdate(ctx, c.DB, dbsqlc.ApiKeyUpdateParams{
				OrgID: c.OrgID, ID: k.ID, Name: req.Msg.Name, RequestsPerMinute: req.Msg.RequestsPerMinute,
			})
			return &after, err
		})
		return &v1.UpdateApiKeyResponse{ApiKey: k}, err
	})
}

func setStatus(ctx context.Context, c *change.Tx, k dbsqlc.ApiKey, status string) (*dbsqlc.ApiKey, error) {
	after, err := c.Q.ApiKeySetStatus(ctx, c.DB, dbsqlc.ApiKeySetStatusParams{OrgID: c.OrgID, ID: k.ID, Status: status})
	return &after, err
}

func (s *apiKeyService) FreezeApiKey(ctx context.Context, req *connect.Request[v1.FreezeApiKeyRequest]) (*connect.Response[v1.FreezeApiKeyResponse], error) {
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.FreezeApiKeyResponse, error) {
		k, err := keyChange(ctx, c, req.Msg.Id, "api_key.freeze", "api_key_frozen", "frozen"+reason(req.Msg.Reason), func(k dbsqlc.ApiKey) (*dbsqlc.ApiKey, error) {
			switch k.Status {
			case "frozen":
				return nil, nil
			case "revoked":
				return nil, failedPrecondition("API key %s is revoked", k.ID)
			}
			return setStatus(ctx, c, k, "frozen")
		})
		return &v1.FreezeApiKeyResponse{ApiKey: k}, err
	})
}

func (s *apiKeyService) UnfreezeApiKey(ctx context.Context, req *connect.Request[v1.UnfreezeApiKeyRequest]) (*connect.Response[v1.UnfreezeApiKeyResponse], error) {
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.UnfreezeApiKeyResponse, error) {
		k, err := keyChange(ctx, c, req.Msg.Id, "api_key.unfreeze", "api_key_unfrozen", "unfrozen", func(k dbsqlc.ApiKey) (*dbsqlc.ApiKey, error) {
			switch k.Status {
			case "active":
				return nil, nil
			case "revoked":
				return nil, failedPrecondition("API key %s is revoked", k.ID)
			}
			return setStatus(ctx, c, k, "active")
		})
		return &v1.UnfreezeApiKeyResponse{ApiKey: k}, err
	})
}

func (s *apiKeyService) RevokeApiKey(ctx context.Context, req *connect.Request[v1.RevokeApiKeyRequest]) (*connect.Response[v1.RevokeApiKeyResponse], error) {
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.RevokeApiKeyResponse, error) {
		k, err := keyChange(ctx, c, req.Msg.Id, "api_key.revoke", "api_key_revoked", "revoked"+reason(req.Msg.Reason), func(k dbsqlc.ApiKey) (*dbsqlc.ApiKey, error) {
			if k.Status == "revoked" {
				return nil, nil
			}
			return setStatus(ctx, c, k, "revoked")
		})
		return &v1.RevokeApiKeyResponse{ApiKey: k}, err
	})
}

func (s *apiKeyService) RotateApiKey(ctx context.Context, req *connect.Request[v1.RotateApiKeyRequest]) (*connect.Response[v1.RotateApiKeyResponse], error) {
	admin := authz.Allows(principal(ctx).Role, authz.Administer)
	return mutate(ctx, s.Server, req, func(c *change.Tx) (*v1.RotateApiKeyResponse, error) {
		secret := apikeys.New()
		grace := req.Msg.GracePeriod.AsDuration()
		k, err := keyChange(ctx, c, req.Msg.Id, "api_key.rotate", "api_key_rotated", "rotated", func(k dbsqlc.ApiKey) (*dbsqlc.ApiKey, error) {
			if k.Status == "revoked" {
				return nil, failedPrecondition("API key %s is revoked", k.ID)
			}
			if k.Kind == "user" && (k.UserID == nil || *k.UserID != c.Actor.UserID) {
				return nil, actsAsAnother("rotate", deref(k.UserID))
			}
			if !admin && k.Kind != "user" {
				// Rotating an ingest key hands out its secret: an administrator's change.
				return nil, permissionDenied("role %s may rotate only its own user's keys; ingest keys are rotated by an admin", principal(ctx).Role)
			}
			after, err := c.Q.ApiKeyRotate(ctx, c.DB, dbsqlc.ApiKeyRotateParams{
				OrgID: c.OrgID, ID: k.ID, SecretHash: secret.Hash, Prefix: secret.Prefix,
				GraceSeconds: int64(grace.Seconds()),
			})
			return &after, err
		})
		if err != nil {
			return nil, err
		}
		return &v1.RotateApiKeyResponse{ApiKey: k, Secret: secret.Plaintext}, nil
	})
}

// spendThisMonth is the settled cost of each key's runs since the start of the current
// month in the organization's time zone, read from the analytics rollups (the api_key
// cube) instead of summing cost records.
func (s *apiKeyService) spendThisMonth(ctx context.Context, orgID string, keyIDs []string) (map[string]int64, error) {
	out := map[string]int64{}
	if len(keyIDs) == 0 {
		return out, nil
	}
	org, err := q.OrgGet(ctx, s.pool, orgID)
	if err != nil {
		return nil, err
	}
	loc, err := time.LoadLocation(org.TimeZone)
	if err != nil {
		return nil, err
	}
	since, err := limits.WindowStart(limits.WindowMonth, time.Now(), loc)
	if err != nil {
		return nil, err
	}
	a, err := s.analytics.QueryUsage(ctx, analytics.Query{OrgID: orgID, Start: since, GroupBy: []usage.Dim{usage.APIKey},
		// Settled runs' charges, as before; calls recorded late are not part of a key's charge.
		Include: map[usage.Dim][]string{usage.APIKey: keyIDs, usage.RunStatus: {usage.StatusSucceeded, usage.StatusFailed, usage.StatusCancelled}},
		TopN:    analytics.MaxTopN})
	if err != nil {
		return nil, err
	}
	for _, g := range a.Result.Groups {
		out[g.Values[0].V] = g.Total.Cost
	}
	return out, nil
}

func reason(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}
