package devstack

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func testLogf(t *testing.T) Logf {
	return func(format string, args ...any) {
		t.Helper()
		t.Logf(format, args...)
	}
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// portOf returns the port of a host:port or postgres:// URL.
func portOf(t *testing.T, s string) int {
	t.Helper()
	if i := strings.Index(s, "@"); i >= 0 { // URL
		s = s[i+1:]
		s = s[:strings.IndexAny(s, "/?")]
	}
	_, p, err := net.SplitHostPort(s)
	if err != nil {
		t.Fatalf("no port in %q: %v", s, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func assertPortFree(t *testing.T, port int) {
	t.Helper()
	if !portFree(port) {
		t.Errorf("port 127.0.0.1:%d is still bound after Stop", port)
	}
	if err := dialable(context.Background(), hostPort(port), time.Second); err == nil {
		t.Errorf("something still accepts connections on 127.0.0.1:%d after Stop", port)
	}
}

// processesMentioning lists PIDs whose command line contains s.
func processesMentioning(s string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), s) {
			out = append(out, fmt.Sprintf("%s: %s", e.Name(), strings.ReplaceAll(string(b), "\x00", " ")))
		}
	}
	return out
}

// childrenOf lists PIDs whose parent is pid.
func childrenOf(pid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		fields := strings.Fields(s[strings.LastIndex(s, ")")+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	return out
}

func TestFreePort(t *testing.T) {
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	if p <= 0 || !portFree(p) {
		t.Fatalf("freePort returned %d, which is not bindable", p)
	}
}

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "scripts", "tools.sh")); err != nil {
		t.Errorf("RepoRoot() = %s, which has no scripts/tools.sh: %v", root, err)
	}
}

func TestWithDatabase(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://u:p@h:5/app?sslmode=disable", "postgres://u:p@h:5/postgres?sslmode=disable"},
		{"postgresql://h/app", "postgresql://h/postgres"},
		{"host=h dbname=app", "host=h dbname=app dbname='postgres'"},
	} {
		got, err := withDatabase(tc.in, "postgres")
		if err != nil || got != tc.want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:secret@h/db":         "postgres://u:xxxxx@h/db",
		"postgres://u@h/db":                "postgres://u@h/db",
		"host=h password=secret dbname=x":  "host=h password=xxxxx dbname=x",
		"host=h password='se cret' user=u": "host=h password=xxxxx user=u",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestVersionLess(t *testing.T) {
	if !versionLess("9.6", "15") || !versionLess("15", "16") || versionLess("16", "16") || !versionLess("10", "15") {
		t.Error("versionLess orders PostgreSQL majors wrongly")
	}
}
