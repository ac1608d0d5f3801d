package devstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A private PostgreSQL cluster under a data directory:
//
//	<DataDir>/pgdata         the cluster (initdb -D)
//	<DataDir>/pgdata/governor.conf  listen address, port and socket dir, rewritten on each start
//	<DataDir>/postgres.log   server log (pg_ctl -l)
//	<DataDir>/port           the port last used, reused on the next start when free
//	<DataDir>/run            unix socket directory
//	<DataDir>/lock           flock held while ensuring, so concurrent callers do not race
type cluster struct {
	dir      string
	pgdata   string
	logFile  string
	portFile string
	sockDir  string
	bin      string     // directory holding initdb and pg_ctl
	runAs    *user.User // nil: run the tools as ourselves (not root)
	logf     Logf
}

const (
	clusterRole      = "postgres" // superuser created by initdb -U
	clusterSystemUsr = "governor" // system user created when running as root without a postgres user
	maxSocketPath    = 107        // sun_path is 108 bytes including the NUL
)

func newCluster(dataDir string, logf Logf) (*cluster, error) {
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	return &cluster{
		dir:      dir,
		pgdata:   filepath.Join(dir, "pgdata"),
		logFile:  filepath.Join(dir, "postgres.log"),
		portFile: filepath.Join(dir, "port"),
		sockDir:  filepath.Join(dir, "run"),
		logf:     logf,
	}, nil
}

