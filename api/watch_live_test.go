package api_test

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/api"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/testenv"
)

// A stream that says it is live hears every event committed after that, even on a server
// that has only just started and whose event hub is slow to connect (as on a loaded
// machine): the server serves nothing before its hub LISTENs. Each round starts a new
// server, opens a stream at once, and commits an event the moment the stream is live.
func TestWatchEventsIsLiveFromTheFirstMomentOfANewServer(t *testing.T) {
	t.Parallel()
	org := bootstrap(t, testenv.DB(t), "Acme "+t.Name())

	// The servers' pool: connections opened once `slow` is set (the event hub's) take
	// a while. The pool's own connections are opened before, so requests stay fast.
	cfg, err := pgxpool.ParseConfig(testenv.DBURL(t))
	require.NoError(t, err)
	var slow atomic.Int64 // delay in nanoseconds
	var dialer net.Dialer
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if d := time.Duration(slow.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return dialer.DialContext(ctx, network, addr)
	}
	cfg.MinConns, cfg.MaxConns = 4, 4
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	warm := make([]*pgxpool.Conn, 4)
	for i := range warm {
		warm[i], err = pool.Acquire(context.Background())
		require.NoError(t, err)
	}
	for _, c := range warm {
		c.Release()
	}

	for round, delay := range []time.Duration{500 * time.Millisecond, 0, 500 * time.Millisecond, 0, 500 * time.Millisecond} {
		slow.Store(int64(delay))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ctx, stop := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() {
			served <- api.New(pool, quietLogger(), api.Options{IdempotencyTTL: time.Hour}).Serve(ctx, ln, nil)
		}()

		b := &testBundle{pool: pool, baseURL: "http://" + ln.Addr().String(), http: &http.Client{Timeout: time.Minute}}
		c := b.clientsFor(org.Secret)
		watchCtx, cancelWatch := context.WithTimeout(ctx, time.Minute)
		stream, err := c.timeline.WatchEvents(watchCtx, connect.NewRequest(&v1.WatchEventsRequest{
			Filter: &v1.EventFilter{Types: []string{"project_created"}}}))
		require.NoError(t, err)
		_ = stream.ResponseHeader() // live: from here on nothing may be missed

		p, err := c.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: "round " + string(rune('a'+round))}))
		require.NoError(t, err)
		require.True(t, stream.Receive(), "round %d (hub delay %s): the event committed right after the stream went live never arrived: %v",
			round, delay, stream.Err())
		require.Equal(t, p.Msg.Project.Id, stream.Msg().Event.Entity.Id)

		require.NoError(t, stream.Close())
		cancelWatch()
		stop()
		require.NoError(t, <-served)
	}
}

// When the hub's connection drops and comes back, a watcher re-reads what it may have
// missed, and only that: a stream that asked for no history gets no history, but an event
// committed while the hub was away does arrive.
func TestWatchEventsResyncAfterAReconnectReplaysOnlyWhatWasMissed(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.FreshDB(t) // its own database: the only hub LISTENing on it is this test's
	b := &testBundle{pool: pool, baseURL: startServer(t, pool), http: &http.Client{Timeout: time.Minute}}
	b.org = bootstrap(t, pool, "Acme "+t.Name())
	b.admin = b.clientsFor(b.org.Secret)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, name := range []string{"old a", "old b"} {
		_, err := b.admin.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: name}))
		require.NoError(t, err)
	}

	stream, err := b.admin.timeline.WatchEvents(ctx, connect.NewRequest(&v1.WatchEventsRequest{
		Filter: &v1.EventFilter{Types: []string{"project_created"}}}))
	require.NoError(t, err)
	defer stream.Close()
	_ = stream.ResponseHeader()

	// Cut the hub's connection; commit an event while it is away (its notification reaches
	// no one); wait for the hub to listen again, which resyncs every watcher.
	listeners := func() (pids []int32, err error) {
		rows, err := pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'`)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var pid int32
			if err := rows.Scan(&pid); err != nil {
				return nil, err
			}
			pids = append(pids, pid)
		}
		return pids, rows.Err()
	}
	before, err := listeners()
	require.NoError(t, err)
	require.Len(t, before, 1, "one hub listens on this database")
	_, err = pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, before[0])
	require.NoError(t, err)
	missed, err := b.admin.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: "while away"}))
	require.NoError(t, err)

	require.True(t, stream.Receive(), stream.Err())
	require.Equal(t, missed.Msg.Project.Id, stream.Msg().Event.Entity.Id,
		"the first event after the resync is the one committed while the hub was away, not history")
	after, err := listeners()
	require.NoError(t, err)
	require.Len(t, after, 1)
	require.NotEqual(t, before[0], after[0], "the hub reconnected")

	live, err := b.admin.accounts.CreateProject(ctx, connect.NewRequest(&v1.CreateProjectRequest{Name: "live again"}))
	require.NoError(t, err)
	require.True(t, stream.Receive(), stream.Err())
	require.Equal(t, live.Msg.Project.Id, stream.Msg().Event.Entity.Id)
}
