package devstack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// useLocalServer makes sure something answers on localServerAddr for the reuse tests: the
// machine's server on 127.0.0.1:5432 when there is one, else a private cluster started for
// the test, which localServerAddr then points at.
func useLocalServer(t *testing.T, ctx context.Context) {
	t.Helper()
	if dialable(ctx, localServerAddr, 2*time.Second) == nil {
		return
	}
	t.Logf("nothing answers on %s; starting a private cluster to stand in for it", localServerAddr)
	p, err := ensurePrivateCluster(ctx, PostgresOptions{Database: "postgres", DataDir: filepath.Join(t.TempDir(), "pg"), Logf: testLogf(t)})
	if err != nil {
		t.Fatalf("no server on %s and starting a private cluster failed: %v", localServerAddr, err)
	}
	old := localServerAddr
	localServerAddr = hostPort(p.port)
	t.Cleanup(func() {
		localServerAddr = old
		if err := p.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
}

func queryString(t *testing.T, ctx context.Context, url, sql string) string {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatalf("%s on %s: %v", sql, url, err)
	}
	return s
}

func execSQL(t *testing.T, ctx context.Context, url string, sqls ...string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer conn.Close(ctx)
	for _, sql := range sqls {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s on %s: %v", sql, url, err)
		}
	}
}

func uniqueName(prefix string) string {
	return fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), time.Now().UnixNano())
}

func dropDatabase(t *testing.T, adminURL, db string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		execSQL(t, ctx, adminURL, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
	})
}

