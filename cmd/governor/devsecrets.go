package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/governor-hq/governor/internal/config"
	"github.com/governor-hq/governor/internal/signing"
)

// devSecret returns the secret kept in dataDir/name, making a random one (readable only
// by this user) on first use. `governor dev` keeps its secrets there so a restart still
// verifies the signals and replays the responses of the run before.
func devSecret(dataDir, name string) (string, bool, error) {
	path := filepath.Join(dataDir, name)
	b, err := os.ReadFile(path)
	if err == nil {
		if v := strings.TrimSpace(string(b)); v != "" {
			return v, false, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", false, err
	}
	v := base64.RawURLEncoding.EncodeToString(raw)
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return "", false, err
	}
	if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
		return "", false, err
	}
	return v, true, nil
}

// devSecrets fills in the secrets the configuration lacks from the data folder, and says
// which it used, so nobody mistakes them for production settings.
func devSecrets(cfg *config.Config, dataDir string, logf func(string, ...any)) error {
	if cfg.SignalKeys.Empty() {
		v, made, err := devSecret(dataDir, "signal.key")
		if err != nil {
			return fmt.Errorf("signal key: %w", err)
		}
		if cfg.SignalKeys, err = signing.ParseKeyring(v); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(dataDir, "signal.key"), err)
		}
		logf("signal key: %s (%s; set GOVERNOR_SIGNAL_KEY to use your own)", filepath.Join(dataDir, "signal.key"), madeOrKept(made))
	}
	if len(cfg.IdempotencyPepper) == 0 {
		v, made, err := devSecret(dataDir, "idempotency.pepper")
		if err != nil {
			return fmt.Errorf("idempotency pepper: %w", err)
		}
		cfg.IdempotencyPepper = []byte(v)
		logf("idempotency pepper: %s (%s; set GOVERNOR_IDEMPOTENCY_PEPPER to use your own)", filepath.Join(dataDir, "idempotency.pepper"), madeOrKept(made))
	}
	return nil
}

func madeOrKept(made bool) string {
	if made {
		return "made now"
	}
	return "kept from an earlier run"
}
