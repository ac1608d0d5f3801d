package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/internal/config"
	"github.com/governor-hq/governor/internal/testenv"
)

// Without the shared secrets the API and the worker refuse to start (rather than run with
// decisions nobody can attribute or idempotency records no other process can read), and
// say which setting is missing.
func TestAPIAndWorkerRequireTheirSecrets(t *testing.T) {
	// Not parallel: it sets environment variables.
	_, url := testenv.FreshDB(t)
	t.Setenv("GOVERNOR_KEK", base64.StdEncoding.EncodeToString(make([]byte, 32))) // past the KEK check
	t.Setenv("GOVERNOR_KEK_FILE", "")
	t.Setenv("GOVERNOR_SIGNAL_KEY", "")
	t.Setenv("GOVERNOR_IDEMPOTENCY_PEPPER", "")
	_, err := run(t, "api", "--database-url", url, "--http-addr", "127.0.0.1:0")
	require.ErrorContains(t, err, "GOVERNOR_SIGNAL_KEY")
	_, err = run(t, "worker", "--database-url", url)
	require.ErrorContains(t, err, "GOVERNOR_SIGNAL_KEY")
	t.Setenv("GOVERNOR_SIGNAL_KEY", strings.Repeat("k", 32))
	_, err = run(t, "api", "--database-url", url, "--http-addr", "127.0.0.1:0")
	require.ErrorContains(t, err, "GOVERNOR_IDEMPOTENCY_PEPPER")
}

// governor dev makes its secrets once, readable only by its user, and reuses them, so a
// restart still verifies what the previous run signed.
func TestDevKeepsItsSecrets(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	var logs []string
	logf := func(format string, args ...any) { logs = append(logs, format) }
	var first config.Config
	require.NoError(t, devSecrets(&first, dir, logf))
	require.False(t, first.SignalKeys.Empty())
	require.Len(t, first.IdempotencyPepper, 43, "32 random bytes, base64url")
	for _, name := range []string{"signal.key", "idempotency.pepper"} {
		st, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), name)
	}
	var second config.Config
	require.NoError(t, devSecrets(&second, dir, logf))
	require.Equal(t, first.IdempotencyPepper, second.IdempotencyPepper)
	b, err := os.ReadFile(filepath.Join(dir, "signal.key"))
	require.NoError(t, err)
	again, _, err := devSecret(dir, "signal.key")
	require.NoError(t, err)
	require.Equal(t, strings.TrimSpace(string(b)), again)
	require.Len(t, logs, 4)

	// Configured secrets win; nothing is written for them.
	other := filepath.Join(t.TempDir(), "data")
	configured := config.Config{Security: config.Security{SignalKeys: first.SignalKeys, IdempotencyPepper: []byte(strings.Repeat("p", 32))}}
	require.NoError(t, devSecrets(&configured, other, logf))
	require.Equal(t, strings.Repeat("p", 32), string(configured.IdempotencyPepper))
	_, err = os.Stat(other)
	require.True(t, os.IsNotExist(err), "no secret files when both are configured")
}
