package config

import (
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
