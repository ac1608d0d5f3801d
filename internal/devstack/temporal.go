package devstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
)

// TemporalOptions says where the Temporal server comes from; see EnsureTemporal.
type TemporalOptions struct {
	Address   string // TEMPORAL_ADDRESS if set: use as is, only check it answers
	CLIPath   string // the temporal CLI; empty: `temporal` on PATH, else `<repo>/scripts/tools.sh path temporal`
	DBFile    string // --db-filename (history survives restarts); empty means in memory
	UI        bool   // serve the Web UI (on its own free port); false = --headless
	Namespace string // default "default"
	Logf      Logf
	LogFile   string // where the dev server's stdout/stderr go (e.g. <repo>/.data/temporal.log); empty = discard
	// Port and UIPort are preferred ports (e.g. Temporal's usual 7233 and 8233), used when
	// free; 0, or a taken port, means any free port.
	Port   int
	UIPort int
	// KeywordSearchAttributes are registered when the dev server starts, so workflows can
	// use them from the first moment (added later, they take a while to become usable).
	KeywordSearchAttributes []string
}

// Temporal is a usable server. Stop it when done (a no-op unless we started it).
type Temporal struct {
	Address   string // host:port of the frontend gRPC
	UIAddress string // http://127.0.0.1:port, or "" when headless or not ours
	Started   bool

	proc     *process
	port     int
	stopOnce sync.Once
	stopErr  error
}

const (
	temporalReadyTimeout = 60 * time.Second
	temporalStopGrace    = 10 * time.Second
	defaultNamespace     = "default"
)

// EnsureTemporal returns a Temporal frontend that answers and serves o.Namespace:
//
//   - o.Address if set: only checked (TCP connect, then the SDK client's health check);
//   - else `temporal server start-dev` on free loopback ports, in its own process group
//     (killed with us on Linux even if we are killed), waited for until it is healthy and
//     the namespace is usable.
func EnsureTemporal(ctx context.Context, o TemporalOptions) (*Temporal, error) {
	if o.Namespace == "" {
		o.Namespace = defaultNamespace
	}
	if o.Address != "" {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if _, _, err := net.SplitHostPort(o.Address); err == nil { // plain host:port (not a dns:/// target)
			if err := dialable(cctx, o.Address, 5*time.Second); err != nil {
				return nil, fmt.Errorf("temporal: nothing accepts connections at TEMPORAL_ADDRESS %s: %w", o.Address, err)
			}
		}
		if err := checkTemporal(cctx, o.Address, o.Namespace, false); err != nil {
			return nil, fmt.Errorf("temporal: TEMPORAL_ADDRESS %s accepts connections but does not answer as a Temporal frontend: %w", o.Address, err)
		}
		o.Logf.printf("temporal: using %s", o.Address)
		return &Temporal{Address: o.Address}, nil
	}
	cli, err := findTemporalCLI(ctx, o.CLIPath, o.Logf)
	if err != nil {
		return nil, fmt.Errorf("temporal: TEMPORAL_ADDRESS is not set and %w", err)
	}
	if o.DBFile != "" {
		if err := os.MkdirAll(filepath.Dir(o.DBFile), 0o755); err != nil {
			return nil, fmt.Errorf("temporal: %w", err)
		}
	}
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		t, err := startTemporal(ctx, cli, o)
		if err == nil {
			return t, nil
		}
		lastErr = err
		var pe *portTakenError
		if !errors.As(err, &pe) {
			break
		}
		o.Logf.printf("temporal: %v; retrying on other ports", err)
	}
	return nil, fmt.Errorf("temporal: %w", lastErr)
}

type portTakenError struct{ msg string }

func (e *portTakenError) Error() string { return e.msg }

// pickPort returns the preferred port if it is free, else any free port.
func pickPort(preferred int) (int, error) {
	if preferred > 0 && portFree(preferred) {
		return preferred, nil
	}
	return freePort()
}

