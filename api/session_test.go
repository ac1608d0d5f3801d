package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/governor-hq/governor/api"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/gen/governor/v1/governorv1connect"
	"github.com/governor-hq/governor/internal/testenv"
)

// call is one Connect call in JSON over plain HTTP, with exactly the headers given: what a
// browser (or a page of another site) would send.
type call struct {
	status int
	code   string // Connect error code, "" on success
	body   string
	resp   *http.Response
}

func rawCall(t *testing.T, b *testBundle, procedure, body string, headers map[string]string) call {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.baseURL+procedure, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := b.http.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	c := call{status: resp.StatusCode, body: string(raw), resp: resp}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Code string }
		require.NoError(t, json.Unmarshal(raw, &e), string(raw))
		c.code = e.Code
	}
	return c
}

// signIn exchanges a key for a session and returns the session cookie.
func signIn(t *testing.T, b *testBundle, secret string, headers map[string]string) *http.Cookie {
	t.Helper()
	h := map[string]string{"Connect-Protocol-Version": "1"}
	for k, v := range headers {
		h[k] = v
	}
	res := rawCall(t, b, governorv1connect.SessionServiceSignInProcedure, `{"apiKey":"`+secret+`"}`, h)
	require.Equal(t, http.StatusOK, res.status, res.body)
	for _, c := range res.resp.Cookies() {
		if c.Name == api.SessionCookieName {
			return c
		}
	}
	t.Fatalf("no %s cookie in %v", api.SessionCookieName, res.resp.Header.Values("Set-Cookie"))
	return nil
}

// browser is what the console sends: the cookie and the Connect protocol header.
func browser(cookie *http.Cookie, extra ...string) map[string]string {
	h := map[string]string{"Cookie": cookie.Name + "=" + cookie.Value, "Connect-Protocol-Version": "1"}
	for i := 0; i+1 < len(extra); i += 2 {
		h[extra[i]] = extra[i+1]
	}
	return h
}

const getOrg = governorv1connect.AccountServiceGetOrganizationProcedure

