package deploy

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

const repoRoot = "../.."

var governorServices = []string{"governor-migrate", "governor-api", "governor-worker"}

func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root),
		// Only the file counts: no .env, no variables from the machine running the test.
		cli.WithEnv(nil),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(ctx)
	if err != nil {
		t.Fatalf("loading docker-compose.yml: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("docker-compose.yml has no service %q (has %v)", name, p.ServiceNames())
	}
	return s
}

func TestComposeServices(t *testing.T) {
	p := loadCompose(t)
	want := append([]string{"postgres", "temporal", "temporal-ui"}, governorServices...)
	got := p.ServiceNames()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("services = %v, want %v", got, want)
	}
}

func TestComposeImages(t *testing.T) {
	p := loadCompose(t)
	for name, image := range map[string]string{
		"postgres":    "postgres:15",
		"temporal":    "temporalio/auto-setup:1.29.1",
		"temporal-ui": "temporalio/ui:2.42.1",
	} {
		if s := service(t, p, name); s.Image != image || s.Build != nil {
			t.Errorf("%s: image %q (build %v), want image %q and no build", name, s.Image, s.Build, image)
		}
	}
	root, _ := filepath.Abs(repoRoot)
	for _, name := range governorServices {
		s := service(t, p, name)
		if s.Build == nil {
			t.Errorf("%s: no build section; it must build the repository's Dockerfile", name)
			continue
		}
		if s.Build.Context != root {
			t.Errorf("%s: build context %q, want the repository root %q", name, s.Build.Context, root)
		}
		if df := s.Build.Dockerfile; df != "Dockerfile" && df != filepath.Join(root, "Dockerfile") {
			t.Errorf("%s: dockerfile %q, want Dockerfile", name, df)
		}
	}
}

func TestComposeCommands(t *testing.T) {
	p := loadCompose(t)
	for name, cmd := range map[string][]string{
		"governor-migrate": {"migrate", "up"},
		"governor-api":     {"api"},
		"governor-worker":  {"worker"},
	} {
		if got := service(t, p, name).Command; !slices.Equal(got, cmd) {
			t.Errorf("%s: command %q, want %q", name, got, cmd)
		}
	}
}

func TestComposePorts(t *testing.T) {
	p := loadCompose(t)
	for _, tc := range []struct {
		service   string
		published string
		target    uint32
	}{
		{"temporal", "7233", 7233},
		{"temporal-ui", "8233", 8080},
		{"governor-api", "8080", 8080},
	} {
		s := service(t, p, tc.service)
		found := false
		for _, port := range s.Ports {
			if port.Published == tc.published && port.Target == tc.target {
				found = true
				if port.HostIP != "" && port.HostIP != "127.0.0.1" && port.HostIP != "0.0.0.0" {
					t.Errorf("%s: port %s published on unexpected host IP %q", tc.service, tc.published, port.HostIP)
				}
			}
		}
		if !found {
			t.Errorf("%s: no published port %s -> %d (ports %+v)", tc.service, tc.published, tc.target, s.Ports)
		}
	}
}

func TestComposeDependencies(t *testing.T) {
	p := loadCompose(t)
	check := func(svc, dep, condition string) {
		t.Helper()
		d, ok := service(t, p, svc).DependsOn[dep]
		if !ok {
			t.Errorf("%s does not depend on %s", svc, dep)
			return
		}
		if d.Condition != condition {
			t.Errorf("%s depends on %s with condition %q, want %q", svc, dep, d.Condition, condition)
		}
	}
	check("governor-migrate", "postgres", types.ServiceConditionHealthy)
	check("temporal", "postgres", types.ServiceConditionHealthy)
	check("temporal-ui", "temporal", types.ServiceConditionStarted)
	for _, svc := range []string{"governor-api", "governor-worker"} {
		check(svc, "governor-migrate", types.ServiceConditionCompletedSuccessfully)
		check(svc, "temporal", types.ServiceConditionStarted)
	}
}

func env(t *testing.T, s types.ServiceConfig, key string) string {
	t.Helper()
	v, ok := s.Environment[key]
	if !ok || v == nil || *v == "" {
		t.Errorf("%s: environment variable %s is not set", s.Name, key)
		return ""
	}
	return *v
}

