package config

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/governor-hq/governor/internal/signing"
)

// Security is the deployment's secrets and how it reaches Temporal. Secrets come from an
// environment variable or a file, never a flag (a flag's value is in the process list).
type Security struct {
	// SignalKeys sign (API) and verify (worker) the user identity in proposal decisions
	// sent as Temporal signals. The first key signs; every one verifies (rotation).
	SignalKeys signing.Keyring
	// IdempotencyPepper is the secret Idempotency-Key records are hashed and sealed with.
	IdempotencyPepper []byte
	// Temporal client TLS (TLS on with system roots when only TemporalTLS is set; mTLS
	// with a client certificate) and API key.
	TemporalTLS           bool
	TemporalTLSCAFile     string
	TemporalTLSCertFile   string
	TemporalTLSKeyFile    string
	TemporalTLSServerName string
	TemporalAPIKey        string

	// The raw settings, resolved by resolve.
	signalKey, signalKeyFile           string
	pepper, pepperFile                 string
	temporalAPIKey, temporalAPIKeyFile string
}

func sec(dst func(*Security) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *dst(&c.Security) = v; return nil }
}

var securitySettings = []Setting{
	{Env: "GOVERNOR_SIGNAL_KEY", Default: "",
		Help:  "Secret key (at least 32 bytes; several separated by commas: the first signs, all verify) with which the API signs the approver's identity in the proposal decisions it sends to workflows, and the worker verifies it. API and worker need the same. Required by `api` and `worker`; `governor dev` makes one in the data folder. Environment or file only.",
		apply: sec(func(s *Security) *string { return &s.signalKey })},
	{Env: "GOVERNOR_SIGNAL_KEY_FILE", Flag: "signal-key-file", Default: "",
		Help:  "File holding GOVERNOR_SIGNAL_KEY (one key per line).",
		apply: sec(func(s *Security) *string { return &s.signalKeyFile })},
	{Env: "GOVERNOR_IDEMPOTENCY_PEPPER", Default: "",
		Help:  "Secret (at least 32 bytes) Idempotency-Key records are hashed and sealed with; every API process needs the same one. Required by `api`; `governor dev` makes one in the data folder. Changing it forgets the recorded responses (for at most GOVERNOR_IDEMPOTENCY_TTL). Environment or file only.",
		apply: sec(func(s *Security) *string { return &s.pepper })},
	{Env: "GOVERNOR_IDEMPOTENCY_PEPPER_FILE", Flag: "idempotency-pepper-file", Default: "",
		Help:  "File holding GOVERNOR_IDEMPOTENCY_PEPPER.",
		apply: sec(func(s *Security) *string { return &s.pepperFile })},
	{Env: "TEMPORAL_TLS", Flag: "temporal-tls", Default: "false",
		Help: "Connect to Temporal over TLS (with the system's roots unless TEMPORAL_TLS_CA_FILE is set). Implied by any other TEMPORAL_TLS_* setting and by TEMPORAL_API_KEY.",
		apply: func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%q is not true or false", v)
			}
			c.TemporalTLS = b
			return nil
		}},
	{Env: "TEMPORAL_TLS_CA_FILE", Flag: "temporal-tls-ca-file", Default: "",
		Help:  "PEM file of the CA(s) that sign the Temporal frontend's certificate (instead of the system's roots).",
		apply: sec(func(s *Security) *string { return &s.TemporalTLSCAFile })},
	{Env: "TEMPORAL_TLS_CERT_FILE", Flag: "temporal-tls-cert-file", Default: "",
		Help:  "PEM client certificate for mutual TLS with the Temporal frontend (with TEMPORAL_TLS_KEY_FILE).",
		apply: sec(func(s *Security) *string { return &s.TemporalTLSCertFile })},
	{Env: "TEMPORAL_TLS_KEY_FILE", Flag: "temporal-tls-key-file", Default: "",
		Help:  "PEM private key of TEMPORAL_TLS_CERT_FILE.",
		apply: sec(func(s *Security) *string { return &s.TemporalTLSKeyFile })},
	{Env: "TEMPORAL_TLS_SERVER_NAME", Flag: "temporal-tls-server-name", Default: "",
		Help:  "Name to verify the Temporal frontend's certificate against, when it differs from the host of TEMPORAL_ADDRESS.",
		apply: sec(func(s *Security) *string { return &s.TemporalTLSServerName })},
	{Env: "TEMPORAL_API_KEY", Default: "",
		Help:  "API key sent to Temporal (`authorization: Bearer`, e.g. Temporal Cloud); turns TLS on. Environment or file only.",
		apply: sec(func(s *Security) *string { return &s.temporalAPIKey })},
	{Env: "TEMPORAL_API_KEY_FILE", Flag: "temporal-api-key-file", Default: "",
		Help:  "File holding TEMPORAL_API_KEY.",
		apply: sec(func(s *Security) *string { return &s.temporalAPIKeyFile })},
}

// secret returns a secret given as a value or as a file (not both), trimmed of the
// surrounding whitespace a file usually ends with.
func secret(env, value, file string) (string, error) {
	if value != "" && file != "" {
		return "", fmt.Errorf("%s and %s_FILE are both set; set one", env, env)
	}
	if file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s_FILE: %w", env, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s_FILE: %s is empty", env, file)
	}
	return v, nil
}

// resolve reads the secrets' files and checks the settings that only make sense together;
// it returns the problems found.
func (s *Security) resolve() []string {
	var problems []string
	if v, err := secret("GOVERNOR_SIGNAL_KEY", s.signalKey, s.signalKeyFile); err != nil {
		problems = append(problems, err.Error())
	} else if s.SignalKeys, err = signing.ParseKeyring(v); err != nil {
		problems = append(problems, "GOVERNOR_SIGNAL_KEY: "+err.Error())
	}
	if v, err := secret("GOVERNOR_IDEMPOTENCY_PEPPER", s.pepper, s.pepperFile); err != nil {
		problems = append(problems, err.Error())
	} else if v != "" && len(v) < signing.MinKeyLength {
		problems = append(problems, fmt.Sprintf("GOVERNOR_IDEMPOTENCY_PEPPER: %d bytes; at least %d are needed", len(v), signing.MinKeyLength))
	} else if v != "" {
		s.IdempotencyPepper = []byte(v)
	}
	if v, err := secret("TEMPORAL_API_KEY", s.temporalAPIKey, s.temporalAPIKeyFile); err != nil {
		problems = append(problems, err.Error())
	} else {
		s.TemporalAPIKey = v
	}
	if (s.TemporalTLSCertFile == "") != (s.TemporalTLSKeyFile == "") {
		problems = append(problems, "TEMPORAL_TLS_CERT_FILE and TEMPORAL_TLS_KEY_FILE go together: set both or neither")
	}
	if s.TemporalTLSCAFile != "" || s.TemporalTLSCertFile != "" || s.TemporalTLSServerName != "" || s.TemporalAPIKey != "" {
		s.TemporalTLS = true
	}
	return problems
}
