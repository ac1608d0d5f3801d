package api

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/governor-hq/governor/internal/authz"
)

// Limits are the API's guards against hostile or runaway traffic. Every one has a
// documented default (config: GOVERNOR_MAX_REQUEST_BYTES and the rest).
type Limits struct {
	// MaxRequestBytes bounds a request message after decompression, and the request body
	// on the wire (default 4 MiB).
	MaxRequestBytes int
	// ReadTimeout bounds how long a client may take to send a request body (default 30 s).
	// Server streams are not limited by it: the deadline ends with the body.
	ReadTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections (default 2 min).
	IdleTimeout time.Duration
	// MaxStreamsPerKey and MaxStreamsPerOrg bound concurrent server streams on this
	// process (defaults 16 and 64).
	MaxStreamsPerKey int
	MaxStreamsPerOrg int
	// RatePerIP is requests per second per client address (IPv6 by /64), checked before
	// authentication; RatePerKey the default rate of a key without its own
	// requests_per_minute. Bursts of twice the rate pass. 0 means no limit; negative
	// (the zero Limits) means the default of 1000/s.
	RatePerIP  float64
	RatePerKey float64
}

func (l Limits) withDefaults() Limits {
	if l.MaxRequestBytes <= 0 {
		l.MaxRequestBytes = 4 << 20
	}
	if l.ReadTimeout <= 0 {
		l.ReadTimeout = 30 * time.Second
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = 2 * time.Minute
	}
	if l.MaxStreamsPerKey <= 0 {
		l.MaxStreamsPerKey = 16
	}
	if l.MaxStreamsPerOrg <= 0 {
		l.MaxStreamsPerOrg = 64
	}
	if l.RatePerIP < 0 {
		l.RatePerIP = 1000
	}
	if l.RatePerKey < 0 {
		l.RatePerKey = 1000
	}
	return l
}

// DefaultLimits are the limits the service runs with unless configured otherwise.
func DefaultLimits() Limits {
	return Limits{RatePerIP: -1, RatePerKey: -1}.withDefaults()
}

// guard wraps every endpoint: a per-address rate limit, a cap on the body's size and on
// the time to send it, and, for Governor's RPCs, authentication before a single byte of
// the body is read, so an unauthenticated client cannot make the server decode (or
// decompress) anything.
func (s *Server) guard(next http.Handler) http.Handler {
	errs := connect.NewErrorWriter()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fail := func(procedure string, err error) {
			code := connect.CodeOf(err)
			s.metrics.observe(procedure, code.String(), 0)
			s.log.Info("rpc refused before decoding", "procedure", procedure, "code", code.String(), "remote", r.RemoteAddr, "err", err.Error())
			if errs.IsSupported(r) {
				_ = errs.Write(w, r, err)
				return
			}
			http.Error(w, err.Error(), httpStatus(code))
		}
		procedure := r.URL.Path
		if !s.ipRates.allow(clientAddr(r.RemoteAddr)) {
			fail(procedure, rateLimited("too many requests from this address", s.ipRates.retryAfter()))
			return
		}
		r.Body = &deadlineBody{ReadCloser: http.MaxBytesReader(w, r.Body, int64(s.limits.MaxRequestBytes)+envelopeSlack),
			rc: http.NewResponseController(w)}
		_ = r.Body.(*deadlineBody).rc.SetReadDeadline(time.Now().Add(s.limits.ReadTimeout))
		if s.isRPC(procedure) && permissions[procedure] != publicPermission {
			ctx, err := s.auth.check(r.Context(), procedure, r.Header)
			if err != nil {
				fail(procedure, err)
				return
			}
			r = r.WithContext(context.WithValue(ctx, preauthKey{}, procedure))
		}
		next.ServeHTTP(w, r)
	})
}

// envelopeSlack is what the wire may hold beyond the message: the gRPC and Connect
// streaming envelope (5 bytes) and end-of-stream frames.
const envelopeSlack = 4096

// deadlineBody lifts the read deadline once the body is read, so a server stream's
// response is not cut by the deadline meant for the request (HTTP/1.1 would otherwise
// cancel the stream when its idle connection read times out).
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		err = connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("request body is larger than the limit of %d bytes", tooBig.Limit))
	}
	return n, err
}

type preauthKey struct{}

// preauthenticated reports whether guard already authenticated this procedure's request.
func preauthenticated(ctx context.Context, procedure string) bool {
	p, _ := ctx.Value(preauthKey{}).(string)
	return p != "" && p == procedure
}

// isRPC reports whether path is one of Governor's own Connect procedures (health and
// reflection are open to anyone and stay outside).
func (s *Server) isRPC(path string) bool {
	svc, _, ok := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	return ok && s.knownService(svc)
}

func httpStatus(c connect.Code) int {
	switch c {
	case connect.CodeUnauthenticated:
		return http.StatusUnauthorized
	case connect.CodePermissionDenied:
		return http.StatusForbidden
	case connect.CodeResourceExhausted:
		return http.StatusTooManyRequests
	}
	return http.StatusBadRequest
}

