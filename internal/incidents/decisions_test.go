package incidents

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/lifecycle"
)

func proposalWith(t *testing.T, ds ...Decision) dbsqlc.PolicyProposal {
	t.Helper()
	b, err := json.Marshal(ds)
	require.NoError(t, err)
	return dbsqlc.PolicyProposal{Decisions: b}
}

// Each user counts once; every operator together counts once, whatever names they send.
func TestApproversCountsOperatorsAsOne(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		ds   []Decision
		want int
	}{
		{"none", nil, 0},
		{"one user twice", []Decision{{Decision: "approve", UserID: "usr_1"}, {Decision: "approve", UserID: "usr_1"}}, 1},
		{"two users", []Decision{{Decision: "approve", UserID: "usr_1"}, {Decision: "approve", UserID: "usr_2"}}, 2},
		{"operators under many names", []Decision{{Decision: "approve", Operator: "alice"}, {Decision: "approve", Operator: "bob"},
			{Decision: "approve", Operator: "temporal"}}, 1},
		{"operators and a user", []Decision{{Decision: "approve", Operator: "alice"}, {Decision: "approve", Operator: "bob"},
			{Decision: "approve", UserID: "usr_1"}}, 2},
		{"older records: an operator with a key id", []Decision{{Decision: "approve", Operator: "alice", APIKeyID: "key_1"},
			{Decision: "approve", APIKeyID: "key_2"}}, 1},
		{"rejections do not count", []Decision{{Decision: "reject", UserID: "usr_1"}, {Decision: "reject", Operator: "alice"}}, 0},
	}
	for _, c := range cases {
		require.Equal(t, c.want, approvers(proposalWith(t, c.ds...)), c.name)
	}
}

func TestRecordedRecognisesTheSameDecider(t *testing.T) {
	t.Parallel()
	p := proposalWith(t, Decision{Decision: "approve", UserID: "usr_1", RequestID: "req_1"}, Decision{Decision: "approve", Operator: "alice"})
	require.True(t, recorded(p, Decision{Decision: "approve", UserID: "usr_2", RequestID: "req_1"}), "same request")
	require.True(t, recorded(p, Decision{Decision: "approve", UserID: "usr_1", RequestID: "req_9"}), "same user, same decision")
	require.True(t, recorded(p, Decision{Decision: "approve", Operator: "alice"}))
	require.False(t, recorded(p, Decision{Decision: "approve", Operator: "bob"}), "another operator's decision is recorded (it still counts as the one operator)")
	require.False(t, recorded(p, Decision{Decision: "reject", UserID: "usr_1"}))
}

// The ledger tells a reader when a decision named a user it is not recorded as.
func TestUnverifiedNote(t *testing.T) {
	t.Parallel()
	claimed := lifecycle.ProposalDecision{UserID: "usr_1", APIKeyID: "key_1"}
	require.Empty(t, unverifiedNote(claimed, Decider{UserID: "usr_1", APIKeyID: "key_1"}), "verified")
	require.Empty(t, unverifiedNote(lifecycle.ProposalDecision{Operator: "alice"}, OperatorDecider(lifecycle.ProposalDecision{Operator: "alice"}, "")), "no user named")
	note := unverifiedNote(claimed, OperatorDecider(claimed, "signature does not match"))
	require.Contains(t, note, `by operator temporal; it named user "usr_1", not believed: signature does not match`)
	require.Contains(t, unverifiedNote(claimed, OperatorDecider(claimed, "")), "not signed by the API")
}

// Strings from a signal are bounded before they are stored, without splitting a rune.
func TestClip(t *testing.T) {
	t.Parallel()
	require.Equal(t, "short", clip("short", 10))
	long := strings.Repeat("é", 100)
	c := clip(long, 11)
	require.True(t, utf8.ValidString(c))
	require.Equal(t, strings.Repeat("é", 5)+"…", c)
	require.Equal(t, "temporal", OperatorDecider(lifecycle.ProposalDecision{}, "").Operator)
	require.LessOrEqual(t, len(OperatorDecider(lifecycle.ProposalDecision{Operator: strings.Repeat("x", 1000)}, "").Operator), 64+len("…"))
}
