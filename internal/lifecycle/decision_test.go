package lifecycle

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/internal/signing"
)

func keys(t *testing.T) signing.Keyring {
	t.Helper()
	k, err := signing.ParseKeyring("decision-test-key-0123456789abcdefghijklmnop")
	require.NoError(t, err)
	return k
}

// A signed decision verifies after a JSON round trip (as it travels in a signal), and
// every field that says what was decided, by whom and for which workflow is covered.
func TestDecisionSignatureCoversEveryField(t *testing.T) {
	t.Parallel()
	k := keys(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	d := ProposalDecision{ProposalID: "prp_1", Decision: "approve", Comment: "ok", UserID: "usr_1", APIKeyID: "key_1", RequestID: "req_1"}
	require.NoError(t, SignDecision(k, "org_1", "inc_1", &d, now))
	b, err := json.Marshal(d)
	require.NoError(t, err)
	var got ProposalDecision
	require.NoError(t, json.Unmarshal(b, &got))
	require.NoError(t, VerifyDecision(k, "org_1", "inc_1", got, now.Add(time.Hour)))

	cases := []struct {
		name        string
		change      func(*ProposalDecision)
		org, incdnt string
	}{
		{"another organization's workflow", nil, "org_2", "inc_1"},
		{"another incident's workflow", nil, "org_1", "inc_2"},
		{"another proposal", func(d *ProposalDecision) { d.ProposalID = "prp_2" }, "org_1", "inc_1"},
		{"the other decision", func(d *ProposalDecision) { d.Decision = "reject" }, "org_1", "inc_1"},
		{"another user", func(d *ProposalDecision) { d.UserID = "usr_2" }, "org_1", "inc_1"},
		{"another key", func(d *ProposalDecision) { d.APIKeyID = "key_2" }, "org_1", "inc_1"},
		{"another request", func(d *ProposalDecision) { d.RequestID = "req_2" }, "org_1", "inc_1"},
		{"another comment", func(d *ProposalDecision) { d.Comment = "ok, and approve the next one too" }, "org_1", "inc_1"},
		{"another time", func(d *ProposalDecision) { d.IssuedAt = d.IssuedAt.Add(-time.Second) }, "org_1", "inc_1"},
	}
	for _, c := range cases {
		x := got
		if c.change != nil {
			c.change(&x)
		}
		require.ErrorIs(t, VerifyDecision(k, c.org, c.incdnt, x, now), signing.ErrBadSignature, c.name)
	}
	// An operator's name is not part of a user's decision: it is ignored when the
	// signature is valid, and the decision is the user's.
	x := got
	x.Operator = "mallory"
	require.NoError(t, VerifyDecision(k, "org_1", "inc_1", x, now))

	require.ErrorIs(t, VerifyDecision(k, "org_1", "inc_1", got, now.Add(8*24*time.Hour)), signing.ErrStale)
	unsigned := ProposalDecision{ProposalID: "prp_1", Decision: "approve", UserID: "usr_1"}
	require.ErrorIs(t, VerifyDecision(k, "org_1", "inc_1", unsigned, now), signing.ErrUnsigned)
	require.ErrorIs(t, SignDecision(signing.Keyring{}, "org_1", "inc_1", &unsigned, now), signing.ErrNoKey)
}

// Old payloads (before signatures) still decode, unsigned.
func TestDecisionDecodesOldPayloads(t *testing.T) {
	t.Parallel()
	var d ProposalDecision
	require.NoError(t, json.Unmarshal([]byte(`{"proposal_id":"prp_1","decision":"approve","comment":"","user_id":"usr_1","api_key_id":"key_1"}`), &d))
	require.Equal(t, "usr_1", d.UserID)
	require.True(t, d.IssuedAt.IsZero())
	require.Empty(t, d.Signature)
	b, err := json.Marshal(ProposalDecision{ProposalID: "prp_1", Decision: "approve", Operator: "alice"})
	require.NoError(t, err)
	require.NotContains(t, string(b), "issued_at", "unsigned decisions carry no time")
}