// consoleSetup is setup with the settings the console reads.
func consoleSetup(t *testing.T) *testBundle {
	t.Helper()
	pool := testenv.DB(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	s := api.New(pool, quietLogger(), api.Options{IdempotencyTTL: time.Hour, TemporalUIURL: "http://temporal-ui.test", TemporalNamespace: "default"})
	go func() { done <- s.Serve(ctx, ln, nil) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	b := &testBundle{pool: pool, baseURL: "http://" + ln.Addr().String(), http: &http.Client{Timeout: 30 * time.Second}}
	b.org = bootstrap(t, pool, "Acme "+t.Name())
	b.admin = b.clientsFor(b.org.Secret)
	return b
}

func TestConsoleSessionSignInCookieAndSignOut(t *testing.T) {
	t.Parallel()
	b := consoleSetup(t)

	// The cookie: HttpOnly, SameSite=Strict, whole site, 12 hours; not Secure over plain HTTP.
	res := rawCall(t, b, governorv1connect.SessionServiceSignInProcedure, `{"apiKey":"`+b.org.Secret+`"}`, map[string]string{"Connect-Protocol-Version": "1"})
	require.Equal(t, http.StatusOK, res.status, res.body)
	setCookie := res.resp.Header.Get("Set-Cookie")
	require.Contains(t, setCookie, "HttpOnly")
	require.Contains(t, setCookie, "SameSite=Strict")
	require.Contains(t, setCookie, "Path=/")
	require.NotContains(t, setCookie, "Secure")
	require.NotContains(t, res.body, b.org.Secret, "the key is not echoed back")
	var cookie *http.Cookie
	for _, c := range res.resp.Cookies() {
		if c.Name == api.SessionCookieName {
			cookie = c
		}
	}
	require.NotNil(t, cookie)
	require.InDelta(t, (12 * time.Hour).Seconds(), float64(cookie.MaxAge), 5)
	require.Len(t, cookie.Value, 43, "32 random bytes, base64url")
	var signed struct {
		Identity struct {
			Role         string
			Organization struct{ TimeZone string }
			User         struct{ Email string }
		}
	}
	require.NoError(t, json.Unmarshal([]byte(res.body), &signed))
	require.Equal(t, "ROLE_ADMIN", signed.Identity.Role)
	require.Equal(t, "Europe/Berlin", signed.Identity.Organization.TimeZone)
	require.Equal(t, "admin@example.com", signed.Identity.User.Email)

	// Only the token's hash is stored, with the key it stands for.
	var stored int
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM console_sessions WHERE token_hash = sha256(convert_to($1, 'UTF8')) AND api_key_id = $2`,
		cookie.Value, b.org.APIKey.Id).Scan(&stored))
	require.Equal(t, 1, stored)
	var plain int
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM console_sessions WHERE position(convert_to($1, 'UTF8') in token_hash) > 0`, cookie.Value).Scan(&plain))
	require.Zero(t, plain)

	// The cookie authenticates like the key, WhoAmI included.
	require.Equal(t, http.StatusOK, rawCall(t, b, getOrg, `{}`, browser(cookie)).status)
	who := rawCall(t, b, governorv1connect.SessionServiceWhoAmIProcedure, `{}`, browser(cookie))
	require.Equal(t, http.StatusOK, who.status, who.body)
	require.Contains(t, who.body, `"sessionExpireTime"`)
	require.Contains(t, who.body, `"temporalUiUrl":"http://temporal-ui.test"`)
	// Bearer WhoAmI has no session.
	bw, err := governorv1connect.NewSessionServiceClient(b.http, b.baseURL, bearer(b.org.Secret)).WhoAmI(context.Background(), connect.NewRequest(&v1.WhoAmIRequest{}))
	require.NoError(t, err)
	require.Nil(t, bw.Msg.Identity.SessionExpireTime)
	require.Equal(t, v1.Role_ROLE_ADMIN, bw.Msg.Identity.Role)

	// Sign-out deletes the session: the cookie is worthless afterwards, even if kept.
	out := rawCall(t, b, governorv1connect.SessionServiceSignOutProcedure, `{}`, browser(cookie))
	require.Equal(t, http.StatusOK, out.status, out.body)
	require.JSONEq(t, `{"signedOut":true}`, out.body)
	require.Contains(t, out.resp.Header.Get("Set-Cookie"), "Max-Age=0")
	require.Equal(t, "unauthenticated", rawCall(t, b, getOrg, `{}`, browser(cookie)).code)
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM console_sessions WHERE api_key_id = $1`, b.org.APIKey.Id).Scan(&stored))
	require.Zero(t, stored)
	// Signing out again (or without a session) is fine.
	require.JSONEq(t, `{}`, rawCall(t, b, governorv1connect.SessionServiceSignOutProcedure, `{}`, browser(cookie)).body)
}

func TestConsoleSessionRefusesCrossSiteRequests(t *testing.T) {
	t.Parallel()
	b := consoleSetup(t)
	cookie := signIn(t, b, b.org.Secret, nil)
	self := b.baseURL

	// What a form or a no-CORS fetch from another site can send: the cookie, no Connect
	// header. Refused, and nothing happens.
	form := rawCall(t, b, governorv1connect.AccountServiceCreateProjectProcedure, `{"name":"forged"}`,
		map[string]string{"Cookie": cookie.Name + "=" + cookie.Value})
	require.Equal(t, "permission_denied", form.code)
	require.Contains(t, form.body, "Connect-Protocol-Version")
	projects, err := b.admin.accounts.ListProjects(context.Background(), connect.NewRequest(&v1.ListProjectsRequest{}))
	require.NoError(t, err)
	for _, p := range projects.Msg.Projects {
		require.NotEqual(t, "forged", p.Name)
	}
	// Another Origin, or a browser saying the request is cross-site.
	require.Equal(t, "permission_denied", rawCall(t, b, getOrg, `{}`, browser(cookie, "Origin", "https://evil.example")).code)
	require.Equal(t, "permission_denied", rawCall(t, b, getOrg, `{}`, browser(cookie, "Sec-Fetch-Site", "cross-site")).code)
	require.Equal(t, "permission_denied", rawCall(t, b, getOrg, `{}`, browser(cookie, "Sec-Fetch-Site", "same-site")).code)
	// The console itself: same origin.
	require.Equal(t, http.StatusOK, rawCall(t, b, getOrg, `{}`, browser(cookie, "Origin", self, "Sec-Fetch-Site", "same-origin")).status)
	// A sign-in forged from elsewhere is refused too (it would sign the victim in as the
	// attacker), as is a forged sign-out.
	forged := rawCall(t, b, governorv1connect.SessionServiceSignInProcedure, `{"apiKey":"`+b.org.Secret+`"}`,
		map[string]string{"Connect-Protocol-Version": "1", "Origin": "https://evil.example"})
	require.Equal(t, "permission_denied", forged.code)
	require.Empty(t, forged.resp.Header.Values("Set-Cookie"))
	require.Equal(t, "permission_denied", rawCall(t, b, governorv1connect.SessionServiceSignOutProcedure, `{}`,
		map[string]string{"Cookie": cookie.Name + "=" + cookie.Value}).code)
	require.Equal(t, http.StatusOK, rawCall(t, b, getOrg, `{}`, browser(cookie)).status, "the session survived the forged sign-out")
	// A bearer key needs none of this: no browser attaches it by itself.
	require.Equal(t, http.StatusOK, rawCall(t, b, getOrg, `{}`, map[string]string{"Authorization": "Bearer " + b.org.Secret, "Origin": "https://evil.example"}).status)
	// Behind a TLS-terminating proxy the cookie is Secure and the origin is https.
	tls := rawCall(t, b, governorv1connect.SessionServiceSignInProcedure, `{"apiKey":"`+b.org.Secret+`"}`,
		map[string]string{"Connect-Protocol-Version": "1", "X-Forwarded-Proto": "https"})
	require.Equal(t, http.StatusOK, tls.status, tls.body)
	require.Contains(t, tls.resp.Header.Get("Set-Cookie"), "Secure")
}

// The key's state is checked on every cookie-authenticated call exactly as for a bearer key.
func TestConsoleSessionFollowsItsKey(t *testing.T) {
	t.Parallel()
	b := consoleSetup(t)
	ctx := context.Background()
	u, err := b.admin.accounts.CreateUser(ctx, connect.NewRequest(&v1.CreateUserRequest{Email: "sess@example.com", Role: v1.Role_ROLE_VIEWER}))
	require.NoError(t, err)
	// An admin may not mint a key that acts as another user: the operator path does.
	key, secret, err := api.IssueUserKey(ctx, b.pool, "test:issue", api.IssueUserKeyInput{OrgID: b.org.Organization.Id, UserID: u.Msg.User.Id, Name: "console"})
	require.NoError(t, err)
	keyID := key.Id
	cookie := signIn(t, b, secret, nil)
	code := func() string { return rawCall(t, b, getOrg, `{}`, browser(cookie)).code }
	require.Empty(t, code())

	// The role still decides: a viewer's session cannot change anything.
	denied := rawCall(t, b, governorv1connect.AccountServiceCreateProjectProcedure, `{"name":"x"}`, browser(cookie))
	require.Equal(t, "permission_denied", denied.code)
	require.Contains(t, denied.body, "role viewer may not call")

	_, err = b.admin.keys.FreezeApiKey(ctx, connect.NewRequest(&v1.FreezeApiKeyRequest{Id: keyID}))
	require.NoError(t, err)
	require.Equal(t, "permission_denied", code(), "frozen")
	_, err = b.admin.keys.UnfreezeApiKey(ctx, connect.NewRequest(&v1.UnfreezeApiKeyRequest{Id: keyID}))
	require.NoError(t, err)
	require.Empty(t, code())

	yes, no := true, false
	_, err = b.admin.accounts.UpdateUser(ctx, connect.NewRequest(&v1.UpdateUserRequest{Id: u.Msg.User.Id, Deactivated: &yes}))
	require.NoError(t, err)
	require.Equal(t, "permission_denied", code(), "user deactivated")
	_, err = b.admin.accounts.UpdateUser(ctx, connect.NewRequest(&v1.UpdateUserRequest{Id: u.Msg.User.Id, Deactivated: &no}))
	require.NoError(t, err)
	require.Empty(t, code())

	// Rotation: a session opened with the old secret lasts as long as that secret does.
	// The viewer rotates their own key (an admin may not rotate a key that acts as
	// another user).
	own := b.clientsFor(secret)
	_, err = b.admin.keys.RotateApiKey(ctx, connect.NewRequest(&v1.RotateApiKeyRequest{Id: keyID}))
	require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(err), "%v", err)
	rot, err := own.keys.RotateApiKey(ctx, connect.NewRequest(&v1.RotateApiKeyRequest{Id: keyID, GracePeriod: durationpb.New(time.Hour)}))
	require.NoError(t, err)
	require.Empty(t, code(), "within the grace period")
	fresh := signIn(t, b, rot.Msg.Secret, nil)
	_, err = b.clientsFor(rot.Msg.Secret).keys.RotateApiKey(ctx, connect.NewRequest(&v1.RotateApiKeyRequest{Id: keyID}))
	require.NoError(t, err)
	require.Equal(t, "unauthenticated", code(), "the old secret is gone")
	require.Equal(t, "unauthenticated", rawCall(t, b, getOrg, `{}`, browser(fresh)).code, "so is the one before the last rotation")
}

func TestConsoleSignInRefusals(t *testing.T) {
	t.Parallel()
	b := consoleSetup(t)
	ctx := context.Background()
	sign := func(body string) call {
		return rawCall(t, b, governorv1connect.SessionServiceSignInProcedure, body, map[string]string{"Connect-Protocol-Version": "1"})
	}
	require.Equal(t, "invalid_argument", sign(`{"apiKey":""}`).code)
	require.Equal(t, "unauthenticated", sign(`{"apiKey":"let-me-in"}`).code)
	require.Equal(t, "unauthenticated", sign(`{"apiKey":"gvk_AAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"}`).code)
	prj, err := b.admin.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: "p"}))
	require.NoError(t, err)
	ag, err := b.admin.accounts.CreateAgent(ctx, connect.NewRequest(&v1.CreateAgentRequest{ProjectId: prj.Msg.Project.Id, Name: "a"}))
	require.NoError(t, err)
	ing, err := b.admin.keys.CreateApiKey(ctx, connect.NewRequest(&v1.CreateApiKeyRequest{Name: "agent", Kind: v1.ApiKeyKind_API_KEY_KIND_INGEST, AgentId: ag.Msg.Agent.Id}))
	require.NoError(t, err)
	res := sign(`{"apiKey":"` + ing.Msg.Secret + `"}`)
	require.Equal(t, "permission_denied", res.code)
	require.Empty(t, res.resp.Header.Values("Set-Cookie"))

	// A session past its end is refused (and cleared away by the next sign-in).
	cookie := signIn(t, b, b.org.Secret, nil)
	_, err = b.pool.Exec(ctx, `UPDATE console_sessions SET created_at = now() - interval '13 hours', expires_at = now() - interval '1 hour' WHERE api_key_id = $1`, b.org.APIKey.Id)
	require.NoError(t, err)
	expired := rawCall(t, b, getOrg, `{}`, browser(cookie))
	require.Equal(t, "unauthenticated", expired.code)
	require.Contains(t, expired.body, "sign in again")
	signIn(t, b, b.org.Secret, nil)
	var left int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM console_sessions WHERE api_key_id = $1 AND expires_at <= now()`, b.org.APIKey.Id).Scan(&left))
	require.Zero(t, left)
	// A made-up cookie is just unauthenticated.
	require.Equal(t, "unauthenticated", rawCall(t, b, getOrg, `{}`, browser(&http.Cookie{Name: api.SessionCookieName, Value: "forged"})).code)
}

