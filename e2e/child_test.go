package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/governor-hq/governor/api"
	"github.com/governor-hq/governor/db"
	"github.com/governor-hq/governor/internal/testenv"
	"github.com/governor-hq/governor/workers"
)

// A second API server runs as a separate OS process: the test binary re-executed with
// these variables set, sharing nothing with the test process but the database.
const (
	childWorkerEnv   = "GOVERNOR_E2E_CHILD_WORKER_DB"
	childQueueEnv    = "GOVERNOR_E2E_CHILD_TASK_QUEUE"
	childAPIEnv      = "GOVERNOR_E2E_CHILD_API_DB"
	childFaultEnv    = "GOVERNOR_E2E_CHILD_EXIT_AFTER_ADMIT"
	childReadyPrefix = "CHILD_API_LISTENING "
)

func runChildAPI() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	pool, err := db.Open(ctx, os.Getenv(childAPIEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child api:", err)
		os.Exit(2)
	}
	opts := api.Options{IdempotencyTTL: time.Hour, RunLease: time.Minute, Keyring: testKeyring(), AlertEndpoints: testEndpoints}
	if os.Getenv(childFaultEnv) != "" {
		// Fault injection: die after the admission commits, before anything starts its
		// workflow, as a process killed at the worst moment would.
		opts.AfterAdmitCommit = func() { os.Exit(3) }
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.Exit(2)
	}
	fmt.Println(childReadyPrefix + ln.Addr().String())
	if err := api.New(pool, logger(), opts).Serve(ctx, ln, nil); err != nil {
		fmt.Fprintln(os.Stderr, "child api:", err)
		os.Exit(2)
	}
}

// child is an API server in another process.
type child struct {
	baseURL string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has exited
	err     error         // how it exited, once exited is closed
}

// startChildAPI starts an API server process on the package's database. It has no
// Temporal client: the workflows of its admissions are started by this process's worker,
// from the outbox.
func startChildAPI(t *testing.T, faultExitAfterAdmit bool) *child {
	t.Helper()
	env := []string{childAPIEnv + "=" + testenv.DBURL(t)}
	if faultExitAfterAdmit {
		env = append(env, childFaultEnv+"=1")
	}
	c, first := startChild(t, env)
	addr, ok := strings.CutPrefix(first, childReadyPrefix)
	require.True(t, ok, first)
	c.baseURL = "http://" + addr
	return c
}

// startChild re-executes the test binary with env added, waits for its first line of
// output (it says it is ready) and stops it when the test ends.
func startChild(t *testing.T, env []string) (*child, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), childKEKEnv+"="+testKEK()), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	c := &child{cmd: cmd, exited: make(chan struct{})}
	lines := bufio.NewScanner(out)
	require.True(t, lines.Scan(), "child process printed nothing")
	first := lines.Text()
	go func() {
		for lines.Scan() {
		}
		c.err = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	return c, first
}

// clientsAt returns clients of another server.
func (s *stack) clientsAt(baseURL, secret string) clients {
	other := *s
	other.baseURL = baseURL
	return other.clientsFor(secret)
}

// runChildWorker is a worker in its own process, for tests that kill one.
func runChildWorker() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	pool, err := db.Open(ctx, os.Getenv(childWorkerEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child worker:", err)
		os.Exit(2)
	}
	c, err := client.Dial(client.Options{HostPort: os.Getenv("GOVERNOR_TEST_TEMPORAL_ADDRESS"), Namespace: testenv.TemporalNamespace(), Logger: nopLogger{}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child worker:", err)
		os.Exit(2)
	}
	fmt.Println(childReadyPrefix + "worker")
	if err := workers.Run(ctx, workers.Deps{Client: c, Pool: pool, Log: logger(), TaskQueue: os.Getenv(childQueueEnv), Namespace: testenv.TemporalNamespace(),
		Alerts: testDeliverOptions(), SignalKeys: signalKeys}); err != nil {
		fmt.Fprintln(os.Stderr, "child worker:", err)
		os.Exit(2)
	}
}

// startChildWorker starts a worker process on a database and task queue.
func startChildWorker(t *testing.T, dbURL, taskQueue string) *child {
	t.Helper()
	c, _ := startChild(t, []string{childWorkerEnv + "=" + dbURL, childQueueEnv + "=" + taskQueue,
		"GOVERNOR_TEST_TEMPORAL_ADDRESS=" + testenv.TemporalAddress(t)})
	return c
}
