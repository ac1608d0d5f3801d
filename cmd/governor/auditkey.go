package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/governor-hq/governor/internal/audit/checkpoint"
	"github.com/governor-hq/governor/internal/config"
)

// loadAuditSigner returns the configured audit signing key; ok is false when none is
// configured.
func loadAuditSigner(cfg config.Config) (s checkpoint.Signer, ok bool, err error) {
	switch {
	case cfg.AuditSigningKey != "":
		s, err = checkpoint.ParsePrivateKey(cfg.AuditSigningKey)
		if err != nil {
			return s, false, fmt.Errorf("GOVERNOR_AUDIT_SIGNING_KEY: %w", err)
		}
	case cfg.AuditSigningKeyFile != "":
		s, err = readAuditKeyFile(cfg.AuditSigningKeyFile)
		if err != nil {
			return s, false, err
		}
	default:
		return s, false, nil
	}
	return s, true, nil
}

func readAuditKeyFile(path string) (checkpoint.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return checkpoint.Signer{}, fmt.Errorf("audit signing key file: %w", err)
	}
	s, err := checkpoint.ParsePrivateKey(string(b))
	if err != nil {
		return checkpoint.Signer{}, fmt.Errorf("audit signing key file %s: %w", path, err)
	}
	return s, nil
}

// ensureAuditKeyFile makes a key file with a new signing key unless one exists (an
// existing key is never replaced: checkpoints kept elsewhere name it). It reports whether
// it made it.
func ensureAuditKeyFile(path string) (checkpoint.Signer, bool, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return checkpoint.Signer{}, false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		s, err := readAuditKeyFile(path)
		return s, false, err
	}
	if err != nil {
		return checkpoint.Signer{}, false, err
	}
	text, err := checkpoint.NewPrivateKey(rand.Reader)
	if err == nil {
		_, err = f.WriteString(text + "\n")
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return checkpoint.Signer{}, false, err
	}
	if err := f.Close(); err != nil {
		return checkpoint.Signer{}, false, err
	}
	s, err := checkpoint.ParsePrivateKey(text)
	return s, true, err
}
