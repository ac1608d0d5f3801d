package config

import (
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
)

func TestDefaultsEnvAndFlags(t *testing.T) {
	// Not parallel: it sets environment variables.
	t.Setenv("GOVERNOR_RUN_LEASE", "2m")
	t.Setenv("GOVERNOR_HTTP_ADDR", "127.0.0.1:9999")
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	Register(fs)
	require.NoError(t, fs.Parse([]string{"--http-addr", "127.0.0.1:7000"}))
	c, err := Load(fs)
	require.NoError(t, err)
	require.Equal(t, 2*time.Minute, c.RunLease, "environment beats default")
	require.Equal(t, "127.0.0.1:7000", c.HTTPAddr, "flag beats environment")
	require.Equal(t, 24*time.Hour, c.IdempotencyTTL, "default")
	require.Equal(t, "default", c.TemporalNamespace)
}

func TestBadValuesNameTheSetting(t *testing.T) {
	t.Setenv("GOVERNOR_RUN_LEASE", "soon")
	t.Setenv("GOVERNOR_LOG_FORMAT", "xml")
	_, err := Load(nil)
	require.ErrorContains(t, err, "GOVERNOR_RUN_LEASE")
	require.ErrorContains(t, err, "GOVERNOR_LOG_FORMAT")
}

// Every setting must be documented in the README.
func TestREADMEDocumentsEverySetting(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	readme, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "README.md"))
	require.NoError(t, err)
	for _, s := range Settings() {
		require.True(t, strings.Contains(string(readme), "`"+s.Env+"`"), "README.md does not document %s", s.Env)
	}
}

// Secrets never come from a flag: the command line is visible to every user of the host.
func TestSecretsHaveNoFlag(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	Register(fs)
	for _, f := range []string{"smtp-password", "kek", "audit-signing-key"} {
		require.Nil(t, fs.Lookup(f), "--%s must not exist", f)
		require.Error(t, fs.Parse([]string{"--" + f, "hunter2"}))
	}
	for _, s := range Settings() {
		if s.Env == "GOVERNOR_SMTP_PASSWORD" || s.Env == "GOVERNOR_KEK" || s.Env == "GOVERNOR_AUDIT_SIGNING_KEY" {
			require.Empty(t, s.Flag, s.Env)
		}
	}
}

func TestSecretFilesAndAlertSettings(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "smtp-password")
	require.NoError(t, os.WriteFile(pw, []byte("s3cret\n"), 0o600))
	t.Setenv("GOVERNOR_SMTP_PASSWORD_FILE", pw)
	t.Setenv("GOVERNOR_ALERT_ALLOW_CIDRS", "127.0.0.0/8, ::1")
	t.Setenv("GOVERNOR_ALERT_ALLOW_HTTP", "true")
	t.Setenv("GOVERNOR_KEK_ACCEPT_FILES", "/a, /b")
	c, err := Load(nil)
	require.NoError(t, err)
	require.Equal(t, "s3cret", c.SMTPPassword)
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}, c.AlertAllowCIDRs)
	require.True(t, c.AlertAllowHTTP)
	require.Equal(t, []string{"/a", "/b"}, c.KEKAcceptFiles)

	t.Setenv("GOVERNOR_SMTP_PASSWORD", "also")
	t.Setenv("GOVERNOR_KEK", "x")
	t.Setenv("GOVERNOR_KEK_FILE", "/y")
	t.Setenv("GOVERNOR_ALERT_ALLOW_CIDRS", "10.0.0.1/8")
	_, err = Load(nil)
	require.ErrorContains(t, err, "GOVERNOR_SMTP_PASSWORD and GOVERNOR_SMTP_PASSWORD_FILE")
	require.ErrorContains(t, err, "GOVERNOR_KEK and GOVERNOR_KEK_FILE")
	require.ErrorContains(t, err, "GOVERNOR_ALERT_ALLOW_CIDRS / --alert-allow-cidrs")

	t.Setenv("GOVERNOR_SMTP_PASSWORD", "")
	t.Setenv("GOVERNOR_KEK", "")
	t.Setenv("GOVERNOR_ALERT_ALLOW_CIDRS", "")
	t.Setenv("GOVERNOR_SMTP_PASSWORD_FILE", filepath.Join(dir, "missing"))
	_, err = Load(nil)
	require.ErrorContains(t, err, "GOVERNOR_SMTP_PASSWORD_FILE")
}
