// Package api is Governor's front door: Connect services (also reachable over gRPC and
// gRPC-Web) with authentication, validation, idempotency, logs and metrics, plus gRPC
// health, server reflection and /metrics.
package api

import (
	"compress/gzip"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"connectrpc.com/validate"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"

	"github.com/governor-hq/governor/console"
	"github.com/governor-hq/governor/gen/governor/v1/governorv1connect"
	"github.com/governor-hq/governor/internal/alerts"
	"github.com/governor-hq/governor/internal/analytics"
	"github.com/governor-hq/governor/internal/envelope"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/idempotency"
	"github.com/governor-hq/governor/internal/outbox"
	"github.com/governor-hq/governor/internal/runs"
	"github.com/governor-hq/governor/internal/signing"
)

// Options are the settings the API needs.
type Options struct {
	// IdempotencyTTL is how long responses to requests with an Idempotency-Key are kept.
	IdempotencyTTL time.Duration
	// RunLease is the default lease of an admitted run.
	RunLease time.Duration
	// Temporal, when set, lets this process relay workflow starts and signals from the
	// outbox right after it commits them (worker processes relay too, so the API works
	// without it, only with a little more delay).
	Temporal  client.Client
	TaskQueue string
	// AfterAdmitCommit is a fault-injection hook: it runs after an admission batch commits
	// and before its workflows are started.
	AfterAdmitCommit func()
	// Limits guard against hostile traffic; the zero value means DefaultLimits.
	Limits Limits
	// Keyring seals and opens alert channels' credentials (nil: channels with credentials
	// cannot be created).
	Keyring *envelope.Keyring
	// AlertEndpoints is where webhook and Slack channels may point.
	AlertEndpoints alerts.EndpointPolicy
	// AnalyticsRollEvery is how often this process rolls queued analytics records into the
	// rollups (default analytics.DefaultRollEvery; negative: never, for tests that must
	// see no background write).
	AnalyticsRollEvery time.Duration
	// AdmitTimeout and AdmitLockTimeout bound each admission batch and its wait for
	// counter locks (defaults 5 s and 2 s).
	AdmitTimeout     time.Duration
	AdmitLockTimeout time.Duration
	// ConsoleDir, when set, serves the web console from this folder instead of the bundle
	// embedded at build time (`governor dev` builds it there while running).
	ConsoleDir string
	// TemporalUIURL and TemporalNamespace let the console link to workflows in the
	// Temporal Web UI.
	TemporalUIURL     string
	TemporalNamespace string
	// SignalKeys sign the user identity in the proposal decisions the API sends to
	// workflows (GOVERNOR_SIGNAL_KEY; the worker verifies with the same keys). Without
	// them ApproveProposal and RejectProposal are Unavailable.
	SignalKeys signing.Keyring
	// IdempotencyPepper is the server secret Idempotency-Key records are hashed and
	// sealed with (GOVERNOR_IDEMPOTENCY_PEPPER). Every API process of a deployment needs
	// the same one; when empty, New makes a random one, so replays work only within this
	// process (tests, one-process tools).
	IdempotencyPepper []byte
}

// Server holds the API's dependencies. Handlers are methods of small private types that
// embed it.
type Server struct {
	pool    *pgxpool.Pool
	log     *slog.Logger
	opts    Options
	hub     *events.Hub
	metrics *metrics
	names   []string // fully-qualified names of the services served
	// stopping is closed when the server begins shutting down, to end streams.
	stopping chan struct{}
	admitter *runs.Admitter
	relay    *outbox.Relay // nil without a Temporal client
	limits   Limits
	auth     *authenticate
	ipRates  *rates // nil: no per-address limit
	keyRates *rates // nil: no default per-key limit
	streams  *streams
	// analytics answers usage queries and overviews; its roller runs in the background.
	analytics *analytics.Service
	idem      *idempotency.Store
}

// New builds a server. Call Run (or use Handler and run the event hub yourself).
func New(pool *pgxpool.Pool, log *slog.Logger, opts Options) *Server {
	if opts.IdempotencyTTL <= 0 {
		opts.IdempotencyTTL = 24 * time.Hour
	}
	if opts.RunLease <= 0 {
		opts.RunLease = 15 * time.Minute
	}
	if opts.Limits == (Limits{}) {
		opts.Limits = DefaultLimits()
	}
	if len(opts.IdempotencyPepper) == 0 {
		opts.IdempotencyPepper = idempotency.NewPepper()
	}
	lim := opts.Limits.withDefaults()
	s := &Server{pool: pool, log: log, opts: opts, hub: events.NewHub(pool, log), metrics: newMetrics(pool), stopping: make(chan struct{}),
		limits: lim, ipRates: newRates(lim.RatePerIP), keyRates: newRates(lim.RatePerKey), streams: newStreams(lim.MaxStreamsPerKey, lim.MaxStreamsPerOrg),
		idem: idempotency.New(opts.IdempotencyPepper)}
	s.auth = &authenticate{s: s}
	s.analytics = analytics.New(pool, log)
	if opts.Temporal != nil {
		s.relay = outbox.New(pool, opts.Temporal, opts.TaskQueue, log)
	}
	s.admitter = runs.NewAdmitter(pool, log, runs.AdmitterOptions{
		DefaultLease: opts.RunLease, Committed: s.wakeRelay, AfterCommit: opts.AfterAdmitCommit,
		Timeout: opts.AdmitTimeout, LockTimeout: opts.AdmitLockTimeout,
	})
	return s
}

func (s *Server) wakeRelay() {
	if s.relay != nil {
		s.relay.Notify()
	}
}