func startTemporal(ctx context.Context, cli string, o TemporalOptions) (*Temporal, error) {
	port, err := pickPort(o.Port)
	if err != nil {
		return nil, err
	}
	args := []string{"server", "start-dev", "--ip", "127.0.0.1", "--port", strconv.Itoa(port), "--log-level", "warn"}
	uiAddr := ""
	if o.UI {
		uiPort, err := pickPort(o.UIPort)
		if err != nil {
			return nil, err
		}
		args = append(args, "--ui-port", strconv.Itoa(uiPort))
		uiAddr = "http://" + hostPort(uiPort)
	} else {
		args = append(args, "--headless")
	}
	if o.DBFile != "" {
		args = append(args, "--db-filename", o.DBFile)
	}
	for _, sa := range o.KeywordSearchAttributes {
		args = append(args, "--search-attribute", sa+"=Keyword")
	}
	if o.Namespace != defaultNamespace { // "default" is always created; naming it twice fails
		args = append(args, "--namespace", o.Namespace)
	}

	cmd := exec.Command(cli, args...) // not tied to ctx: ctx bounds the start only
	cmd.SysProcAttr = sysProcAttr()
	cmd.Stdin = nil
	tail := newTailBuffer(32 << 10)
	var out io.Writer = tail
	var logFile *os.File
	if o.LogFile != "" {
		if err := os.MkdirAll(filepath.Dir(o.LogFile), 0o755); err != nil {
			return nil, err
		}
		if logFile, err = os.OpenFile(o.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
			return nil, err
		}
		fmt.Fprintf(logFile, "\n=== %s governor devstack: %s %s\n", time.Now().Format(time.RFC3339), cli, strings.Join(args, " "))
		out = io.MultiWriter(logFile, tail)
	}
	cmd.Stdout, cmd.Stderr = out, out
	where := "its output"
	if o.LogFile != "" {
		where = o.LogFile
	}

	o.Logf.printf("temporal: starting the dev server on 127.0.0.1:%d (%s)", port, describeMode(o))
	p, err := startProcess(cmd)
	if err != nil {
		if logFile != nil {
			logFile.Close()
		}
		return nil, fmt.Errorf("starting %s: %w", cli, err)
	}
	p.logFile = logFile
	t := &Temporal{Address: hostPort(port), UIAddress: uiAddr, Started: true, proc: p, port: port}

	if err := t.waitReady(ctx, o.Namespace, uiAddr); err != nil {
		_ = p.stop(temporalStopGrace)
		logTail := tail.Lines(30)
		if p.exited() && strings.Contains(logTail, "can't set") && strings.Contains(logTail, "port") {
			return nil, &portTakenError{msg: fmt.Sprintf("dev server could not bind its ports:\n%s", indent(logTail))}
		}
		return nil, fmt.Errorf("dev server (%s %s) did not become ready: %w\nlast lines of %s:\n%s",
			cli, strings.Join(args, " "), err, where, indent(logTail))
	}
	if uiAddr != "" {
		o.Logf.printf("temporal: dev server ready on %s, Web UI %s", t.Address, uiAddr)
	} else {
		o.Logf.printf("temporal: dev server ready on %s", t.Address)
	}
	return t, nil
}

func describeMode(o TemporalOptions) string {
	var parts []string
	if o.DBFile != "" {
		parts = append(parts, "history in "+o.DBFile)
	} else {
		parts = append(parts, "in memory")
	}
	if !o.UI {
		parts = append(parts, "headless")
	}
	parts = append(parts, "namespace "+o.Namespace)
	return strings.Join(parts, ", ")
}

// waitReady waits until the frontend passes the SDK health check and the namespace can be
// described (and the UI accepts connections when served), or the process exits.
func (t *Temporal) waitReady(ctx context.Context, namespace, uiAddr string) error {
	ctx, cancel := context.WithTimeout(ctx, temporalReadyTimeout)
	defer cancel()
	var last error
	for {
		if t.proc.exited() {
			return fmt.Errorf("it exited (%v)", t.proc.waitErr)
		}
		if dialable(ctx, t.Address, time.Second) == nil {
			actx, acancel := context.WithTimeout(ctx, 5*time.Second)
			last = checkTemporal(actx, t.Address, namespace, true)
			acancel()
			if last == nil && uiAddr != "" {
				last = dialable(ctx, strings.TrimPrefix(uiAddr, "http://"), time.Second)
			}
			if last == nil {
				return nil
			}
		} else {
			last = fmt.Errorf("port %d not accepting connections yet", t.port)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s (last check: %v): %w", temporalReadyTimeout, last, ctx.Err())
		case <-t.proc.done:
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// quietLogger drops the SDK client's logs (retries while the server starts are expected).
var quietLogger = tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))

// checkTemporal dials addr with the SDK client and runs its health check; with
// describeNamespace it also checks the namespace is registered.
func checkTemporal(ctx context.Context, addr, namespace string, describeNamespace bool) error {
	c, err := client.DialContext(ctx, client.Options{HostPort: addr, Namespace: namespace, Logger: quietLogger})
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	if _, err := c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	if describeNamespace {
		if _, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace}); err != nil {
			return fmt.Errorf("describe namespace %q: %w", namespace, err)
		}
	}
	return nil
}

