package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/governor-hq/governor/internal/alerts"
	"github.com/governor-hq/governor/internal/config"
	"github.com/governor-hq/governor/internal/envelope"
)

// errNoKEK is why api and worker refuse to start without a key-encryption key.
var errNoKEK = errors.New("no key-encryption key: set GOVERNOR_KEK (base64 of 32 random bytes, e.g. `openssl rand -base64 32`) " +
	"or GOVERNOR_KEK_FILE / --kek-file (`governor admin generate-kek --out FILE` makes one). Alert channels' credentials " +
	"are encrypted with it; keep it out of the database and its backups")

// readKEKFile reads a key file.
func readKEKFile(path string) (envelope.KEK, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return envelope.KEK{}, fmt.Errorf("key-encryption key file: %w", err)
	}
	k, err := envelope.ParseKEK(string(b))
	if err != nil {
		return envelope.KEK{}, fmt.Errorf("key-encryption key file %s: %w", path, err)
	}
	return k, nil
}

// loadKeyring builds the keyring of the configured KEK and the ones accepted during a
// rotation.
func loadKeyring(cfg config.Config) (*envelope.Keyring, error) {
	var primary envelope.KEK
	var err error
	switch {
	case cfg.KEK != "":
		if primary, err = envelope.ParseKEK(cfg.KEK); err != nil {
			return nil, fmt.Errorf("GOVERNOR_KEK: %w", err)
		}
	case cfg.KEKFile != "":
		if primary, err = readKEKFile(cfg.KEKFile); err != nil {
			return nil, err
		}
	default:
		return nil, errNoKEK
	}
	var accepted []envelope.KEK
	for _, f := range cfg.KEKAcceptFiles {
		k, err := readKEKFile(f)
		if err != nil {
			return nil, fmt.Errorf("GOVERNOR_KEK_ACCEPT_FILES: %w", err)
		}
		accepted = append(accepted, k)
	}
	return envelope.NewKeyring(primary, accepted...)
}

// ensureKEKFile makes a key file with a new random KEK unless one exists (an existing
// key is never replaced: what it wrapped would be lost). It reports whether it made it.
func ensureKEKFile(path string) (envelope.KEK, bool, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return envelope.KEK{}, false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		k, err := readKEKFile(path)
		return k, false, err
	}
	if err != nil {
		return envelope.KEK{}, false, err
	}
	text := envelope.GenerateKEK()
	if _, err := f.WriteString(text + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return envelope.KEK{}, false, err
	}
	if err := f.Close(); err != nil {
		return envelope.KEK{}, false, err
	}
	k, err := envelope.ParseKEK(text)
	return k, true, err
}

// alertEndpoints is the operator's policy for webhook and Slack channels.
func alertEndpoints(cfg config.Config) alerts.EndpointPolicy {
	return alerts.EndpointPolicy{Allow: cfg.AlertAllowCIDRs, AllowHTTP: cfg.AlertAllowHTTP}
}

// devLoopback is what `governor dev` lets alert channels reach, so that receivers on this
// machine work.
var devLoopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
