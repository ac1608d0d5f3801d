package api_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/governor-hq/governor/api"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/testenv"
)

// startServerWith runs an API server with the given limits until the test ends.
func startServerWith(t *testing.T, pool *pgxpool.Pool, lim api.Limits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	s := api.New(pool, quietLogger(), api.Options{IdempotencyTTL: time.Hour, Limits: lim})
	go func() { done <- s.Serve(ctx, ln, nil) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return "http://" + ln.Addr().String()
}

// gzipBomb is a gzip body of a few kilobytes that inflates to n bytes of a valid
// protobuf message (a CreateProjectRequest whose name is n bytes long).
func gzipBomb(t *testing.T, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	require.NoError(t, err)
	// Field 1 (name), wire type 2, then the length as a varint, then the bytes.
	head := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.BytesType), uint64(n))
	_, err = zw.Write(head)
	require.NoError(t, err)
	chunk := bytes.Repeat([]byte("a"), 1<<20)
	for left := n; left > 0; left -= len(chunk) {
		_, err = zw.Write(chunk[:min(left, len(chunk))])
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func post(t *testing.T, url, secret string, body []byte, gzipped bool) (int, string) {
	t.Helper()
	code, b, err := tryPost(url, secret, body, gzipped)
	require.NoError(t, err)
	return code, b
}

// tryPost is post for goroutines: it returns its error instead of asserting.
func tryPost(url, secret string, body []byte, gzipped bool) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/proto")
	if gzipped {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// allocated runs f and returns the bytes the whole process allocated meanwhile (the
// server runs in this process, so its decoding is counted).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// The review's finding: a 32 KB gzip body inflating to 32 MiB was fully decoded before
// authentication, and six such requests grew the process by 1.6 GB. Now an
// unauthenticated request is refused before its body is read, and an authenticated one is
// cut at the limit while it inflates.
//
// Not parallel: it measures the whole process's allocations, so it runs alone (Go runs
// the non-parallel tests before releasing the parallel ones).
func TestGzipBombsAndOversizedBodiesAreRefusedWithoutAllocating(t *testing.T) {
	pool := testenv.DB(t)
	const limit = 1 << 20
	base := startServerWith(t, pool, api.Limits{MaxRequestBytes: limit, RatePerIP: 0, RatePerKey: 0})
	org := bootstrap(t, pool, "Bombed "+t.Name())
	url := base + "/governor.v1.AccountService/CreateProject"
	bomb := gzipBomb(t, 64<<20)
	require.Less(t, len(bomb), 256<<10, "the bomb is small on the wire")

	// Unauthenticated: six at once, as in the review. Nothing is decoded.
	var codes []int
	var errs []error
	var mu sync.Mutex
	unauth := allocated(func() {
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() {
				code, _, err := tryPost(url, "", bomb, true)
				mu.Lock()
				codes, errs = append(codes, code), append(errs, err)
				mu.Unlock()
			})
		}
		wg.Wait()
	})
	require.NoError(t, errors.Join(errs...))
	require.Len(t, codes, 6)
	for _, c := range codes {
		require.Equal(t, http.StatusUnauthorized, c)
	}
	t.Logf("6 unauthenticated 64 MiB gzip bombs: %d KiB allocated in the process", unauth>>10)
	require.Less(t, unauth, uint64(6*len(bomb)+8<<20), "the bodies were not decompressed")

	// Authenticated: refused with ResourceExhausted once the inflated message passes the
	// limit; the process allocates a small multiple of the limit, not 64 MiB.
	var code int
	var body string
	authd := allocated(func() { code, body = post(t, url, org.Secret, bomb, true) })
	require.Equal(t, http.StatusTooManyRequests, code, body) // Connect's HTTP status for resource_exhausted
	require.Contains(t, body, "resource_exhausted")
	t.Logf("one authenticated 64 MiB gzip bomb with a 1 MiB limit: %d KiB allocated", authd>>10)
	// A small multiple: connect's buffer grows by doubling up to the limit (about 4×), and
	// under the race detector sync.Pool drops buffers it would reuse (about 8×). Decoding
	// the whole bomb would allocate more than 64×.
	require.Less(t, authd, uint64(12*limit), "decoding stopped at the limit")

	// An uncompressed body over the limit is refused without being read whole.
	big := make([]byte, 3*limit)
	authd = allocated(func() { code, body = post(t, url, org.Secret, big, false) })
	require.Contains(t, []int{http.StatusTooManyRequests, http.StatusRequestEntityTooLarge}, code, body)
	require.Less(t, authd, uint64(12*limit)+uint64(len(big)), "the oversized body was not buffered beyond the limit")

	// The same through the generated client, over Connect and over gRPC (whose envelope
	// declares the size up front).
	c := &v1.CreateProjectRequest{Name: strings.Repeat("x", 2*limit)}
	b := &testBundle{baseURL: base, http: h2cClient()}
	_, err := b.clientsFor(org.Secret).accounts.CreateProject(context.Background(), connect.NewRequest(c))
	requireCode(t, connect.CodeResourceExhausted, err)
	_, err = b.clientsFor(org.Secret, connect.WithGRPC()).accounts.CreateProject(context.Background(), connect.NewRequest(c))
	requireCode(t, connect.CodeResourceExhausted, err)

	// A normal request still works.
	_, err = b.clientsFor(org.Secret).accounts.CreateProject(context.Background(), connect.NewRequest(&v1.CreateProjectRequest{Name: "fine"}))
	require.NoError(t, err)
}

