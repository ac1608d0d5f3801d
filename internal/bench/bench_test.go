package bench_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/internal/bench"
	"github.com/governor-hq/governor/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// syncBuffer is the benchmark's output, read by the test while the benchmark writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// prefix is a scratch-database name of this test's own, so that nothing else's databases
// (another worktree's tests, a developer's benchmark) count.
func prefix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "governor_bench_test_" + hex.EncodeToString(b)
}

// databases lists the test server's databases whose names start with prefix.
func databases(t *testing.T, prefix string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testenv.AdminURL())
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY 1", prefix)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

func smallest(t *testing.T, name string, out *syncBuffer) bench.SuiteOptions {
	return bench.SuiteOptions{
		Options: bench.Options{Duration: 200 * time.Millisecond, Concurrency: []int{1}, Agents: 2, Out: out,
			Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))},
		AdminURL: testenv.AdminURL(), Database: name,
		Lifecycle: &bench.LifecycleOptions{Namespace: testenv.TemporalNamespace(), Clients: []int{1}, Duration: 300 * time.Millisecond},
		Temporal: func(context.Context) (string, bool, func(), error) {
			return testenv.TemporalAddress(t), false, func() {}, nil
		},
	}
}

// The smallest `governor bench` measures in two scratch databases and leaves neither.
func TestBenchDropsItsScratchDatabases(t *testing.T) {
	t.Parallel()
	name := prefix()
	out := &syncBuffer{}
	require.NoError(t, bench.Suite(context.Background(), smallest(t, name, out)))
	require.Contains(t, out.String(), "scratch database "+name+" (dropped when done)")
	require.Contains(t, out.String(), "scratch database "+name+"_lifecycle (dropped when done)")
	require.Contains(t, out.String(), "governor: AdmitRun decision", "the admission points ran")
	require.Contains(t, out.String(), "lifecycle: admit→complete→settled", "the end-to-end point ran")
	require.Empty(t, databases(t, name), "scratch databases left behind")
}

// A benchmark that fails (here: no Temporal at the address given) still drops what it
// created.
func TestBenchDropsItsScratchDatabasesOnError(t *testing.T) {
	t.Parallel()
	name := prefix()
	out := &syncBuffer{}
	o := smallest(t, name, out)
	o.Temporal = func(context.Context) (string, bool, func(), error) { return "127.0.0.1:1", false, func() {}, nil }
	err := bench.Suite(context.Background(), o)
	require.Error(t, err)
	require.Contains(t, out.String(), "scratch database "+name+"_lifecycle", "it failed with its database made")
	require.Empty(t, databases(t, name), "scratch databases left behind")
}

// Ctrl-C (the command's context cancelled) in the middle of a point: the benchmark stops
// and drops its database.
func TestBenchDropsItsScratchDatabasesWhenInterrupted(t *testing.T) {
	t.Parallel()
	name := prefix()
	out := &syncBuffer{}
	o := smallest(t, name, out)
	o.Duration = time.Minute // a point that would run long
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- bench.Suite(ctx, o) }()
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(out.String(), "== one hot budget ==") {
		require.True(t, time.Now().Before(deadline), "the benchmark never started: %s", out.String())
		time.Sleep(20 * time.Millisecond) // polling the output the benchmark is writing
	}
	require.Equal(t, []string{name}, databases(t, name), "the scratch database exists while it runs")
	cancel()
	select {
	case err := <-done:
		require.True(t, errors.Is(err, context.Canceled), "%v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the benchmark did not stop when interrupted")
	}
	require.Empty(t, databases(t, name), "scratch databases left behind")
}

// `governor bench anomalies` at its smallest drops its database too.
func TestAnomalyBenchDropsItsScratchDatabase(t *testing.T) {
	t.Parallel()
	name := prefix()
	out := &syncBuffer{}
	res, err := bench.AnomalySuite(context.Background(), testenv.AdminURL(), name, bench.AnomalyOptions{Records: []int{500, 1000}, Agents: 5, Models: 2, Out: out,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
	require.NoError(t, err)
	require.Len(t, res, 2, "both sizes measured, each in a fresh database")
	require.Equal(t, 1000, res[1].Records)
	require.Empty(t, databases(t, name), "scratch databases left behind")
}
