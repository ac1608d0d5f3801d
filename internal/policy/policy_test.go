package policy

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRuleMatching(t *testing.T) {
	t.Parallel()
	run := Run{ProjectID: "prj_a", AgentID: "agt_a", Model: "gpt-4o", Feature: "search", Tags: map[string]string{"env": "prod", "team": "x"}}
	cases := []struct {
		rule Rule
		want bool
	}{
		{Rule{AgentID: "agt_a"}, true},
		{Rule{AgentID: "agt_b"}, false},
		{Rule{AgentID: "agt_a", Model: "gpt-4o", Feature: "search"}, true},
		{Rule{AgentID: "agt_a", Model: "o3"}, false},
		{Rule{ProjectID: "prj_a", Tags: map[string]string{"env": "prod"}}, true},
		{Rule{Tags: map[string]string{"env": "staging"}}, false},
		{Rule{Tags: map[string]string{"missing": ""}}, false}, // a named tag must be present
		{Rule{}, false}, // a rule naming nothing matches nothing
	}
	for i, c := range cases {
		require.Equal(t, c.want, c.rule.Matches(run), "case %d", i)
	}
	rules := []Rule{{ID: "pol_2", AgentID: "agt_a"}, {ID: "pol_1", Model: "gpt-4o"}}
	require.Equal(t, "pol_1", First(rules, run).ID, "the oldest matching rule wins")
	require.Nil(t, First(rules, Run{AgentID: "agt_z"}))
}