func TestComposeEnvironment(t *testing.T) {
	p := loadCompose(t)
	for _, name := range governorServices {
		s := service(t, p, name)
		if u := env(t, s, "DATABASE_URL"); u != "" && !strings.Contains(u, "@postgres:5432/") {
			t.Errorf("%s: DATABASE_URL %q does not point at the postgres service", name, u)
		}
		if name == "governor-migrate" {
			continue
		}
		if a := env(t, s, "TEMPORAL_ADDRESS"); a != "" && a != "temporal:7233" {
			t.Errorf("%s: TEMPORAL_ADDRESS %q, want temporal:7233", name, a)
		}
	}
	if a := env(t, service(t, p, "governor-api"), "GOVERNOR_HTTP_ADDR"); a != "0.0.0.0:8080" {
		t.Errorf("governor-api: GOVERNOR_HTTP_ADDR %q, want 0.0.0.0:8080 (the default 127.0.0.1 is unreachable from outside the container)", a)
	}

	tm := service(t, p, "temporal")
	for key, want := range map[string]string{"DB": "postgres12", "DB_PORT": "5432", "POSTGRES_SEEDS": "postgres"} {
		if got := env(t, tm, key); got != want {
			t.Errorf("temporal: %s=%q, want %q", key, got, want)
		}
	}
	pg := service(t, p, "postgres")
	if user, pwd := env(t, tm, "POSTGRES_USER"), env(t, tm, "POSTGRES_PWD"); user != env(t, pg, "POSTGRES_USER") || pwd != env(t, pg, "POSTGRES_PASSWORD") {
		t.Error("temporal's POSTGRES_USER/POSTGRES_PWD do not match the postgres service's credentials")
	}
	if a := env(t, service(t, p, "temporal-ui"), "TEMPORAL_ADDRESS"); a != "temporal:7233" {
		t.Errorf("temporal-ui: TEMPORAL_ADDRESS %q, want temporal:7233", a)
	}
}

func TestComposePostgres(t *testing.T) {
	p := loadCompose(t)
	pg := service(t, p, "postgres")
	if pg.HealthCheck == nil || pg.HealthCheck.Disable || len(pg.HealthCheck.Test) == 0 {
		t.Fatal("postgres has no healthcheck")
	}
	if test := strings.Join(pg.HealthCheck.Test, " "); !strings.Contains(test, "pg_isready") {
		t.Errorf("postgres healthcheck %q does not use pg_isready", test)
	}
	if !strings.Contains(strings.Join(pg.Command, " "), "max_connections=200") {
		t.Errorf("postgres command %q does not raise max_connections to 200 (Temporal opens about 55)", pg.Command)
	}
	hasData := false
	for _, v := range pg.Volumes {
		if v.Target == "/var/lib/postgresql/data" && v.Type == types.VolumeTypeVolume {
			hasData = true
		}
	}
	if !hasData {
		t.Errorf("postgres has no named volume on /var/lib/postgresql/data (volumes %+v)", pg.Volumes)
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// Join continuation lines so each instruction is one line.
	df := strings.ReplaceAll(string(b), "\\\n", " ")
	var froms, runs []string
	var user, entrypoint string
	for _, line := range strings.Split(df, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, f[1])
		case "RUN":
			runs = append(runs, line)
		case "USER":
			user = f[1]
		case "ENTRYPOINT":
			entrypoint = strings.Join(f[1:], " ")
		}
	}
	if len(froms) < 2 {
		t.Fatalf("Dockerfile has %d FROM lines; want a multi-stage build", len(froms))
	}
	if froms[0] != "golang:1.26-bookworm" {
		t.Errorf("build stage FROM %s, want golang:1.26-bookworm", froms[0])
	}
	if last := froms[len(froms)-1]; !strings.HasPrefix(last, "gcr.io/distroless/base-debian12") && !strings.HasPrefix(last, "debian:bookworm-slim") {
		t.Errorf("runtime stage FROM %s, want distroless/base-debian12 or debian:bookworm-slim", last)
	}
	build := regexp.MustCompile(`\bgo build\b.*\./cmd/governor\b`)
	if !slices.ContainsFunc(runs, build.MatchString) {
		t.Errorf("no RUN line builds ./cmd/governor; RUN lines:\n%s", strings.Join(runs, "\n"))
	}
	if user == "" || user == "root" || user == "0" || strings.HasPrefix(user, "root:") || strings.HasPrefix(user, "0:") {
		t.Errorf("runtime USER %q; want a non-root user", user)
	}
	if !strings.Contains(entrypoint, "governor") {
		t.Errorf("ENTRYPOINT %q does not run the governor binary", entrypoint)
	}
}

// The API and the worker refuse to start without a key-encryption key: compose hands them
// one as a secret file, never as a variable in this file.
func TestComposeKeyEncryptionKey(t *testing.T) {
	p := loadCompose(t)
	for _, name := range []string{"governor-api", "governor-worker"} {
		s := service(t, p, name)
		if f := env(t, s, "GOVERNOR_KEK_FILE"); f != "/run/secrets/governor_kek" {
			t.Errorf("%s: GOVERNOR_KEK_FILE %q, want /run/secrets/governor_kek", name, f)
		}
		if _, ok := s.Environment["GOVERNOR_KEK"]; ok {
			t.Errorf("%s: GOVERNOR_KEK is in docker-compose.yml; the key belongs in a secret file", name)
		}
		found := false
		for _, sec := range s.Secrets {
			found = found || sec.Source == "governor_kek"
		}
		if !found {
			t.Errorf("%s does not mount the governor_kek secret", name)
		}
	}
	if sec, ok := p.Secrets["governor_kek"]; !ok || sec.File == "" {
		t.Errorf("no governor_kek secret from a file (secrets %+v)", p.Secrets)
	}
}
