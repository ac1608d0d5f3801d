package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/governor-hq/governor/internal/config"
)

const defaultTemporalAddress = "127.0.0.1:7233"

// temporalOptions are the client options of the API and the worker: the frontend's
// address and namespace, and how to prove who we are to it (TLS, mutual TLS, an API key),
// so production can refuse everyone else (who could otherwise start, signal or cancel
// Governor's workflows).
func temporalOptions(cfg config.Config, log *slog.Logger) (client.Options, error) {
	addr := cfg.TemporalAddress
	if addr == "" {
		addr = defaultTemporalAddress
	}
	opts := client.Options{
		HostPort:  addr,
		Namespace: cfg.TemporalNamespace,
		Logger:    tlog.NewStructuredLogger(log.With("component", "temporal")),
	}
	tc, err := temporalTLS(cfg.Security)
	if err != nil {
		return client.Options{}, err
	}
	opts.ConnectionOptions.TLS = tc
	if cfg.TemporalAPIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(cfg.TemporalAPIKey)
	}
	return opts, nil
}

// temporalTLS builds the client's TLS configuration, or nil for plaintext.
func temporalTLS(s config.Security) (*tls.Config, error) {
	if !s.TemporalTLS {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.TemporalTLSServerName}
	if s.TemporalTLSCAFile != "" {
		pem, err := os.ReadFile(s.TemporalTLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("TEMPORAL_TLS_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TEMPORAL_TLS_CA_FILE: no PEM certificate in %s", s.TemporalTLSCAFile)
		}
		tc.RootCAs = pool
	}
	if s.TemporalTLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.TemporalTLSCertFile, s.TemporalTLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("TEMPORAL_TLS_CERT_FILE / TEMPORAL_TLS_KEY_FILE: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