func rateLimited(msg string, retry time.Duration) error {
	err := connect.NewError(connect.CodeResourceExhausted, errors.New(msg))
	if d, derr := connect.NewErrorDetail(&errdetails.RetryInfo{RetryDelay: durationpb.New(retry)}); derr == nil {
		err.AddDetail(d)
	}
	if d, derr := connect.NewErrorDetail(&errdetails.ErrorInfo{Reason: "RATE_LIMITED", Domain: "governor"}); derr == nil {
		err.AddDetail(d)
	}
	err.Meta().Set("Retry-After", fmt.Sprint(int(math.Ceil(retry.Seconds()))))
	return err
}

// clientAddr is the address a per-client limit counts: the IP, with IPv6 addresses
// grouped by /64 (one host usually holds a whole /64).
func clientAddr(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// rates holds one token bucket per key (client address or API key), forgetting buckets
// idle for ten minutes so a spray of addresses cannot grow it without bound: at most
// maxBuckets are kept, and a full table refuses new keys until the sweep.
type rates struct {
	limit rate.Limit
	burst int
	mu    sync.Mutex
	m     map[string]*bucket
	swept time.Time
}

type bucket struct {
	l    *rate.Limiter
	seen time.Time
}

const maxBuckets = 200_000

func newRates(perSecond float64) *rates {
	if perSecond <= 0 {
		return nil
	}
	return &rates{limit: rate.Limit(perSecond), burst: max(1, int(math.Ceil(2*perSecond))), m: map[string]*bucket{}, swept: time.Now()}
}

func (r *rates) allow(key string) bool {
	if r == nil {
		return true
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.swept) > time.Minute {
		for k, b := range r.m {
			if now.Sub(b.seen) > 10*time.Minute {
				delete(r.m, k)
			}
		}
		r.swept = now
	}
	b := r.m[key]
	if b == nil {
		if len(r.m) >= maxBuckets {
			return false
		}
		b = &bucket{l: rate.NewLimiter(r.limit, r.burst)}
		r.m[key] = b
	}
	b.seen = now
	return b.l.AllowN(now, 1)
}

func (r *rates) retryAfter() time.Duration {
	if r == nil || r.limit <= 0 {
		return time.Second
	}
	return max(time.Duration(float64(time.Second)/float64(r.limit)), time.Second)
}

// streams counts open server streams per key and per organization.
type streams struct {
	perKey, perOrg int
	mu             sync.Mutex
	keys, orgs     map[string]int
}

func newStreams(perKey, perOrg int) *streams {
	return &streams{perKey: perKey, perOrg: perOrg, keys: map[string]int{}, orgs: map[string]int{}}
}

// open takes a stream slot for p, or returns a ResourceExhausted error.
func (s *streams) open(p authz.Principal) (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.keys[p.APIKeyID] >= s.perKey:
		return nil, connect.NewError(connect.CodeResourceExhausted,
			fmt.Errorf("API key %s already has %d streams open on this server (the limit); close one first", p.APIKeyID, s.perKey))
	case s.orgs[p.OrgID] >= s.perOrg:
		return nil, connect.NewError(connect.CodeResourceExhausted,
			fmt.Errorf("the organization already has %d streams open on this server (the limit); close one first", s.perOrg))
	}
	s.keys[p.APIKeyID]++
	s.orgs[p.OrgID]++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.keys[p.APIKeyID]--; s.keys[p.APIKeyID] <= 0 {
			delete(s.keys, p.APIKeyID)
		}
		if s.orgs[p.OrgID]--; s.orgs[p.OrgID] <= 0 {
			delete(s.orgs, p.OrgID)
		}
	}, nil
}

// cappedGzip is gzip decompression that stops with an error once it has produced more
// than max bytes, so that even discarding an oversized message (connect reads on to
// report its size) costs no more than the limit.
type cappedGzip struct {
	gz   *gzip.Reader
	max  int64
	read int64
}

func newCappedGzip(maxBytes int64) func() connect.Decompressor {
	return func() connect.Decompressor { return &cappedGzip{max: maxBytes} }
}

var errDecompressedTooLarge = errors.New("decompressed request is larger than the limit")

func (c *cappedGzip) Read(p []byte) (int, error) {
	if c.gz == nil {
		return 0, io.ErrUnexpectedEOF
	}
	if c.read > c.max {
		return 0, connect.NewError(connect.CodeResourceExhausted, errDecompressedTooLarge)
	}
	n, err := c.gz.Read(p)
	c.read += int64(n)
	return n, err
}

func (c *cappedGzip) Reset(r io.Reader) error {
	c.read = 0
	if c.gz == nil {
		gz, err := gzip.NewReader(r)
		if err != nil {
			return err
		}
		c.gz = gz
		return nil
	}
	return c.gz.Reset(r)
}

func (c *cappedGzip) Close() error {
	if c.gz == nil {
		return nil
	}
	return c.gz.Close()
}
