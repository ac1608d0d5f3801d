package incidents

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/governor-hq/governor/internal/actor"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/runs"
)

// OnRunSettled is the settlement hook that turns a failed run into an incident
// occurrence (category RUN_FAILURE, fingerprint: organization, agent, error code and
// normalized message), in the settlement's transaction.
func OnRunSettled(ctx context.Context, tx pgx.Tx, s runs.Settlement) error {
	if s.Status != "failed" {
		return nil
	}
	r := s.Run
	sig := NormalizeError(r.ErrorMessage)
	code := r.ErrorCode
	if code == "" {
		code = "UNSPECIFIED"
	}
	title := "Runs of agent " + r.AgentID + " fail with " + code
	if sig != "" {
		title += ": " + sig
	}
	if len(title) > 300 {
		title = title[:300]
	}
	_, err := Record(ctx, tx, Occurrence{
		OrgID: r.OrgID, Category: RunFailure, Key: []string{r.AgentID, code, sig}, Title: title, Severity: "low",
		ProjectID: r.ProjectID, AgentID: r.AgentID, Model: r.Model, Feature: r.Feature, ErrorCode: code, ErrorSignature: sig,
		RunID: r.ID, CostMicros: s.CostMicros, Source: events.Ref{Type: "run", ID: r.ID},
		Data: map[string]any{"error_message": r.ErrorMessage, "latency_ms": deref(r.LatencyMs)},
	}, actor.System(s.By))
	return err
}
