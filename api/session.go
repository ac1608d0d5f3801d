package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"connectrpc.com/validate"
	"github.com/jackc/pgx/v5"

	"github.com/governor-hq/governor/db"
	"github.com/governor-hq/governor/db/dbsqlc"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/gen/governor/v1/governorv1connect"
	"github.com/governor-hq/governor/internal/apikeys"
	"github.com/governor-hq/governor/internal/authz"
)

// The console's sessions: SignIn exchanges a user's API key for a random token kept in an
// HttpOnly cookie (and, hashed, in console_sessions); the authenticate interceptor accepts
// the cookie instead of a bearer key (sessionKey), with the key's state checked on every
// call exactly as for a bearer key.

// SessionCookieName is the console's session cookie.
const SessionCookieName = "governor_session"

// SessionTTL is how long a console session lasts. It is not extended by use: a person signs
// in again after it, which bounds what a stolen cookie is worth.
const SessionTTL = 12 * time.Hour

// publicPermission marks the RPCs that need no credentials (SignIn, SignOut). No role has
// it, so if one of them ever went through the authenticate interceptor it would be refused.
const publicPermission authz.Permission = "public"

// sessionHandler serves SessionService. SignIn and SignOut work without credentials, so the
// authenticate interceptor is not in the chain; WhoAmI authenticates itself, through the
// interceptor's own check.
func (s *Server) sessionHandler() (string, http.Handler) {
	return governorv1connect.NewSessionServiceHandler(&sessionService{s},
		connect.WithInterceptors(&observe{log: s.log, metrics: s.metrics}, validate.NewInterceptor()))
}

// site is what the HTTP request says about the server itself: its own origin, and whether
// the browser reached it over TLS. withRequestSite puts it in every request's context.
type site struct {
	origin string
	secure bool
}

type siteKey struct{}