// ensurePrivateCluster reuses the cluster running in o.DataDir, or starts it (creating it
// first if needed), then creates o.Database.
func ensurePrivateCluster(ctx context.Context, o PostgresOptions) (*Postgres, error) {
	c, err := newCluster(o.DataDir, o.Logf)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the data directory: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(c.dir, "lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()

	if port, ok := c.runningPort(ctx); ok {
		admin := pgURL(clusterRole, hostPort(port), adminDatabase)
		if err := ensureDatabase(ctx, admin, o.Database); err != nil {
			return nil, fmt.Errorf("a cluster is already running there on port %d but is not usable: %w", port, err)
		}
		c.logf.printf("postgres: reusing the private cluster already running in %s on port %d", c.dir, port)
		return &Postgres{URL: pgURL(clusterRole, hostPort(port), o.Database), AdminURL: admin, port: port}, nil
	}

	if err := c.findBinaries(ctx); err != nil {
		return nil, err
	}
	if err := c.prepareUser(ctx); err != nil {
		return nil, err
	}
	if err := c.initIfNeeded(ctx); err != nil {
		return nil, err
	}
	port, err := c.start(ctx)
	if err != nil {
		return nil, err
	}
	p := &Postgres{
		URL:      pgURL(clusterRole, hostPort(port), o.Database),
		AdminURL: pgURL(clusterRole, hostPort(port), adminDatabase),
		Started:  true,
		cluster:  c,
		port:     port,
	}
	if err := ensureDatabase(ctx, p.AdminURL, o.Database); err != nil {
		_ = p.Stop(ctx)
		return nil, fmt.Errorf("started the cluster on port %d but could not create database %q: %w", port, o.Database, err)
	}
	return p, nil
}

// runningPort reports the port of a postmaster already running on c.pgdata. A stale
// postmaster.pid whose PID now belongs to another program is removed.
func (c *cluster) runningPort(ctx context.Context) (int, bool) {
	pidFile := filepath.Join(c.pgdata, "postmaster.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, false
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 4 {
		return 0, false
	}
	pid, err1 := strconv.Atoi(strings.TrimSpace(lines[0]))
	port, err2 := strconv.Atoi(strings.TrimSpace(lines[3]))
	if err1 != nil || err2 != nil || pid <= 0 {
		return 0, false
	}
	if !processAlive(pid) {
		return 0, false // stale; postgres overwrites it on start
	}
	if !isPostgresProcess(pid) {
		c.logf.printf("postgres: removing stale %s (PID %d is not a postgres process)", pidFile, pid)
		_ = os.Remove(pidFile)
		return 0, false
	}
	// Running (perhaps still starting up): wait for it to accept connections.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if dialable(ctx, hostPort(port), time.Second) == nil {
			return port, true
		}
		if time.Now().After(deadline) || ctx.Err() != nil || !processAlive(pid) {
			return 0, false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, fs.ErrNotExist)
	}
	// pid (comm) state ...
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

// postmasterPID reads the PID from pgdata/postmaster.pid (0 if none).
func postmasterPID(pgdata string) int {
	b, err := os.ReadFile(filepath.Join(pgdata, "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	return pid
}

func isPostgresProcess(pid int) bool {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return true // no /proc: trust kill(pid, 0)
	}
	name := strings.TrimSpace(string(comm))
	return strings.HasPrefix(name, "postgres") || strings.HasPrefix(name, "postmaster")
}

// findBinaries sets c.bin: the newest PostgreSQL's bin directory (or the one matching an
// existing cluster's version), installing PostgreSQL with apt-get when there is none.
func (c *cluster) findBinaries(ctx context.Context) error {
	want := ""
	if b, err := os.ReadFile(filepath.Join(c.pgdata, "PG_VERSION")); err == nil {
		want = strings.TrimSpace(string(b))
	}
	bins := findPostgresBins(ctx)
	if len(bins) == 0 {
		if err := c.installPostgres(ctx); err != nil {
			return err
		}
		if bins = findPostgresBins(ctx); len(bins) == 0 {
			return errors.New("installed PostgreSQL with apt-get but still found no initdb/pg_ctl in /usr/lib/postgresql/*/bin or PATH")
		}
	}
	if want == "" {
		c.bin = bins[0].dir
		return nil
	}
	var seen []string
	for _, b := range bins {
		if b.major == want {
			c.bin = b.dir
			return nil
		}
		seen = append(seen, b.major+" ("+b.dir+")")
	}
	return fmt.Errorf("the cluster in %s was created by PostgreSQL %s, but only PostgreSQL %s is installed; install postgresql-%s or remove %s",
		c.pgdata, want, strings.Join(seen, ", "), want, c.dir)
}

type pgBin struct {
	dir   string
	major string // "15", or "9.6" for old versions
}

var pgVersionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(?:\.(\d+))?`)

// findPostgresBins lists directories holding executable initdb and pg_ctl, newest first.
func findPostgresBins(ctx context.Context) []pgBin {
	var dirs []string
	for _, pattern := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin"} {
		m, _ := filepath.Glob(pattern)
		dirs = append(dirs, m...)
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	var out []pgBin
	seen := map[string]bool{}
	for _, d := range dirs {
		if seen[d] || !isExecutable(filepath.Join(d, "initdb")) || !isExecutable(filepath.Join(d, "pg_ctl")) {
			continue
		}
		seen[d] = true
		v, err := exec.CommandContext(ctx, filepath.Join(d, "pg_ctl"), "--version").Output()
		if err != nil {
			continue
		}
		m := pgVersionRE.FindStringSubmatch(string(v))
		if m == nil {
			continue
		}
		major := m[1]
		if n, _ := strconv.Atoi(m[1]); n < 10 && m[2] != "" {
			major += "." + m[2]
		}
		out = append(out, pgBin{dir: d, major: major})
	}
	sort.SliceStable(out, func(i, j int) bool { return versionLess(out[j].major, out[i].major) })
	return out
}

func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode().Perm()&0o111 != 0
}

func (c *cluster) installPostgres(ctx context.Context) error {
	const missing = "no initdb/pg_ctl found in /usr/lib/postgresql/*/bin, /usr/pgsql-*/bin or PATH"
	aptGet, err := exec.LookPath("apt-get")
	if err != nil {
		return fmt.Errorf("%s, and apt-get is not available: install the PostgreSQL server or set DATABASE_URL", missing)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s: install it (sudo apt-get install -y postgresql) or set DATABASE_URL", missing)
	}
	c.logf.printf("postgres: %s; installing PostgreSQL with apt-get (once per machine)", missing)
	apt := func(args ...string) error {
		cmd := exec.CommandContext(ctx, aptGet, args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get %s: %v\n%s", strings.Join(args, " "), err, indent(lastLines(out, 20)))
		}
		return nil
	}
	if err := apt("install", "-y", "postgresql"); err != nil {
		c.logf.printf("postgres: %v; running apt-get update and retrying", err)
		if err := apt("update"); err != nil {
			return fmt.Errorf("%s; installing it failed: %w", missing, err)
		}
		if err := apt("install", "-y", "postgresql"); err != nil {
			return fmt.Errorf("%s; installing it failed: %w", missing, err)
		}
	}
	return nil
}

// prepareUser picks the OS user the cluster runs as when we are root (PostgreSQL refuses to
// run as root): "postgres" if it exists, else a system user "governor", created if needed.
// It hands the data directory to that user and makes sure the user can reach it.
func (c *cluster) prepareUser(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		if u, err = user.Lookup(clusterSystemUsr); err != nil {
			c.logf.printf("postgres: creating system user %q to run the cluster (PostgreSQL refuses to run as root)", clusterSystemUsr)
			out, err := exec.CommandContext(ctx, "useradd", "--system", "--user-group", "--no-create-home",
				"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", clusterSystemUsr).CombinedOutput()
			if err != nil {
				return fmt.Errorf("running as root, there is no postgres user and creating system user %q failed: %v\n%s",
					clusterSystemUsr, err, indent(string(out)))
			}
			if u, err = user.Lookup(clusterSystemUsr); err != nil {
				return err
			}
		}
	}
	c.runAs = u
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	err = filepath.WalkDir(c.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
	if err != nil {
		return fmt.Errorf("handing %s to user %s: %w", c.dir, u.Username, err)
	}
	return ensureSearchable(c.dir, u, c.logf)
}

// ensureSearchable grants u search permission on every ancestor of dir that denies it (for
// example a 0700 /root or t.TempDir()'s parent), adding only the execute bit.
func ensureSearchable(dir string, u *user.User, logf Logf) error {
	uid, _ := strconv.Atoi(u.Uid)
	groups := map[uint32]bool{}
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.Atoi(g); err == nil {
				groups[uint32(n)] = true
			}
		}
	}
	if n, err := strconv.Atoi(u.Gid); err == nil {
		groups[uint32(n)] = true
	}
	var ancestors []string
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		ancestors = append([]string{p}, ancestors...)
		if p == filepath.Dir(p) {
			break
		}
	}
	for _, p := range ancestors {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		var bit fs.FileMode
		switch {
		case int(sys.Uid) == uid:
			bit = 0o100
		case groups[sys.Gid]:
			bit = 0o010
		default:
			bit = 0o001
		}
		if st.Mode().Perm()&bit != 0 {
			continue
		}
		logf.printf("postgres: granting search permission on %s so user %s can reach the data directory", p, u.Username)
		if err := os.Chmod(p, st.Mode()|bit); err != nil {
			return fmt.Errorf("user %s cannot reach %s and granting it search permission on %s failed: %w", u.Username, dir, p, err)
		}
	}
	return nil
}

// command runs a PostgreSQL tool, as c.runAs when set.
func (c *cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	switch {
	case c.runAs == nil:
		cmd = exec.CommandContext(ctx, name, args...)
	case lookPath("runuser") != "":
		cmd = exec.CommandContext(ctx, lookPath("runuser"), append([]string{"-u", c.runAs.Username, "--", name}, args...)...)
	case lookPath("setpriv") != "":
		cmd = exec.CommandContext(ctx, lookPath("setpriv"), append([]string{
			"--reuid=" + c.runAs.Uid, "--regid=" + c.runAs.Gid, "--init-groups", "--", name}, args...)...)
	default:
		quoted := make([]string, 0, len(args)+1)
		for _, a := range append([]string{name}, args...) {
			quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
		}
		cmd = exec.CommandContext(ctx, "su", "-s", "/bin/sh", c.runAs.Username, "-c", strings.Join(quoted, " "))
	}
	cmd.Dir = c.dir // the user may not be able to enter our working directory
	cmd.Env = toolEnv()
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func (c *cluster) run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := c.command(ctx, name, args...).CombinedOutput()
	return string(out), err
}

func lookPath(name string) string {
	p, err := exec.LookPath(name)
	if err != nil {
		return ""
	}
	return p
}

// toolEnv is our environment without PG* variables (PGDATA, PGPORT, ... would redirect the
// tools) and with a C locale for their messages.
func toolEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

func (c *cluster) initIfNeeded(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(c.pgdata, "PG_VERSION")); err == nil {
		return nil
	}
	if entries, err := os.ReadDir(c.pgdata); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s exists and is not empty but holds no PostgreSQL cluster (no PG_VERSION); remove it", c.pgdata)
	}
	c.logf.printf("postgres: creating a cluster in %s (initdb)", c.pgdata)
	out, err := c.run(ctx, filepath.Join(c.bin, "initdb"),
		"-D", c.pgdata, "-U", clusterRole, "--auth=trust", "--encoding=UTF8", "--locale="+initdbLocale(ctx))
	if err != nil {
		return fmt.Errorf("initdb failed: %v\n%s", err, indent(lastLines([]byte(out), 20)))
	}
	conf := filepath.Join(c.pgdata, "postgresql.conf")
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString("\n# Added by governor (internal/devstack): address, port and socket directory, rewritten on each start.\ninclude_if_exists = 'governor.conf'\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// initdbLocale prefers C.UTF-8 (byte-order collation, Unicode character classes) when the
// system has it, else C.
func initdbLocale(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "locale", "-a").Output()
	if err == nil {
		for _, l := range strings.Fields(string(out)) {
			if strings.EqualFold(l, "C.utf8") || strings.EqualFold(l, "C.UTF-8") {
				return "C.UTF-8"
			}
		}
	}
	return "C"
}

// start starts the cluster on the port recorded in c.portFile when it is free, else on a
// new free port, retrying with another port if the bind is lost to a race.
func (c *cluster) start(ctx context.Context) (int, error) {
	for attempt := 1; ; attempt++ {
		port, err := c.choosePort(attempt == 1)
		if err != nil {
			return 0, err
		}
		if err := c.writeRuntimeConfig(port); err != nil {
			return 0, err
		}
		c.logf.printf("postgres: starting the private cluster in %s on 127.0.0.1:%d (log: %s)", c.dir, port, c.logFile)
		out, err := c.run(ctx, filepath.Join(c.bin, "pg_ctl"), "start", "-w", "-t", "60", "-D", c.pgdata, "-l", c.logFile)
		if err == nil {
			return port, nil
		}
		tail := fileTail(c.logFile, 20)
		if attempt < 3 && (strings.Contains(tail, "could not bind") || strings.Contains(tail, "Address already in use")) {
			c.logf.printf("postgres: port %d was taken meanwhile; retrying on another", port)
			continue
		}
		return 0, fmt.Errorf("pg_ctl start failed: %v\n%s\nlast lines of %s:\n%s", err, indent(strings.TrimSpace(out)), c.logFile, indent(tail))
	}
}

func (c *cluster) choosePort(reuse bool) (int, error) {
	if reuse {
		if b, err := os.ReadFile(c.portFile); err == nil {
			if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && p > 0 && p < 65536 && portFree(p) {
				return p, nil
			}
		}
	}
	p, err := freePort()
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(c.portFile, []byte(strconv.Itoa(p)+"\n"), 0o644); err != nil {
		return 0, err
	}
	return p, c.chown(c.portFile)
}

func (c *cluster) writeRuntimeConfig(port int) error {
	sock := c.sockDir
	if len(sock)+len("/.s.PGSQL.65535") > maxSocketPath {
		c.logf.printf("postgres: %s is too long for a unix socket; TCP only", sock)
		sock = ""
	} else {
		if err := os.MkdirAll(sock, 0o700); err != nil {
			return err
		}
		if err := c.chown(sock); err != nil {
			return err
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Written by governor (internal/devstack) on every start; do not edit.\n")
	fmt.Fprintf(&b, "listen_addresses = '127.0.0.1'\n")
	fmt.Fprintf(&b, "port = %d\n", port)
	fmt.Fprintf(&b, "unix_socket_directories = '%s'\n", strings.ReplaceAll(sock, "'", "''"))
	fmt.Fprintf(&b, "max_connections = 200\n")
	path := filepath.Join(c.pgdata, "governor.conf")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return err
	}
	return c.chown(path)
}

func (c *cluster) chown(path string) error {
	if c.runAs == nil {
		return nil
	}
	uid, _ := strconv.Atoi(c.runAs.Uid)
	gid, _ := strconv.Atoi(c.runAs.Gid)
	return os.Lchown(path, uid, gid)
}

// stop stops the cluster (fast shutdown) and waits for it to exit. It runs to completion
// even when ctx is already cancelled (shutdown paths), bounded by its own timeout.
func (c *cluster) stop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 90*time.Second)
	defer cancel()
	pid := postmasterPID(c.pgdata)
	out, err := c.run(ctx, filepath.Join(c.bin, "pg_ctl"), "stop", "-D", c.pgdata, "-m", "fast", "-w", "-t", "60")
	if err != nil {
		if _, statErr := os.Stat(filepath.Join(c.pgdata, "postmaster.pid")); errors.Is(statErr, fs.ErrNotExist) {
			return nil // not running any more
		}
		return fmt.Errorf("postgres: pg_ctl stop -D %s failed: %v\n%s", c.pgdata, err, indent(strings.TrimSpace(out)))
	}
	// pg_ctl returns once postmaster.pid is gone, a moment before the postmaster exits.
	for deadline := time.Now().Add(10 * time.Second); pid > 0 && processAlive(pid); {
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres: postmaster %d still running 10 s after pg_ctl stop", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.logf.printf("postgres: stopped the private cluster in %s", c.dir)
	return nil
}

// lockFile takes an exclusive flock on path, waiting for ctx.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another process to release %s: %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
