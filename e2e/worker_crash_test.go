package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/api"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/lifecycle"
	"github.com/governor-hq/governor/internal/testenv"
)

// A worker is killed (SIGKILL) while an incident's workflow waits for its approval, with
// the approval already sent. A new worker replays the workflow and finishes it: the
// proposal is approved once, one rule is activated, and nothing is audited twice.
func TestWorkerKilledMidIncidentLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// A database and task queue of this test's own, so no other worker can step in.
	pool, dbURL := testenv.FreshDB(t)
	queue := fmt.Sprintf("worker-crash-%d", time.Now().UnixNano())
	tc := dialTemporal(t)
	t.Cleanup(tc.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srvCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = api.New(pool, logger(), api.Options{RunLease: time.Minute, Temporal: tc, TaskQueue: queue, SignalKeys: signalKeys}).Serve(srvCtx, ln, nil)
	}()
	t.Cleanup(func() { stop(); <-done })
	s := &stack{pool: pool, temporal: tc, taskQueue: queue, baseURL: "http://" + ln.Addr().String(), http: &http.Client{Timeout: time.Minute}}
	res, err := api.Bootstrap(ctx, pool, "test", api.BootstrapInput{OrgName: "worker crash", AdminEmail: "a@example.com"})
	require.NoError(t, err)
	tn := &tenant{stack: s, org: res, admin: s.clientsFor(res.Secret)}
	ag := tn.newAgent(t, "victim")
	highWhenCode(t, tn, "BAD_TOOL")

	first := startChildWorker(t, dbURL, queue)
	failed := fail(t, tn, ag, "BAD_TOOL", "tool returned garbage", dollar, "gpt-4o", "x")
	inc := incidentOf(t, tn.admin, failed.Id)
	prop := proposalOf(t, tn.admin, inc.Id)

	require.NoError(t, first.cmd.Process.Signal(syscall.SIGKILL))
	<-first.exited

	approved := make(chan *v1.PolicyProposal, 1)
	go func() {
		r, err := tn.admin.policies.ApproveProposal(ctx, connect.NewRequest(&v1.ApproveProposalRequest{Id: prop.Id}))
		if err != nil {
			approved <- nil
			return
		}
		approved <- r.Msg.Proposal
	}()
	// The decision is in the workflow's history, and no worker is there to process it.
	waitSignalRecorded(t, tc, inc.WorkflowId, lifecycle.SignalProposalDecision, 1)
	p, err := tn.admin.policies.GetProposal(ctx, connect.NewRequest(&v1.GetProposalRequest{Id: prop.Id}))
	require.NoError(t, err)
	require.Equal(t, v1.ProposalStatus_PROPOSAL_STATUS_PENDING, p.Msg.Proposal.Status, "no worker, no decision yet")

	t0 := time.Now()
	startChildWorker(t, dbURL, queue)
	select {
	case got := <-approved:
		require.NotNil(t, got)
		t.Log("approval answered after", time.Since(t0), got.Status)
	case <-time.After(patience):
		t.Fatal("the approval was not answered")
	}
	eventually(t, patience, func() bool {
		r, err := tn.admin.policies.GetProposal(ctx, connect.NewRequest(&v1.GetProposalRequest{Id: prop.Id}))
		require.NoError(t, err)
		return r.Msg.Proposal.Status == v1.ProposalStatus_PROPOSAL_STATUS_APPROVED
	})
	t.Log("approved after", time.Since(t0))

	props, err := tn.admin.policies.ListProposals(ctx, connect.NewRequest(&v1.ListProposalsRequest{}))
	require.NoError(t, err)
	require.Len(t, props.Msg.Proposals, 1)
	rules, err := tn.admin.policies.ListPolicyRules(ctx, connect.NewRequest(&v1.ListPolicyRulesRequest{}))
	require.NoError(t, err)
	require.Len(t, rules.Msg.Rules, 1)
	for action, want := range map[string]int{"policy_proposal.create": 1, "policy_proposal.approve": 1, "policy_rule.activate": 1} {
		entries, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{Action: action}))
		require.NoError(t, err)
		require.Len(t, entries.Msg.Entries, want, action)
	}
	v, err := tn.admin.audit.VerifyAuditChain(ctx, connect.NewRequest(&v1.VerifyAuditChainRequest{}))
	require.NoError(t, err)
	require.True(t, v.Msg.Intact)
}
