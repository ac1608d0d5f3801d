package deploy

import "testing"

// The worker signs audit checkpoints with a key handed to it as a secret file, never as a
// variable in this file; the API never holds it.
func TestComposeAuditSigningKey(t *testing.T) {
	p := loadCompose(t)
	w := service(t, p, "governor-worker")
	if f := env(t, w, "GOVERNOR_AUDIT_SIGNING_KEY_FILE"); f != "/run/secrets/governor_audit_key" {
		t.Errorf("governor-worker: GOVERNOR_AUDIT_SIGNING_KEY_FILE %q, want /run/secrets/governor_audit_key", f)
	}
	found := false
	for _, sec := range w.Secrets {
		found = found || sec.Source == "governor_audit_key"
	}
	if !found {
		t.Error("governor-worker does not mount the governor_audit_key secret")
	}
	for _, name := range []string{"governor-api", "governor-worker", "governor-migrate"} {
		s := service(t, p, name)
		if _, ok := s.Environment["GOVERNOR_AUDIT_SIGNING_KEY"]; ok {
			t.Errorf("%s: GOVERNOR_AUDIT_SIGNING_KEY is in docker-compose.yml; the key belongs in a secret file", name)
		}
	}
	for _, sec := range service(t, p, "governor-api").Secrets {
		if sec.Source == "governor_audit_key" {
			t.Error("governor-api mounts the audit signing key; only the worker signs")
		}
	}
	if sec, ok := p.Secrets["governor_audit_key"]; !ok || sec.File == "" {
		t.Errorf("no governor_audit_key secret from a file (secrets %+v)", p.Secrets)
	}
}