// Stop stops the dev server if EnsureTemporal started it: SIGTERM to its process group, up
// to 10 s of grace, then SIGKILL; it returns once the process has exited and its gRPC port
// is free. It runs to completion even when ctx is already cancelled. No-op otherwise.
func (t *Temporal) Stop(ctx context.Context) error {
	if t == nil || !t.Started || t.proc == nil {
		return nil
	}
	t.stopOnce.Do(func() {
		if err := t.proc.stop(temporalStopGrace); err != nil {
			t.stopErr = fmt.Errorf("temporal: stopping the dev server: %w", err)
			return
		}
		t.stopErr = waitPortFree(context.WithoutCancel(ctx), t.port, 10*time.Second)
	})
	return t.stopErr
}

// process is a child started in its own process group.
type process struct {
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	logFile *os.File
}

// startProcess starts cmd from a goroutine locked to its OS thread for the child's whole
// life: Linux's Pdeathsig fires when the *thread* that forked the child exits, and the Go
// runtime may retire idle threads otherwise.
func startProcess(cmd *exec.Cmd) (*process, error) {
	p := &process{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop signals the process group with SIGTERM, waits up to grace, then SIGKILLs it, and
// waits for the process to be reaped.
func (p *process) stop(grace time.Duration) error {
	defer func() {
		if p.logFile != nil {
			p.logFile.Close()
		}
	}()
	pgid := p.cmd.Process.Pid
	if !p.exited() {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				return fmt.Errorf("process %d did not exit after SIGKILL", pgid)
			}
		}
	}
	// Anything else left in the group (the dev server forks nothing, but be sure).
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	return nil
}

// findTemporalCLI returns the temporal CLI to run: explicit path, PATH, or the pinned build
// from scripts/tools.sh (built on first use).
func findTemporalCLI(ctx context.Context, explicit string, logf Logf) (string, error) {
	if explicit != "" {
		if !isExecutable(explicit) {
			return "", fmt.Errorf("the temporal CLI %s is not an executable file", explicit)
		}
		return explicit, nil
	}
	if p, err := exec.LookPath("temporal"); err == nil {
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", fmt.Errorf("no temporal CLI on PATH, and scripts/tools.sh cannot build one: %w", err)
	}
	script := filepath.Join(root, "scripts", "tools.sh")
	if _, err := os.Stat(script); err != nil {
		return "", fmt.Errorf("no temporal CLI on PATH, and %s is missing", script)
	}
	logf.printf("temporal: no temporal CLI on PATH; using the pinned one from scripts/tools.sh (built on first use, which takes minutes)")
	cmd := exec.CommandContext(ctx, "bash", script, "path", "temporal")
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = io.MultiWriter(&stderr, &lineLogger{logf: logf})
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("no temporal CLI on PATH, and `%s path temporal` failed: %v\n%s", script, err, indent(lastLines(stderr.Bytes(), 20)))
	}
	path := strings.TrimSpace(lastLines(stdout.Bytes(), 1))
	if !isExecutable(path) {
		return "", fmt.Errorf("`%s path temporal` printed %q, which is not an executable file", script, path)
	}
	return path, nil
}

// lineLogger forwards complete lines to logf.
type lineLogger struct {
	logf Logf
	buf  []byte
}

func (l *lineLogger) Write(b []byte) (int, error) {
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		l.logf.printf("%s", l.buf[:i])
		l.buf = l.buf[i+1:]
	}
}
