package deploy

import "testing"

// The API and the worker get the same signal key (the worker verifies what the API
// signs) and the API a pepper, each long enough to be accepted at start.
func TestComposeSecrets(t *testing.T) {
	p := loadCompose(t)
	api, worker := service(t, p, "governor-api"), service(t, p, "governor-worker")
	key := env(t, api, "GOVERNOR_SIGNAL_KEY")
	if len(key) < 32 {
		t.Errorf("governor-api: GOVERNOR_SIGNAL_KEY is %d bytes; at least 32 are needed", len(key))
	}
	if w := env(t, worker, "GOVERNOR_SIGNAL_KEY"); w != key {
		t.Errorf("governor-worker: GOVERNOR_SIGNAL_KEY %q differs from the API's %q", w, key)
	}
	if pepper := env(t, api, "GOVERNOR_IDEMPOTENCY_PEPPER"); len(pepper) < 32 {
		t.Errorf("governor-api: GOVERNOR_IDEMPOTENCY_PEPPER is %d bytes; at least 32 are needed", len(pepper))
	}
}
