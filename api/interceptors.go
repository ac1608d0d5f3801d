package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/actor"
	"github.com/governor-hq/governor/internal/apikeys"
	"github.com/governor-hq/governor/internal/authz"
)

// RequestIDHeader carries a request's id in and out; a valid one from the client is kept.
const RequestIDHeader = "X-Request-Id"

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._:/-]{1,128}$`)

func newRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "req_" + hex.EncodeToString(b)
}

// observe is the outermost interceptor: it names the request, maps errors to Connect
// codes, logs one line per call and records metrics.
type observe struct {
	log     *slog.Logger
	metrics *metrics
}

func (o *observe) begin(ctx context.Context, h interface{ Get(string) string }, set func(string, string)) (context.Context, string) {
	id := h.Get(RequestIDHeader)
	if !validRequestID.MatchString(id) {
		id = newRequestID()
	}
	set(RequestIDHeader, id)
	return actor.WithRequestID(ctx, id), id
}

func (o *observe) end(ctx context.Context, procedure, requestID string, start time.Time, err error) error {
	err = toConnect(ctx, o.log, procedure, err)
	code := "ok"
	level := slog.LevelInfo
	if err != nil {
		code = connect.CodeOf(err).String()
		if connect.CodeOf(err) == connect.CodeInternal || connect.CodeOf(err) == connect.CodeUnknown {
			level = slog.LevelError
		}
	}
	elapsed := time.Since(start)
	o.metrics.observe(procedure, code, elapsed)
	attrs := []any{"procedure", procedure, "code", code, "ms", float64(elapsed.Microseconds()) / 1000, "request_id", requestID}
	if p, ok := authz.FromContext(ctx); ok {
		attrs = append(attrs, "org", p.OrgID, "key", p.APIKeyID)
	}
	if err != nil {
		attrs = append(attrs, "err", err.Error())
	}
	o.log.Log(ctx, level, "rpc", attrs...)
	return err
}

func (o *observe) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		start := time.Now()
		var respHeaders = map[string]string{}
		ctx, id := o.begin(ctx, req.Header(), func(k, v string) { respHeaders[k] = v })
		// The context carries a holder for the principal the auth interceptor finds, so
		// the log line can name the caller.
		holder := &principalHolder{}
		ctx = context.WithValue(ctx, principalHolderKey{}, holder)
		resp, err := next(ctx, req)
		if holder.set {
			ctx = authz.WithPrincipal(ctx, holder.p)
		}
		err = o.end(ctx, req.Spec().Procedure, id, start, err)
		if err != nil {
			if ce := new(connect.Error); errors.As(err, &ce) {
				for k, v := range respHeaders {
					ce.Meta().Set(k, v)
				}
			}
			return nil, err
		}
		for k, v := range respHeaders {
			resp.Header().Set(k, v)
		}
		return resp, nil
	}
}

func (o *observe) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (o *observe) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		start := time.Now()
		ctx, id := o.begin(ctx, conn.RequestHeader(), conn.ResponseHeader().Set)
		holder := &principalHolder{}
		ctx = context.WithValue(ctx, principalHolderKey{}, holder)
		err := next(ctx, conn)
		if holder.set {
			ctx = authz.WithPrincipal(ctx, holder.p)
		}
		return o.end(ctx, conn.Spec().Procedure, id, start, err)
	}
}

type principalHolderKey struct{}
type principalHolder struct {
	p   authz.Principal
	set bool
}

// authenticate checks the bearer key, its state and the caller's role, and applies the
// key's requests-per-minute limit.
type authenticate struct {
	s *Server
}

func (a *authenticate) check(ctx context.Context, procedure string, header interface{ Get(string) string }) (context.Context, error) {
	need, ok := permissions[procedure]
	if !ok {
		return ctx, permissionDenied("%s is not open to API keys", procedure)
	}
	// The bearer key, or the console's session cookie (api/session.go).
	k, err := a.credentialKey(ctx, header)
	if err != nil {
		return ctx, err
	}
	q := dbsqlc.New()
	now := time.Now()
	switch {
	case k.Status == "revoked":
		return ctx, connect.NewError(connect.CodeUnauthenticated, errors.New("API key revoked"))
	case k.ExpiresAt != nil && !k.ExpiresAt.After(now):
		return ctx, connect.NewError(connect.CodeUnauthenticated, errors.New("API key expired"))
	case k.Status == "frozen":
		return ctx, permissionDenied("API key %s is frozen", k.ID)
	case k.UserDeactivated:
		return ctx, permissionDenied("the user of API key %s is deactivated", k.ID)
	}
	p := authz.Principal{OrgID: k.OrgID, APIKeyID: k.ID, KeyKind: k.Kind, Role: k.UserRole}
	if k.Kind == "ingest" {
		p.Role = authz.RoleIngest
	}
	if k.UserID != nil {
		p.UserID = *k.UserID
	}
	if k.ProjectID != nil {
		p.ProjectID = *k.ProjectID
	}
	if k.AgentID != nil {
		p.AgentID = *k.AgentID
	}
	if h, ok := ctx.Value(principalHolderKey{}).(*principalHolder); ok {
		h.p, h.set = p, true
	}
	if !authz.Allows(p.Role, need) {
		return ctx, permissionDenied("role %s may not call %s (it needs the %s permission)", p.Role, procedure, need)
	}
	if k.RequestsPerMinute > 0 {
		if err := a.takeRate(ctx, k.ID, k.RequestsPerMinute, now); err != nil {
			return ctx, err
		}
	} else if !a.s.keyRates.allow(k.ID) {
		return ctx, rateLimited(fmt.Sprintf("API key %s is over the default rate of %g requests per second of this server", k.ID,
			float64(a.s.keyRates.limit)), a.s.keyRates.retryAfter())
	}
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) > time.Minute {
		if err := q.ApiKeyTouch(ctx, a.s.pool, k.ID); err != nil {
			return ctx, err
		}
	}
	return authz.WithPrincipal(ctx, p), nil
}

// bearerKey finds the key of the "Authorization: Bearer" header.
func (a *authenticate) bearerKey(ctx context.Context, header interface{ Get(string) string }) (dbsqlc.ApiKeyAuthenticateRow, error) {
	token, found := strings.CutPrefix(header.Get("Authorization"), "Bearer ")
	if !found || token == "" {
		return dbsqlc.ApiKeyAuthenticateRow{}, connect.NewError(connect.CodeUnauthenticated, errors.New("missing \"Authorization: Bearer <api key>\" header"))
	}
	if !apikeys.LooksValid(token) {
		return dbsqlc.ApiKeyAuthenticateRow{}, connect.NewError(connect.CodeUnauthenticated, errors.New("malformed API key"))
	}
	k, err := dbsqlc.New().ApiKeyAuthenticate(ctx, a.s.pool, apikeys.Hash(token))
	if errors.Is(err, pgx.ErrNoRows) {
		return dbsqlc.ApiKeyAuthenticateRow{}, connect.NewError(connect.CodeUnauthenticated, errors.New("unknown API key"))
	}
	return k, err
}

func (a *authenticate) takeRate(ctx context.Context, keyID string, limit int32, now time.Time) error {
	window := now.Truncate(time.Minute)
	elapsed := now.Sub(window)
	weight := 1 - elapsed.Seconds()/60
	ok, err := dbsqlc.New().ApiKeyRateTake(ctx, a.s.pool, dbsqlc.ApiKeyRateTakeParams{
		ApiKeyID: keyID, WindowStart: window, PrevWeight: weight, MaxPerMinute: limit,
	})
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	retry := time.Minute - elapsed
	cerr := connect.NewError(connect.CodeResourceExhausted,
		fmt.Errorf("API key %s is over its limit of %d requests per minute; retry in %s", keyID, limit, retry.Round(time.Second)))
	if d, err := connect.NewErrorDetail(&errdetails.ErrorInfo{
		Reason:   "API_KEY_RATE_LIMITED",
		Domain:   "governor",
		Metadata: map[string]string{"api_key_id": keyID, "requests_per_minute": fmt.Sprint(limit)},
	}); err == nil {
		cerr.AddDetail(d)
	}
	if d, err := connect.NewErrorDetail(&errdetails.RetryInfo{RetryDelay: durationpb.New(retry)}); err == nil {
		cerr.AddDetail(d)
	}
	cerr.Meta().Set("Retry-After", fmt.Sprint(int(retry.Seconds())+1))
	return cerr
}

// checkOnce authenticates a call, unless guard already did for this procedure before the
// body was read: then it only hands the principal to the log line.
func (a *authenticate) checkOnce(ctx context.Context, procedure string, header interface{ Get(string) string }) (context.Context, error) {
	if preauthenticated(ctx, procedure) {
		if p, ok := authz.FromContext(ctx); ok {
			if h, ok := ctx.Value(principalHolderKey{}).(*principalHolder); ok {
				h.p, h.set = p, true
			}
			return ctx, nil
		}
	}
	return a.check(ctx, procedure, header)
}

func (a *authenticate) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		ctx, err := a.checkOnce(ctx, req.Spec().Procedure, req.Header())
		if err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (a *authenticate) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (a *authenticate) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, err := a.checkOnce(ctx, conn.Spec().Procedure, conn.RequestHeader())
		if err != nil {
			return err
		}
		release, err := a.s.streams.open(principal(ctx))
		if err != nil {
			return err
		}
		defer release()
		return next(ctx, conn)
	}
}

// principal returns the authenticated caller; the interceptor guarantees one.
func principal(ctx context.Context) authz.Principal {
	p, ok := authz.FromContext(ctx)
	if !ok {
		panic("api: handler called without an authenticated principal")
	}
	return p
}
