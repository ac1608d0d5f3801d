package devstack

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

// temporalCLI finds the temporal CLI the way EnsureTemporal does (building the pinned one
// with scripts/tools.sh on first use). A machine that cannot obtain it fails the test.
func temporalCLI(t *testing.T) string {
	t.Helper()
	ctx := testContext(t, 30*time.Minute)
	cli, err := findTemporalCLI(ctx, "", testLogf(t))
	if err != nil {
		t.Fatalf("the temporal CLI is required: %v", err)
	}
	return cli
}

func dialTemporal(t *testing.T, ctx context.Context, addr, namespace string) {
	t.Helper()
	c, err := client.DialContext(ctx, client.Options{HostPort: addr, Namespace: namespace, Logger: quietLogger})
	if err != nil {
		t.Fatalf("client.Dial(%s): %v", addr, err)
	}
	defer c.Close()
	if _, err := c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		t.Fatalf("CheckHealth(%s): %v", addr, err)
	}
	if _, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace}); err != nil {
		t.Fatalf("DescribeNamespace(%s): %v", namespace, err)
	}
}

func TestEnsureTemporalInMemoryHeadless(t *testing.T) {
	cli := temporalCLI(t)
	ctx := testContext(t, 3*time.Minute)

	start := time.Now()
	tm, err := EnsureTemporal(ctx, TemporalOptions{CLIPath: cli, Logf: testLogf(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dev server ready in %s on %s", time.Since(start).Round(time.Millisecond), tm.Address)
	t.Cleanup(func() { _ = tm.Stop(context.Background()) })
	if !tm.Started || tm.UIAddress != "" || !strings.HasPrefix(tm.Address, "127.0.0.1:") {
		t.Errorf("EnsureTemporal = %+v; want started, headless, on 127.0.0.1", tm)
	}
	dialTemporal(t, ctx, tm.Address, "default")

	// TEMPORAL_ADDRESS mode: only checked, never owned.
	other, err := EnsureTemporal(ctx, TemporalOptions{Address: tm.Address})
	if err != nil {
		t.Fatal(err)
	}
	if other.Started || other.Address != tm.Address {
		t.Errorf("EnsureTemporal(Address) = %+v; want the address, not started", other)
	}
	if err := other.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	dialTemporal(t, ctx, tm.Address, "default")

	port := portOf(t, tm.Address)
	pid := tm.proc.cmd.Process.Pid
	stopStart := time.Now()
	if err := tm.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("stopped in %s", time.Since(stopStart).Round(time.Millisecond))
	assertPortFree(t, port)
	if processAlive(pid) {
		t.Errorf("dev server process %d still alive after Stop", pid)
	}
	if ps := processesMentioning("--port " + strconv.Itoa(port)); len(ps) > 0 {
		t.Errorf("processes left after Stop:\n%s", strings.Join(ps, "\n"))
	}
	if err := tm.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}

	// A TEMPORAL_ADDRESS that does not answer is an error naming it.
	_, err = EnsureTemporal(ctx, TemporalOptions{Address: tm.Address})
	if err == nil || !strings.Contains(err.Error(), "TEMPORAL_ADDRESS") {
		t.Errorf("dead TEMPORAL_ADDRESS: err = %v, want an error naming TEMPORAL_ADDRESS", err)
	}
}

func TestEnsureTemporalUIFileNamespace(t *testing.T) {
	cli := temporalCLI(t)
	ctx := testContext(t, 3*time.Minute)
	dir := t.TempDir()
	o := TemporalOptions{
		CLIPath:   cli,
		DBFile:    filepath.Join(dir, "state", "temporal.db"),
		UI:        true,
		Namespace: "governor-test",
		LogFile:   filepath.Join(dir, "logs", "temporal.log"),
		Logf:      testLogf(t),
	}
	for round := 1; round <= 2; round++ { // the second round reopens the same database file
		tm, err := EnsureTemporal(ctx, o)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if !strings.HasPrefix(tm.UIAddress, "http://127.0.0.1:") {
			t.Errorf("UIAddress = %q", tm.UIAddress)
		}
		dialTemporal(t, ctx, tm.Address, "governor-test")
		resp, err := http.Get(tm.UIAddress)
		if err != nil {
			t.Errorf("Web UI: %v", err)
		} else {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("Web UI %s: HTTP %d", tm.UIAddress, resp.StatusCode)
			}
		}
		uiPort := portOf(t, strings.TrimPrefix(tm.UIAddress, "http://"))
		if err := tm.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		assertPortFree(t, portOf(t, tm.Address))
		assertPortFree(t, uiPort)
	}
	if _, err := os.Stat(o.DBFile); err != nil {
		t.Errorf("database file: %v", err)
	}
	if b, err := os.ReadFile(o.LogFile); err != nil || strings.Count(string(b), "governor devstack:") != 2 {
		t.Errorf("log file %s: %v; want two start headers, got:\n%s", o.LogFile, err, b)
	}
}

// TestTemporalDiesWithParent kills -9 a process that started a dev server and expects the
// server to go away too (Pdeathsig).
func TestTemporalDiesWithParent(t *testing.T) {
	if os.Getenv("DEVSTACK_HELPER") == "1" {
		helperStartTemporal()
		return
	}
	cli := temporalCLI(t)
	ctx := testContext(t, 3*time.Minute)
	cmd := osexec.CommandContext(ctx, os.Args[0], "-test.run=^TestTemporalDiesWithParent$", "-test.v")
	cmd.Env = append(os.Environ(), "DEVSTACK_HELPER=1", "DEVSTACK_HELPER_CLI="+cli)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid, port int
	s := bufio.NewScanner(out)
	for s.Scan() {
		if _, err := fmt.Sscanf(s.Text(), "HELPER-READY %d %d", &pid, &port); err == nil {
			break
		}
	}
	if pid == 0 {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("helper did not start a dev server")
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for processAlive(pid) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if processAlive(pid) {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		t.Fatalf("dev server %d outlived its parent by 30 s", pid)
	}
	if err := waitPortFree(ctx, port, 10*time.Second); err != nil {
		t.Error(err)
	}
}

func helperStartTemporal() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tm, err := EnsureTemporal(ctx, TemporalOptions{CLIPath: os.Getenv("DEVSTACK_HELPER_CLI")})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	// Let the CLI finish printing its start-up banner: a write to its output pipe after we
	// are gone would kill it with SIGPIPE and hide whether Pdeathsig works.
	time.Sleep(3 * time.Second)
	fmt.Printf("HELPER-READY %d %d\n", tm.proc.cmd.Process.Pid, tm.port)
	time.Sleep(time.Hour) // killed by the test
}