// The generated client with a cookie jar is a browser in miniature: the session cookie,
// and the Connect-Protocol-Version header the Connect protocol always sends.
func TestConsoleSessionWithConnectClientAndStream(t *testing.T) {
	t.Parallel()
	b := consoleSetup(t)
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	ctx := context.Background()
	sessions := governorv1connect.NewSessionServiceClient(hc, b.baseURL)
	in, err := sessions.SignIn(ctx, connect.NewRequest(&v1.SignInRequest{ApiKey: b.org.Secret}))
	require.NoError(t, err)
	require.Equal(t, b.org.APIKey.Id, in.Msg.Identity.ApiKeyId)
	require.NotNil(t, in.Msg.Identity.SessionExpireTime)

	accounts := governorv1connect.NewAccountServiceClient(hc, b.baseURL)
	_, err = accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: "made in the console"}))
	require.NoError(t, err)
	// Changes made through a session are audited as the key's.
	entries, err := b.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{Action: "project.create"}))
	require.NoError(t, err)
	require.Len(t, entries.Msg.Entries, 1)
	require.Equal(t, b.org.APIKey.Id, entries.Msg.Entries[0].Actor.ApiKeyId)

	// Streams authenticate with the cookie too.
	streamCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	events := governorv1connect.NewTimelineServiceClient(hc, b.baseURL)
	stream, err := events.WatchEvents(streamCtx, connect.NewRequest(&v1.WatchEventsRequest{AfterSequence: 0, Filter: &v1.EventFilter{Types: []string{"project_created"}}}))
	require.NoError(t, err)
	_, err = accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: "second"}))
	require.NoError(t, err)
	require.True(t, stream.Receive(), "stream error: %v", stream.Err())
	require.Equal(t, "project_created", stream.Msg().Event.Type)
	require.NoError(t, stream.Close())

	_, err = sessions.SignOut(ctx, connect.NewRequest(&v1.SignOutRequest{}))
	require.NoError(t, err)
	_, err = accounts.GetOrganization(ctx, connect.NewRequest(&v1.GetOrganizationRequest{}))
	requireCode(t, connect.CodeUnauthenticated, err)
}
