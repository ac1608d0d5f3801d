package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/db/dbsqlc"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/actor"
	"github.com/governor-hq/governor/internal/apikeys"
	"github.com/governor-hq/governor/internal/change"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/ids"
)

// IssueUserKeyInput names the user a key is for.
type IssueUserKeyInput struct {
	OrgID  string
	UserID string
	Name   string
	// ExpiresAt, if set, must be in the future.
	ExpiresAt *time.Time
}

// IssueUserKey creates an API key that acts as a user, audited as the given system actor
// (e.g. "cli:admin create-user-key"), and returns it with its secret (shown once). It is
// how a user gets a key without holding one: through the API a key may mint user keys only
// for its own user, so no admin can act as someone else; an operator with database access
// could anyway.
func IssueUserKey(ctx context.Context, pool *pgxpool.Pool, by string, in IssueUserKeyInput) (*v1.ApiKey, string, error) {
	if in.ExpiresAt != nil && !in.ExpiresAt.After(time.Now()) {
		return nil, "", fmt.Errorf("the expiry %s is not in the future", in.ExpiresAt.Format(time.RFC3339))
	}
	if in.Name == "" {
		in.Name = "key of " + in.UserID
	}
	var out *v1.ApiKey
	secret := apikeys.New()
	err := change.Run(ctx, pool, change.Scope{OrgID: in.OrgID, Actor: actor.System(by)}, func(c *change.Tx) error {
		u, err := c.Q.UserGet(ctx, c.DB, dbsqlc.UserGetParams{OrgID: in.OrgID, ID: in.UserID})
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("organization %s has no user %s", in.OrgID, in.UserID)
		}
		if err != nil {
			return err
		}
		if u.DeactivatedAt != nil {
			return fmt.Errorf("user %s is deactivated", u.ID)
		}
		k, err := c.Q.ApiKeyCreate(ctx, c.DB, dbsqlc.ApiKeyCreateParams{
			OrgID: in.OrgID, ID: ids.New(ids.APIKey), Name: in.Name, Kind: "user",
			Prefix: secret.Prefix, SecretHash: secret.Hash, UserID: &u.ID, ExpiresAt: in.ExpiresAt,
		})
		if err != nil {
			return err
		}
		out = apiKeyProto(k, u.Role)
		return c.Record(ctx, "api_key.create", nil, out, events.Event{
			Domain: events.DomainKeys, Type: "api_key_created", Entity: entity("api_key", k.ID),
			Related: []events.Ref{entity("user", u.ID)},
			Summary: "API key " + k.Name + " (" + k.Prefix + ") issued to user " + u.Email + " by " + by,
		})
	})
	if err != nil {
		return nil, "", err
	}
	return out, secret.Plaintext, nil
}
