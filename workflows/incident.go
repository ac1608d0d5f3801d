package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/governor-hq/governor/activities"
	"github.com/governor-hq/governor/internal/incidents"
	"github.com/governor-hq/governor/internal/lifecycle"
)

// IncidentLifecycle follows one incident, from its first occurrence to resolution. It
// proposes a policy when the incident is (or becomes) high or critical, waits for an
// approver's decision (reminding once, expiring the proposal later), and ends when the
// incident is resolved with nothing left pending. Occurrences, people's changes and
// decisions arrive as signals; the database stays the source of truth and every step is
// an idempotent activity, so a worker lost at any point is replaced without duplicates.
func IncidentLifecycle(ctx workflow.Context, in lifecycle.IncidentInput) (string, error) {
	w := &incidentWorkflow{in: in}
	w.setup(ctx)
	return w.run(ctx)
}

type incidentWorkflow struct {
	in         lifecycle.IncidentInput
	occurrence workflow.ReceiveChannel
	changed    workflow.ReceiveChannel
	decisions  workflow.ReceiveChannel
	snap       incidents.Snapshot
	status     string
	severity   string
	// next is a newer incident of the same fingerprint, signalled after this one was
	// resolved: the workflow continues as new for it.
	next string
}

func (w *incidentWorkflow) setup(ctx workflow.Context) {
	w.occurrence = workflow.GetSignalChannel(ctx, lifecycle.SignalIncidentOccurrence)
	w.changed = workflow.GetSignalChannel(ctx, lifecycle.SignalIncidentChanged)
	w.decisions = workflow.GetSignalChannel(ctx, lifecycle.SignalProposalDecision)
}

func (w *incidentWorkflow) run(ctx workflow.Context) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
			NonRetryableErrorTypes: []string{activities.ErrTypeUnknownProposal}},
	})
	logger := workflow.GetLogger(ctx)
	for {
		if err := w.refresh(ctx); err != nil {
			return "", err
		}
		if w.snap.NeedsProposal() {
			var p *incidents.ProposalState
			if err := workflow.ExecuteActivity(ctx, a.ProposePolicy, w.in.IncidentID).Get(ctx, &p); err != nil {
				return "", err
			}
			w.snap.Proposal = p
		}
		pending := w.snap.Proposal != nil && w.snap.Proposal.Status == "pending"
		if w.snap.Status == "resolved" && !pending {
			w.drain(ctx)
			if w.next != "" {
				in := w.in
				in.IncidentID, in.Severity = w.next, "low"
				return "", workflow.NewContinueAsNewError(ctx, IncidentLifecycle, in)
			}
			logger.Info("incident lifecycle done", "incident", w.in.IncidentID)
			return "resolved", nil
		}
		if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			return "", workflow.NewContinueAsNewError(ctx, IncidentLifecycle, w.in)
		}
		if err := w.wait(ctx, pending); err != nil {
			return "", err
		}
	}
}

// refresh reads the incident and mirrors its status and severity into search attributes.
func (w *incidentWorkflow) refresh(ctx workflow.Context) error {
	if err := workflow.ExecuteActivity(ctx, a.IncidentSnapshot, w.in.IncidentID).Get(ctx, &w.snap); err != nil {
		return err
	}
	if w.snap.Status != w.status || w.snap.Severity != w.severity {
		w.status, w.severity = w.snap.Status, w.snap.Severity
		return workflow.UpsertTypedSearchAttributes(ctx, lifecycle.SearchStatus.ValueSet(w.status), lifecycle.SearchSeverity.ValueSet(w.severity))
	}
	return nil
}

// wait blocks until something may have changed: a signal, or (with a proposal pending)
// the time to remind or to expire it.
func (w *incidentWorkflow) wait(ctx workflow.Context, pending bool) error {
	timerCtx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	sel := workflow.NewSelector(ctx)
	var decision *lifecycle.ProposalDecision
	sel.AddReceive(w.occurrence, func(c workflow.ReceiveChannel, _ bool) {
		var id string
		c.Receive(ctx, &id)
		if id != "" && id != w.in.IncidentID {
			w.next = id
		}
	})
	sel.AddReceive(w.changed, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
	sel.AddReceive(w.decisions, func(c workflow.ReceiveChannel, _ bool) {
		var d lifecycle.ProposalDecision
		c.Receive(ctx, &d)
		decision = &d
	})
	var due string
	if pending {
		p := w.snap.Proposal
		at, what := p.ExpiresAt, "expire"
		if !p.Reminded && p.RemindAt.Before(p.ExpiresAt) {
			at, what = p.RemindAt, "remind"
		}
		timer := workflow.NewTimer(timerCtx, max(at.Sub(workflow.Now(ctx)), 0))
		sel.AddFuture(timer, func(workflow.Future) { due = what })
	}
	sel.Select(ctx)
	var st *incidents.ProposalState
	switch {
	case decision != nil:
		// The workflow passes its own organization and incident: the activity applies the
		// decision only to this incident's proposal, and checks the API's signature against
		// them. (Same activity, same commands: only the input grew, so recorded histories
		// replay unchanged.)
		in := activities.DecideProposalInput{ProposalDecision: *decision, WorkflowOrgID: w.in.OrgID, WorkflowIncidentID: w.in.IncidentID}
		err := workflow.ExecuteActivity(ctx, a.DecideProposal, in).Get(ctx, &st)
		var appErr *temporal.ApplicationError
		if err != nil && !(asApplicationError(err, &appErr) && appErr.Type() == activities.ErrTypeUnknownProposal) {
			return err
		}
		if err != nil {
			workflow.GetLogger(ctx).Warn("decision about an unknown proposal ignored", "proposal", decision.ProposalID)
		}
	case due == "remind":
		return workflow.ExecuteActivity(ctx, a.RemindProposal, w.snap.Proposal.ID).Get(ctx, &st)
	case due == "expire":
		return workflow.ExecuteActivity(ctx, a.ExpireProposal, w.snap.Proposal.ID).Get(ctx, &st)
	}
	return nil
}

// drain consumes signals that arrived after the last wait, noting a newer incident.
func (w *incidentWorkflow) drain(ctx workflow.Context) {
	var id string
	for w.occurrence.ReceiveAsync(&id) {
		if id != "" && id != w.in.IncidentID {
			w.next = id
		}
	}
	for w.changed.ReceiveAsync(nil) {
	}
	for w.decisions.ReceiveAsync(nil) {
	}
}