func (s *Server) knownService(name string) bool {
	for _, n := range s.names {
		if n == name {
			return true
		}
	}
	return false
}

// Handler returns the HTTP handler serving every endpoint.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	maxBytes := s.limits.MaxRequestBytes
	opts := connect.WithHandlerOptions(
		connect.WithInterceptors(
			&observe{log: s.log, metrics: s.metrics},
			s.auth,
			validate.NewInterceptor(),
		),
		// Messages are bounded after decompression, and decompression itself stops at
		// the bound (connect would otherwise inflate the rest just to report its size).
		connect.WithReadMaxBytes(maxBytes),
		connect.WithCompression("gzip", newCappedGzip(int64(maxBytes)), func() connect.Compressor { return gzip.NewWriter(nil) }),
	)
	mount := func(name, path string, h http.Handler) {
		s.names = append(s.names, name)
		mux.Handle(path, h)
	}
	path, h := governorv1connect.NewAccountServiceHandler(&accountService{s}, opts)
	mount(governorv1connect.AccountServiceName, path, h)
	path, h = governorv1connect.NewApiKeyServiceHandler(&apiKeyService{s}, opts)
	mount(governorv1connect.ApiKeyServiceName, path, h)
	path, h = governorv1connect.NewAuditServiceHandler(&auditService{s}, opts)
	mount(governorv1connect.AuditServiceName, path, h)
	path, h = governorv1connect.NewTimelineServiceHandler(&timelineService{s}, opts)
	mount(governorv1connect.TimelineServiceName, path, h)
	path, h = governorv1connect.NewLimitServiceHandler(&limitService{s}, opts)
	mount(governorv1connect.LimitServiceName, path, h)
	path, h = governorv1connect.NewRunServiceHandler(&runService{s}, opts)
	mount(governorv1connect.RunServiceName, path, h)
	path, h = governorv1connect.NewIncidentServiceHandler(&incidentService{s}, opts)
	mount(governorv1connect.IncidentServiceName, path, h)
	path, h = governorv1connect.NewPolicyServiceHandler(&policyService{s}, opts)
	mount(governorv1connect.PolicyServiceName, path, h)
	path, h = governorv1connect.NewAlertServiceHandler(&alertService{s}, opts)
	mount(governorv1connect.AlertServiceName, path, h)
	path, h = governorv1connect.NewAnomalyServiceHandler(&anomalyService{s}, opts)
	mount(governorv1connect.AnomalyServiceName, path, h)
	path, h = s.sessionHandler()
	mount(governorv1connect.SessionServiceName, path, h)
	path, h = governorv1connect.NewAnalyticsServiceHandler(&analyticsService{s}, opts)
	mount(governorv1connect.AnalyticsServiceName, path, h)
	path, h = governorv1connect.NewLogServiceHandler(&logService{s}, opts)
	mount(governorv1connect.LogServiceName, path, h)
	path, h = governorv1connect.NewExportServiceHandler(&exportService{s}, opts)
	mount(governorv1connect.ExportServiceName, path, h)
	mux.HandleFunc(ExportPathPrefix, s.exportHTTP)

	reflector := grpcreflect.NewStaticReflector(append([]string{healthServiceName}, s.names...)...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	s.healthHandlers(mux)
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	// The web console, at every path no API route claims (same origin: no CORS).
	mux.Handle("/", console.Handler(console.Options{Dir: s.opts.ConsoleDir}))
	return withRequestSite(s.guard(mux))
}

// Run serves on addr until ctx ends, then shuts down gracefully. ready, if not nil, gets
// the bound address once listening (useful with port 0).
func (s *Server) Run(ctx context.Context, addr string, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln, ready)
}

// Serve serves on ln until ctx ends. It accepts connections once the event hub listens.
func (s *Server) Serve(ctx context.Context, ln net.Listener, ready func(net.Addr)) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		// No ReadTimeout or WriteTimeout: they would cut long-lived streams. guard bounds
		// the time to send a request body instead.
		IdleTimeout:    s.limits.IdleTimeout,
		MaxHeaderBytes: 64 << 10,
		HTTP2:          &http.HTTP2Config{MaxConcurrentStreams: 250, MaxReadFrameSize: 1 << 20},
		Protocols:      new(http.Protocols),
		// In-flight calls finish during shutdown; long-lived streams watch s.stopping.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	srv.RegisterOnShutdown(func() { close(s.stopping) })
	// HTTP/1.1 for Connect and gRPC-Web; cleartext HTTP/2 (h2c) for gRPC and streams.
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)

	// Background loops: the event hub, the admission batcher, the outbox relay. They stop
	// after the HTTP server has drained.
	bgCtx, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	bg.Go(func() { s.hub.Run(bgCtx) })
	bg.Go(func() { s.admitter.Run(bgCtx) })
	if s.opts.AnalyticsRollEvery >= 0 {
		bg.Go(func() { s.analytics.RunRoller(bgCtx, s.opts.AnalyticsRollEvery) })
	}
	if s.relay != nil {
		bg.Go(func() { s.relay.Run(bgCtx) })
	}
	defer func() { stopBg(); bg.Wait() }()

	// A stream tells its client it is live once subscribed to the hub; events committed
	// before the hub LISTENs would never reach it, so nothing is served until then
	// (connections wait in the listen backlog).
	select {
	case <-s.hub.Ready():
	case <-ctx.Done():
		_ = ln.Close()
		return nil
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if ready != nil {
		ready(ln.Addr())
	}
	s.log.Info("API serving", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