func withRequestSite(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Behind a TLS-terminating proxy the browser still speaks https; a client lying about
		// it only makes its own cookie Secure or its own Origin check fail.
		secure := r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
		scheme := "http"
		if secure {
			scheme = "https"
		}
		ctx := context.WithValue(r.Context(), siteKey{}, site{origin: scheme + "://" + r.Host, secure: secure})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func siteOf(ctx context.Context) (site, bool) {
	st, ok := ctx.Value(siteKey{}).(site)
	return st, ok
}

type headerGetter = interface{ Get(string) string }

// sessionToken returns the session cookie's value, "" without one.
func sessionToken(h headerGetter) string {
	var lines []string
	if hh, ok := h.(http.Header); ok {
		lines = hh.Values("Cookie")
	} else if v := h.Get("Cookie"); v != "" {
		lines = []string{v}
	}
	for _, line := range lines {
		cookies, err := http.ParseCookie(line)
		if err != nil {
			continue
		}
		for _, c := range cookies {
			if c.Name == SessionCookieName && c.Value != "" {
				return c.Value
			}
		}
	}
	return ""
}

func hashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// checkCrossSite refuses a cookie-authenticated request a page of another site could have
// made. Cookies travel with any request the browser makes, so the cookie alone proves
// nothing: the request must also carry Connect-Protocol-Version (a header a cross-site form
// cannot set, and script can set only after a CORS preflight this server never grants), and
// when the browser says where the request comes from (Origin, Sec-Fetch-Site) it must be
// this server.
func checkCrossSite(ctx context.Context, h headerGetter) error {
	if h.Get("Connect-Protocol-Version") != "1" {
		return permissionDenied("a request authenticated by the console's session cookie must carry the Connect-Protocol-Version: 1 header")
	}
	if sf := h.Get("Sec-Fetch-Site"); sf != "" && sf != "same-origin" && sf != "none" {
		return permissionDenied("cross-site request refused (Sec-Fetch-Site: %s)", sf)
	}
	if origin := h.Get("Origin"); origin != "" {
		st, ok := siteOf(ctx)
		if !ok || !strings.EqualFold(origin, st.origin) {
			return permissionDenied("cross-origin request refused: Origin %s is not this server", origin)
		}
	}
	return nil
}

// sessionKey is the key a console session stands for, in the shape the bearer path reads,
// so the interceptor checks both alike.
func (s *Server) sessionKey(ctx context.Context, h headerGetter) (dbsqlc.ApiKeyAuthenticateRow, error) {
	if err := checkCrossSite(ctx, h); err != nil {
		return dbsqlc.ApiKeyAuthenticateRow{}, err
	}
	r, err := dbsqlc.New().ConsoleSessionAuthenticate(ctx, s.pool, hashToken(sessionToken(h)))
	if errors.Is(err, pgx.ErrNoRows) {
		return dbsqlc.ApiKeyAuthenticateRow{}, connect.NewError(connect.CodeUnauthenticated,
			errors.New("the console session has ended (expired, signed out, or its key's secret was rotated): sign in again"))
	}
	if err != nil {
		return dbsqlc.ApiKeyAuthenticateRow{}, err
	}
	return dbsqlc.ApiKeyAuthenticateRow{
		ID: r.ID, OrgID: r.OrgID, Kind: r.Kind, Status: r.Status, UserID: r.UserID, ProjectID: r.ProjectID,
		AgentID: r.AgentID, RequestsPerMinute: r.RequestsPerMinute, ExpiresAt: r.ExpiresAt, LastUsedAt: r.LastUsedAt,
		UserRole: r.UserRole, UserDeactivated: r.UserDeactivated,
	}, nil
}

// credentialKey finds the key a request authenticates with: the bearer key when there is
// an Authorization header (scripts, agents), else the console's session cookie.
func (a *authenticate) credentialKey(ctx context.Context, h headerGetter) (dbsqlc.ApiKeyAuthenticateRow, error) {
	if h.Get("Authorization") == "" && sessionToken(h) != "" {
		return a.s.sessionKey(ctx, h)
	}
	return a.bearerKey(ctx, h)
}

type sessionService struct{ *Server }

func (s *sessionService) SignIn(ctx context.Context, req *connect.Request[v1.SignInRequest]) (*connect.Response[v1.SignInResponse], error) {
	// A forged sign-in would put the victim in the attacker's organization.
	if err := checkCrossSite(ctx, req.Header()); err != nil {
		return nil, err
	}
	secret := strings.TrimSpace(req.Msg.ApiKey)
	bearer := http.Header{}
	bearer.Set("Authorization", "Bearer "+secret)
	// Exactly the checks of any call (key state, user, rate limit), as a WhoAmI.
	ctx, err := s.auth.check(ctx, governorv1connect.SessionServiceWhoAmIProcedure, bearer)
	if err != nil {
		return nil, err
	}
	p := principal(ctx)
	if p.KeyKind != "user" {
		return nil, permissionDenied("only a user's API key can sign in to the console; %s is an ingest key", p.APIKeyID)
	}
	token := make([]byte, 32)
	if _, err := rand.Read(token); err != nil {
		return nil, err
	}
	value := base64.RawURLEncoding.EncodeToString(token)
	expires := time.Now().Add(SessionTTL)
	if _, err := q.ConsoleSessionDeleteExpired(ctx, s.pool); err != nil {
		return nil, err
	}
	if err := q.ConsoleSessionCreate(ctx, s.pool, dbsqlc.ConsoleSessionCreateParams{
		TokenHash: hashToken(value), OrgID: p.OrgID, ApiKeyID: p.APIKeyID, SecretHash: apikeys.Hash(secret),
		ExpiresAt: expires, UserAgent: truncate(req.Header().Get("User-Agent"), 512),
	}); err != nil {
		return nil, err
	}
	id, err := s.identity(ctx, p, &expires)
	if err != nil {
		return nil, err
	}
	resp := connect.NewResponse(&v1.SignInResponse{Identity: id})
	resp.Header().Add("Set-Cookie", s.cookie(ctx, value, expires).String())
	resp.Header().Set("Cache-Control", "no-store")
	s.log.InfoContext(ctx, "console sign-in", "org", p.OrgID, "key", p.APIKeyID, "user", p.UserID)
	return resp, nil
}

func (s *sessionService) SignOut(ctx context.Context, req *connect.Request[v1.SignOutRequest]) (*connect.Response[v1.SignOutResponse], error) {
	out := &v1.SignOutResponse{}
	if token := sessionToken(req.Header()); token != "" {
		if err := checkCrossSite(ctx, req.Header()); err != nil {
			return nil, err
		}
		n, err := q.ConsoleSessionDelete(ctx, s.pool, hashToken(token))
		if err != nil {
			return nil, err
		}
		out.SignedOut = n > 0
	}
	resp := connect.NewResponse(out)
	resp.Header().Add("Set-Cookie", s.cookie(ctx, "", time.Time{}).String())
	return resp, nil
}

func (s *sessionService) WhoAmI(ctx context.Context, req *connect.Request[v1.WhoAmIRequest]) (*connect.Response[v1.WhoAmIResponse], error) {
	ctx, err := s.auth.checkOnce(ctx, governorv1connect.SessionServiceWhoAmIProcedure, req.Header())
	if err != nil {
		return nil, err
	}
	var expires *time.Time
	if req.Header().Get("Authorization") == "" {
		if r, err := q.ConsoleSessionAuthenticate(ctx, s.pool, hashToken(sessionToken(req.Header()))); err == nil {
			expires = &r.SessionExpiresAt
		}
	}
	id, err := s.identity(ctx, principal(ctx), expires)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.WhoAmIResponse{Identity: id}), nil
}

func (s *sessionService) identity(ctx context.Context, p authz.Principal, expires *time.Time) (*v1.Identity, error) {
	org, err := q.OrgGet(ctx, s.pool, p.OrgID)
	if err != nil {
		return nil, db.NotFound(err)
	}
	key, err := q.ApiKeyGet(ctx, s.pool, dbsqlc.ApiKeyGetParams{OrgID: p.OrgID, ID: p.APIKeyID})
	if err != nil {
		return nil, db.NotFound(err)
	}
	id := &v1.Identity{
		Role: roleToProto[p.Role], Organization: organizationProto(org),
		ApiKeyId: key.ID, ApiKeyName: key.Name, ApiKeyPrefix: key.Prefix, SessionExpireTime: tsp(expires),
		Console: &v1.ConsoleSettings{TemporalUiUrl: s.opts.TemporalUIURL, TemporalNamespace: s.opts.TemporalNamespace},
	}
	if p.UserID != "" {
		u, err := q.UserGet(ctx, s.pool, dbsqlc.UserGetParams{OrgID: p.OrgID, ID: p.UserID})
		if err != nil {
			return nil, db.NotFound(err)
		}
		id.User = userProto(u)
	}
	return id, nil
}

// cookie is the session cookie; an empty value clears it.
func (s *sessionService) cookie(ctx context.Context, value string, expires time.Time) *http.Cookie {
	st, _ := siteOf(ctx)
	c := &http.Cookie{Name: SessionCookieName, Value: value, Path: "/", HttpOnly: true, Secure: st.secure,
		SameSite: http.SameSiteStrictMode}
	if value == "" {
		c.MaxAge = -1
	} else {
		c.MaxAge = int(time.Until(expires).Seconds())
	}
	return c
}

func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
