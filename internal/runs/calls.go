package runs

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/money"
)

// CostCalls is the settlement cost_source of a run charged the sum of its LLM calls: it
// reported neither a cost nor tokens, and calls were recorded for it before it settled.
// A run that reports a cost (or tokens) is charged that (their price), and its calls are
// informational.
const CostCalls = "calls"

// chargeCalls is what a run that reported no cost and no tokens is charged: the sum of
// the calls recorded for it (cost; input tokens with cache reads and writes; output with
// reasoning), or nothing when it has none. Recording calls locks the run FOR SHARE, and
// settlement holds it FOR UPDATE, so every call is either in this sum or marked late.
func chargeCalls(ctx context.Context, tx pgx.Tx, run dbsqlc.Run) (cost, in, out int64, source string, err error) {
	t, err := dbsqlc.New().LlmCallRunTotals(ctx, tx, dbsqlc.LlmCallRunTotalsParams{OrgID: run.OrgID, RunID: &run.ID})
	if err != nil {
		return 0, 0, 0, "", err
	}
	if t.Calls == 0 {
		return 0, 0, 0, CostNone, nil
	}
	return min(t.CostMicros, money.MaxCostMicros), t.InputTokens, t.OutputTokens, CostCalls, nil
}

// checkRetryOf refuses a retry_of naming no run of the organization.
func checkRetryOf(ctx context.Context, db dbsqlc.DBTX, orgID, runID string) error {
	if runID == "" {
		return nil
	}
	_, err := dbsqlc.New().RunGet(ctx, db, dbsqlc.RunGetParams{OrgID: orgID, ID: runID})
	if errors.Is(err, pgx.ErrNoRows) {
		return &FieldError{Field: "retry_of", Msg: fmt.Sprintf("no run %s in this organization", runID)}
	}
	return err
}