func TestEnsurePostgresReusesLocalServer(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	useLocalServer(t, ctx)
	db := uniqueName("devstack_reuse")
	dataDir := filepath.Join(t.TempDir(), "never-created")

	p, err := EnsurePostgres(ctx, PostgresOptions{Database: db, DataDir: dataDir, Logf: testLogf(t)})
	if err != nil {
		t.Fatal(err)
	}
	dropDatabase(t, p.AdminURL, db)
	if p.Started {
		t.Error("Started = true when reusing a running server")
	}
	if got, want := portOf(t, p.URL), portOf(t, localServerAddr); got != want {
		t.Errorf("URL %s: port %d, want the local server's %d", p.URL, got, want)
	}
	if !strings.Contains(p.URL, "sslmode=disable") {
		t.Errorf("URL %s lacks sslmode=disable", p.URL)
	}
	if got := queryString(t, ctx, p.URL, "SELECT current_database()"); got != db {
		t.Errorf("URL connects to database %q, want %q", got, db)
	}
	if got := queryString(t, ctx, p.AdminURL, "SELECT current_database()"); got != "postgres" {
		t.Errorf("AdminURL connects to database %q, want postgres", got)
	}
	if _, err := os.Stat(dataDir); err == nil {
		t.Errorf("reusing a server created the private data directory %s", dataDir)
	}

	// Again: the database exists now; nothing changes.
	p2, err := EnsurePostgres(ctx, PostgresOptions{Database: db, DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	if p2.URL != p.URL || p2.Started {
		t.Errorf("second EnsurePostgres = %+v, want the same URL %s, not started", p2, p.URL)
	}
	if err := p2.Stop(ctx); err != nil {
		t.Errorf("Stop on a reused server: %v", err)
	}
	if got := queryString(t, ctx, p.URL, "SELECT 'still up'"); got != "still up" {
		t.Error("server gone after Stop of a reused server")
	}
}

func TestEnsurePostgresURLCreatesDatabase(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	useLocalServer(t, ctx)
	base, err := EnsurePostgres(ctx, PostgresOptions{Database: "postgres"})
	if err != nil {
		t.Fatal(err)
	}
	db := uniqueName("devstack_url")
	url, err := withDatabase(base.AdminURL, db)
	if err != nil {
		t.Fatal(err)
	}
	dropDatabase(t, base.AdminURL, db)

	p, err := EnsurePostgres(ctx, PostgresOptions{URL: url, Database: "ignored", DataDir: t.TempDir(), Logf: testLogf(t)})
	if err != nil {
		t.Fatal(err)
	}
	if p.URL != url || p.Started {
		t.Errorf("EnsurePostgres(URL) = %+v; want URL %s unchanged and not started", p, url)
	}
	if got := queryString(t, ctx, p.URL, "SELECT current_database()"); got != db {
		t.Errorf("database %q, want %q (created)", got, db)
	}
	if got := queryString(t, ctx, p.AdminURL, "SELECT current_database()"); got != "postgres" {
		t.Errorf("AdminURL database %q, want postgres", got)
	}

	// An unreachable URL is an error naming it, not a fallback.
	dead, _ := freePort()
	_, err = EnsurePostgres(ctx, PostgresOptions{URL: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/x?sslmode=disable&connect_timeout=2", dead)})
	if err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Errorf("unreachable DATABASE_URL: err = %v, want an error naming DATABASE_URL", err)
	}
}

type postmasterInfo struct {
	pid      int
	children []int
}

func postmaster(t *testing.T, pgdata string) postmasterInfo {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pgdata, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	return postmasterInfo{pid: pid, children: childrenOf(pid)}
}

func assertStopped(t *testing.T, pm postmasterInfo, pgdata string, port int) {
	t.Helper()
	assertPortFree(t, port)
	for _, pid := range append([]int{pm.pid}, pm.children...) {
		if processAlive(pid) {
			t.Errorf("postgres process %d still alive after Stop", pid)
		}
	}
	if ps := processesMentioning(pgdata); len(ps) > 0 {
		t.Errorf("processes still mention %s after Stop:\n%s", pgdata, strings.Join(ps, "\n"))
	}
	if _, err := os.Stat(filepath.Join(pgdata, "postmaster.pid")); err == nil {
		t.Errorf("%s/postmaster.pid still exists after Stop", pgdata)
	}
}

func TestEnsurePostgresPrivateCluster(t *testing.T) {
	ctx := testContext(t, 5*time.Minute)
	// Nothing answers on the "local server" address, so EnsurePostgres must fall back to a
	// private cluster.
	closed, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	old := localServerAddr
	localServerAddr = hostPort(closed)
	t.Cleanup(func() { localServerAddr = old })

	dataDir := filepath.Join(t.TempDir(), "data", "postgres")
	pgdata := filepath.Join(dataDir, "pgdata")
	o := PostgresOptions{Database: "governor", DataDir: dataDir, Logf: testLogf(t)}
	start := time.Now()
	p, err := EnsurePostgres(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("private cluster created and started in %s: %s", time.Since(start).Round(time.Millisecond), p.URL)
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	if !p.Started {
		t.Fatal("Started = false for a cluster we created")
	}
	port := portOf(t, p.URL)
	if port == 5432 || port == closed {
		t.Errorf("private cluster on port %d", port)
	}
	if got := queryString(t, ctx, p.URL, "SELECT current_database()"); got != "governor" {
		t.Errorf("URL connects to %q, want governor", got)
	}
	if got := queryString(t, ctx, p.AdminURL, "SELECT current_database()"); got != "postgres" {
		t.Errorf("AdminURL connects to %q, want postgres", got)
	}
	if got := queryString(t, ctx, p.URL, "SHOW listen_addresses"); got != "127.0.0.1" {
		t.Errorf("listen_addresses = %q, want 127.0.0.1", got)
	}
	if got := queryString(t, ctx, p.URL, "SHOW unix_socket_directories"); got != filepath.Join(dataDir, "run") {
		t.Errorf("unix_socket_directories = %q, want %s", got, filepath.Join(dataDir, "run"))
	}
	execSQL(t, ctx, p.URL, "CREATE TABLE survives (x int)", "INSERT INTO survives VALUES (42)")

	pm := postmaster(t, pgdata)
	if os.Geteuid() == 0 {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pm.pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(status), "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" && f[1] == "0" {
				t.Errorf("postmaster %d runs as root", pm.pid)
			}
		}
	}

	// A second caller reuses the running cluster and does not own it.
	p2, err := EnsurePostgres(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if p2.Started || p2.URL != p.URL {
		t.Errorf("second EnsurePostgres = %+v, want URL %s, not started", p2, p.URL)
	}
	if err := p2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if dialable(ctx, hostPort(port), time.Second) != nil {
		t.Fatal("Stop of the reusing handle stopped the cluster")
	}

	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	assertStopped(t, pm, pgdata, port)

	// Restarting reuses the recorded port and keeps the data.
	p3, err := EnsurePostgres(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p3.Stop(context.Background()) })
	if !p3.Started {
		t.Error("Started = false after restarting a stopped cluster")
	}
	if got := portOf(t, p3.URL); got != port {
		t.Errorf("restarted on port %d, want the recorded %d", got, port)
	}
	if got := queryString(t, ctx, p3.URL, "SELECT x::text FROM survives"); got != "42" {
		t.Errorf("data lost across restart: got %q", got)
	}
	pm = postmaster(t, pgdata)
	if err := p3.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	assertStopped(t, pm, pgdata, port)
}
