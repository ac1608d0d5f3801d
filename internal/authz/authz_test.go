package authz

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRoleGrants(t *testing.T) {
	t.Parallel()
	cases := []struct {
		role string
		p    Permission
		want bool
	}{
		{RoleAdmin, Administer, true},
		{RoleAdmin, Approve, true},
		{RoleApprover, Approve, true},
		{RoleApprover, Administer, false},
		{RoleViewer, Read, true},
		{RoleViewer, Approve, false},
		{RoleViewer, Administer, false},
		{RoleViewer, Ingest, false},
		{RoleIngest, Ingest, true},
		{RoleIngest, Read, false},
		{RoleViewer, Feedback, true},
		{RoleIngest, Feedback, true},
		{RoleApprover, Feedback, true},
		{"", Feedback, false},
		{"", Read, false},
		{"superuser", Read, false},
	}
	for _, c := range cases {
		require.Equal(t, c.want, Allows(c.role, c.p), "%s / %s", c.role, c.p)
	}
}

func TestMayActForAgent(t *testing.T) {
	t.Parallel()
	org := Principal{Role: RoleIngest}
	require.True(t, org.MayActForAgent("prj_a", "agt_a"))
	prj := Principal{Role: RoleIngest, ProjectID: "prj_a"}
	require.True(t, prj.MayActForAgent("prj_a", "agt_x"))
	require.False(t, prj.MayActForAgent("prj_b", "agt_x"))
	agt := Principal{Role: RoleIngest, ProjectID: "prj_a", AgentID: "agt_a"}
	require.True(t, agt.MayActForAgent("prj_a", "agt_a"))
	require.False(t, agt.MayActForAgent("prj_a", "agt_b"))
}
