package main

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/internal/testenv"
)

// An operator issues a user's key from the command line; it is printed once and audited.
func TestAdminCreateUserKey(t *testing.T) {
	t.Parallel()
	_, url := testenv.FreshDB(t)
	out, err := run(t, "admin", "bootstrap", "--database-url", url, "--org", "Acme", "--email", "ops@example.com")
	require.NoError(t, err)
	org := regexp.MustCompile(`organization  (org_[0-9a-z]+)`).FindStringSubmatch(out)
	user := regexp.MustCompile(`admin user    (usr_[0-9a-z]+)`).FindStringSubmatch(out)
	require.Len(t, org, 2, out)
	require.Len(t, user, 2, out)

	out, err = run(t, "admin", "create-user-key", "--database-url", url, "--org", org[1], "--user", user[1], "--expires-in", "720h")
	require.NoError(t, err)
	require.Contains(t, out, "for user "+user[1])
	require.Regexp(t, `gvk_[A-Za-z0-9]{8}_[A-Za-z0-9]{32}`, out)

	_, err = run(t, "admin", "create-user-key", "--database-url", url, "--org", org[1], "--user", "usr_00000000000000000000000000")
	require.ErrorContains(t, err, "has no user")
	_, err = run(t, "admin", "create-user-key", "--database-url", url, "--org", "org_00000000000000000000000000", "--user", user[1])
	require.ErrorContains(t, err, "has no user", "a user of another organization is not found")

	out, err = run(t, "admin", "verify-audit", "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, "intact: 5 entries", "bootstrap's four (organization, admin, key, in-app channel) and the issued key")
}
