package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
)

const (
	key1 = "signal-key-one-0123456789abcdefghijklmnop"
	key2 = "signal-key-two-0123456789abcdefghijklmnop"
)

func write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// Not parallel: the tests set environment variables.

func TestSecretsFromEnvironmentOrFile(t *testing.T) {
	t.Setenv("GOVERNOR_SIGNAL_KEY_FILE", write(t, "signal.key", key1+"\n"+key2+"\n"))
	t.Setenv("GOVERNOR_IDEMPOTENCY_PEPPER", "pepper-0123456789abcdefghijklmnopqrstuv")
	t.Setenv("TEMPORAL_API_KEY_FILE", write(t, "temporal.key", "  tmprl-api-key\n"))
	c, err := Load(nil)
	require.NoError(t, err)
	require.False(t, c.SignalKeys.Empty())
	require.Equal(t, "pepper-0123456789abcdefghijklmnopqrstuv", string(c.IdempotencyPepper))
	require.Equal(t, "tmprl-api-key", c.TemporalAPIKey, "trimmed")
	require.True(t, c.TemporalTLS, "an API key turns TLS on")

	empty, err := Load(nil)
	require.NoError(t, err)
	require.False(t, empty.SignalKeys.Empty())
	t.Setenv("GOVERNOR_SIGNAL_KEY_FILE", "")
	t.Setenv("GOVERNOR_IDEMPOTENCY_PEPPER", "")
	t.Setenv("TEMPORAL_API_KEY_FILE", "")
	none, err := Load(nil)
	require.NoError(t, err)
	require.True(t, none.SignalKeys.Empty(), "no key unless configured")
	require.Empty(t, none.IdempotencyPepper)
	require.False(t, none.TemporalTLS)
}

func TestBadSecretsNameTheSetting(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"GOVERNOR_SIGNAL_KEY": "short"}, "GOVERNOR_SIGNAL_KEY: signing key 1 is 5 bytes"},
		{map[string]string{"GOVERNOR_SIGNAL_KEY": key1, "GOVERNOR_SIGNAL_KEY_FILE": write(t, "k", key2)}, "GOVERNOR_SIGNAL_KEY and GOVERNOR_SIGNAL_KEY_FILE are both set"},
		{map[string]string{"GOVERNOR_SIGNAL_KEY_FILE": filepath.Join(t.TempDir(), "missing")}, "GOVERNOR_SIGNAL_KEY_FILE"},
		{map[string]string{"GOVERNOR_SIGNAL_KEY_FILE": write(t, "blank", "\n")}, "is empty"},
		{map[string]string{"GOVERNOR_IDEMPOTENCY_PEPPER": "salt"}, "GOVERNOR_IDEMPOTENCY_PEPPER: 4 bytes"},
		{map[string]string{"TEMPORAL_TLS_CERT_FILE": "/etc/cert.pem"}, "TEMPORAL_TLS_CERT_FILE and TEMPORAL_TLS_KEY_FILE go together"},
		{map[string]string{"TEMPORAL_TLS": "maybe"}, "TEMPORAL_TLS"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			_, err := Load(nil)
			require.ErrorContains(t, err, c.want)
		})
	}
}

func TestTemporalTLSSettings(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	Register(fs)
	require.NoError(t, fs.Parse([]string{"--temporal-tls-ca-file", "/ca.pem", "--temporal-tls-cert-file", "/c.pem",
		"--temporal-tls-key-file", "/k.pem", "--temporal-tls-server-name", "temporal.internal"}))
	c, err := Load(fs)
	require.NoError(t, err)
	require.True(t, c.TemporalTLS, "implied by the files")
	require.Equal(t, "/ca.pem", c.TemporalTLSCAFile)
	require.Equal(t, "/c.pem", c.TemporalTLSCertFile)
	require.Equal(t, "/k.pem", c.TemporalTLSKeyFile)
	require.Equal(t, "temporal.internal", c.TemporalTLSServerName)
}

// Secrets have no flag: a flag's value is visible to every user of the machine.
func TestSecuritySecretsHaveNoFlag(t *testing.T) {
	t.Parallel()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	Register(fs)
	for _, s := range Settings() {
		switch s.Env {
		case "GOVERNOR_SIGNAL_KEY", "GOVERNOR_IDEMPOTENCY_PEPPER", "TEMPORAL_API_KEY":
			require.Empty(t, s.Flag, s.Env)
		}
	}
	for _, name := range []string{"signal-key", "idempotency-pepper", "temporal-api-key"} {
		require.Nil(t, fs.Lookup(name), name)
	}
	require.NotNil(t, fs.Lookup("signal-key-file"))
}