// A client that sends headers and then trickles (or stalls) its body is cut off after the
// read timeout, while a server stream stays open far longer than that.
func TestSlowBodiesTimeOutButStreamsLive(t *testing.T) {
	t.Parallel()
	pool := testenv.DB(t)
	base := startServerWith(t, pool, api.Limits{ReadTimeout: time.Second, RatePerIP: 0, RatePerKey: 0})
	org := bootstrap(t, pool, "Slow "+t.Name())

	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "POST /governor.v1.AccountService/GetOrganization HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Authorization: Bearer %s\r\nContent-Length: 100\r\n\r\n{", org.Secret)
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(30*time.Second)))
	start := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		// The server answered the half-sent request with an error instead of waiting.
		require.NotEqual(t, http.StatusOK, resp.StatusCode)
		_ = resp.Body.Close()
	}
	require.Less(t, time.Since(start), 20*time.Second, "the stalled request was cut off by the read timeout")

	// Over HTTP/1.1 (Connect's streaming protocol), a stream outlives the read timeout.
	cl := (&testBundle{baseURL: base, http: &http.Client{}}).clientsFor(org.Secret)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stream, err := cl.timeline.WatchEvents(ctx, connect.NewRequest(&v1.WatchEventsRequest{Filter: &v1.EventFilter{Domains: []string{"accounts"}}}))
	require.NoError(t, err)
	defer stream.Close()
	_ = stream.ResponseHeader()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) { // outlive the 1 s read deadline three times over
		time.Sleep(100 * time.Millisecond)
	}
	_, err = cl.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: "after the timeout"}))
	require.NoError(t, err)
	require.True(t, stream.Receive(), "stream still open: %v", stream.Err())
	require.Equal(t, "project_created", stream.Msg().Event.Type)
}

// Concurrent streams are capped per key (and per organization); closing one frees a slot.
func TestStreamsAreCappedPerKey(t *testing.T) {
	t.Parallel()
	pool := testenv.DB(t)
	base := startServerWith(t, pool, api.Limits{MaxStreamsPerKey: 2, MaxStreamsPerOrg: 3, RatePerIP: 0, RatePerKey: 0})
	org := bootstrap(t, pool, "Streams "+t.Name())
	b := &testBundle{pool: pool, baseURL: base, http: &http.Client{Timeout: 30 * time.Second}, org: org}
	b.admin = b.clientsFor(org.Secret)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	open := func(secret string) (*connect.ServerStreamForClient[v1.WatchEventsResponse], error) {
		s, err := b.clientsFor(secret).timeline.WatchEvents(ctx, connect.NewRequest(&v1.WatchEventsRequest{}))
		if err != nil {
			return nil, err
		}
		_ = s.ResponseHeader()
		if err := s.Err(); err != nil {
			return nil, err
		}
		return s, nil
	}
	s1, err := open(org.Secret)
	require.NoError(t, err)
	s2, err := open(org.Secret)
	require.NoError(t, err)
	s3, err := open(org.Secret)
	if err == nil {
		require.False(t, s3.Receive())
		err = s3.Err()
	}
	requireCode(t, connect.CodeResourceExhausted, err)
	require.Contains(t, err.Error(), "streams open")
	// Another key of the organization gets the organization's last slot, then none.
	other, err := b.admin.keys.CreateApiKey(ctx, connect.NewRequest(&v1.CreateApiKeyRequest{Name: "second", Kind: v1.ApiKeyKind_API_KEY_KIND_USER, UserId: org.Admin.Id}))
	require.NoError(t, err)
	s4, err := open(other.Msg.Secret)
	require.NoError(t, err)
	s5, err := open(other.Msg.Secret)
	if err == nil {
		require.False(t, s5.Receive())
		err = s5.Err()
	}
	requireCode(t, connect.CodeResourceExhausted, err)
	require.Contains(t, err.Error(), "organization")
	require.NoError(t, s1.Close())
	require.Eventually(t, func() bool {
		s, err := open(org.Secret)
		if err != nil {
			return false
		}
		_ = s.Close()
		return true
	}, 30*time.Second, 50*time.Millisecond, "a closed stream frees its slot")
	_ = s2.Close()
	_ = s4.Close()
}

// Requests are rate limited per client address before authentication, and per key by
// default; both answer ResourceExhausted with Retry-After.
func TestDefaultRateLimitsPerAddressAndPerKey(t *testing.T) {
	t.Parallel()
	pool := testenv.DB(t)
	org := bootstrap(t, pool, "Rates "+t.Name())

	perIP := startServerWith(t, pool, api.Limits{RatePerIP: 5, RatePerKey: 0}) // burst 10
	refusedAt := 0
	for i := 1; i <= 50 && refusedAt == 0; i++ {
		code, body := post(t, perIP+"/governor.v1.AccountService/GetOrganization", "", nil, false)
		if code == http.StatusTooManyRequests {
			refusedAt = i
			require.Contains(t, body, "too many requests from this address")
		} else {
			require.Equal(t, http.StatusUnauthorized, code, "unauthenticated requests count too")
		}
	}
	require.NotZero(t, refusedAt)
	require.LessOrEqual(t, refusedAt, 12, "the burst is twice the rate")

	perKey := startServerWith(t, pool, api.Limits{RatePerIP: 0, RatePerKey: 2}) // burst 4
	cl := (&testBundle{baseURL: perKey, http: &http.Client{Timeout: 30 * time.Second}}).clientsFor(org.Secret).accounts
	var err error
	n := 0
	for ; n < 30; n++ {
		if _, err = cl.GetOrganization(context.Background(), connect.NewRequest(&v1.GetOrganizationRequest{})); err != nil {
			break
		}
	}
	requireCode(t, connect.CodeResourceExhausted, err)
	require.LessOrEqual(t, n, 6)
	require.Contains(t, err.Error(), "default rate")
	ce := err.(*connect.Error)
	require.NotEmpty(t, ce.Meta().Get("Retry-After"))
}
