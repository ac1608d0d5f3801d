// Package api is Governor's front door: Connect services (also reachable over gRPC and
// gRPC-Web) with authentication, validation, idempotency, logs and metrics, plus gRPC
// health, server reflection and /metrics.
package api

import (
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

	"github.com/governor-hq/governor/gen/governor/v1/governorv1connect"
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
	idem     *idempotency.Store
}

// New builds a server. Call Run (or use Handler and run the event hub yourself).
func New(pool *pgxpool.Pool, log *slog.Logger, opts Options) *Server {
	if opts.IdempotencyTTL <= 0 {
		opts.IdempotencyTTL = 24 * time.Hour
	}
	if opts.RunLease <= 0 {
		opts.RunLease = 15 * time.Minute
	}
	if len(opts.IdempotencyPepper) == 0 {
		opts.IdempotencyPepper = idempotency.NewPepper()
	}
	s := &Server{pool: pool, log: log, opts: opts, hub: events.NewHub(pool, log), metrics: newMetrics(), stopping: make(chan struct{}),
		idem: idempotency.New(opts.IdempotencyPepper)}
	if opts.Temporal != nil {
		s.relay = outbox.New(pool, opts.Temporal, opts.TaskQueue, log)
	}
	s.admitter = runs.NewAdmitter(pool, log, runs.AdmitterOptions{
		DefaultLease: opts.RunLease, Committed: s.wakeRelay, AfterCommit: opts.AfterAdmitCommit,
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
	opts := connect.WithInterceptors(
		&observe{log: s.log, metrics: s.metrics},
		&authenticate{s: s},
		validate.NewInterceptor(),
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

	reflector := grpcreflect.NewStaticReflector(append([]string{healthServiceName}, s.names...)...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	s.healthHandlers(mux)
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	return mux
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

// Serve serves on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener, ready func(net.Addr)) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		Protocols:         new(http.Protocols),
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
	if s.relay != nil {
		bg.Go(func() { s.relay.Run(bgCtx) })
	}
	defer func() { stopBg(); bg.Wait() }()

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
