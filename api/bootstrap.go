package api

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/db/dbsqlc"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/actor"
	"github.com/governor-hq/governor/internal/alerts"
	"github.com/governor-hq/governor/internal/apikeys"
	"github.com/governor-hq/governor/internal/authz"
	"github.com/governor-hq/governor/internal/change"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/ids"
)

// BootstrapInput describes a new organization and its first admin.
type BootstrapInput struct {
	OrgName    string
	TimeZone   string // IANA name; "" means UTC
	AdminEmail string
	AdminName  string
}

// BootstrapResult is what a new organization starts with. Secret is shown once.
type BootstrapResult struct {
	Organization *v1.Organization
	Admin        *v1.User
	APIKey       *v1.ApiKey
	Secret       string
}

// Bootstrap creates an organization, its first admin user and an admin API key, audited as
// the given system actor (e.g. "cli:admin bootstrap"). It is how a new tenant gets its
// first key; after that everything goes through the API.
func Bootstrap(ctx context.Context, pool *pgxpool.Pool, by string, in BootstrapInput) (BootstrapResult, error) {
	var out BootstrapResult
	if in.TimeZone == "" {
		in.TimeZone = "UTC"
	}
	if _, err := time.LoadLocation(in.TimeZone); err != nil || in.TimeZone == "Local" {
		return out, fmt.Errorf("time zone %q is not an IANA time zone name", in.TimeZone)
	}
	if in.OrgName == "" || in.AdminEmail == "" {
		return out, fmt.Errorf("an organization name and an admin email are required")
	}
	orgID := ids.New(ids.Org)
	scope := change.Scope{OrgID: orgID, Actor: actor.System(by)}
	err := change.Run(ctx, pool, scope, func(c *change.Tx) error {
		o, err := c.Q.OrgCreate(ctx, c.DB, dbsqlc.OrgCreateParams{ID: orgID, Name: in.OrgName, TimeZone: in.TimeZone})
		if err != nil {
			return err
		}
		if err := c.Q.AuditHeadInit(ctx, c.DB, orgID); err != nil {
			return err
		}
		out.Organization = organizationProto(o)
		if err := c.Record(ctx, "organization.create", nil, out.Organization, events.Event{
			Domain: events.DomainAccounts, Type: "organization_created", Entity: entity("organization", orgID),
			Summary: "Organization " + o.Name + " created",
		}); err != nil {
			return err
		}
		// Every organization has its in-app channel from the start, so that reading the
		// channels never has to make it.
		inApp, err := alerts.InAppChannel(ctx, c.DB, orgID)
		if err != nil {
			return err
		}
		if err := c.Record(ctx, "alert_channel.create", nil, channelProto(inApp), channelEvent(inApp, "channel_created",
			"Alert channel created: "+inApp.Name)); err != nil {
			return err
		}
		u, err := c.Q.UserCreate(ctx, c.DB, dbsqlc.UserCreateParams{
			OrgID: orgID, ID: ids.New(ids.User), Email: in.AdminEmail, DisplayName: in.AdminName, Role: authz.RoleAdmin,
		})
		if err != nil {
			return err
		}
		out.Admin = userProto(u)
		if err := c.Record(ctx, "user.create", nil, out.Admin, events.Event{
			Domain: events.DomainAccounts, Type: "user_created", Entity: entity("user", u.ID),
			Summary: "User " + u.Email + " created with role admin",
		}); err != nil {
			return err
		}
		secret := apikeys.New()
		k, err := c.Q.ApiKeyCreate(ctx, c.DB, dbsqlc.ApiKeyCreateParams{
			OrgID: orgID, ID: ids.New(ids.APIKey), Name: "bootstrap admin key", Kind: "user",
			Prefix: secret.Prefix, SecretHash: secret.Hash, UserID: &u.ID,
		})
		if err != nil {
			return err
		}
		out.APIKey, out.Secret = apiKeyProto(k, u.Role), secret.Plaintext
		return c.Record(ctx, "api_key.create", nil, out.APIKey, events.Event{
			Domain: events.DomainKeys, Type: "api_key_created", Entity: entity("api_key", k.ID),
			Related: []events.Ref{entity("user", u.ID)},
			Summary: "API key " + k.Name + " (" + k.Prefix + ") created",
		})
	})
	return out, err
}
