// Package activities holds the Temporal activities of Governor's workflows. Each is a
// method of Activities, which holds the dependencies; each is idempotent, so Temporal may
// retry it freely.
package activities

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/governor-hq/governor/db"

	"github.com/governor-hq/governor/internal/alerts"
	"github.com/governor-hq/governor/internal/anomaly"
	"github.com/governor-hq/governor/internal/runs"
	"github.com/governor-hq/governor/internal/signing"
)

// Activities are the workflows' access to the database.
type Activities struct {
	pool      *pgxpool.Pool
	log       *slog.Logger
	settler   *runs.Settler
	deliverer *alerts.Deliverer
	detector  *anomaly.Detector
	// signalKeys verify the API's signature on decisions that arrive as signals.
	signalKeys signing.Keyring
}

// Options are the activities' optional collaborators.
type Options struct {
	// SettleHooks run inside each run's settlement transaction.
	SettleHooks []runs.SettleHook
	// DeadLetterHooks run when a settlement is dead-lettered.
	DeadLetterHooks []runs.DeadLetterHook
	// Alerts are the delivery settings of alert channels (HTTP client, SMTP server).
	Alerts alerts.DeliverOptions
	// AnomalyPageSize is how many entities one page of anomaly detection evaluates
	// (default 500).
	AnomalyPageSize int
	// SignalKeys verify that the API signed the user identity in a proposal decision
	// (GOVERNOR_SIGNAL_KEY). Without them every decision arriving as a signal is the
	// operator's.
	SignalKeys signing.Keyring
}

// New returns the activities, ready to register with a worker.
func New(pool *pgxpool.Pool, log *slog.Logger, o Options) *Activities {
	det := anomaly.NewDetector(pool, log)
	if o.AnomalyPageSize > 0 {
		det.PageSize = o.AnomalyPageSize
	}
	settler := runs.NewSettler(pool, o.SettleHooks...)
	settler.OnDeadLetter(o.DeadLetterHooks...)
	return &Activities{pool: pool, log: log, settler: settler,
		deliverer: alerts.NewDeliverer(pool, log, o.Alerts), detector: det, signalKeys: o.SignalKeys}
}

// actorOf names the workflow an activity works for, for the audit ledger and events.
func actorOf(ctx context.Context) string {
	return "workflow:" + activity.GetInfo(ctx).WorkflowExecution.ID
}

// SettleRunResult is what SettleRun found or did.
type SettleRunResult struct {
	Settled bool
	// Status is the run's final status when settled.
	Status string
	// LeaseExpiresAt is when to look again when the run is still running.
	LeaseExpiresAt time.Time
	CostMicros     int64
	ErrorCode      string
	ErrorMessage   string
}

// SettleRun settles a run that was reported or whose lease expired; otherwise it returns
// the current lease end.
func (a *Activities) SettleRun(ctx context.Context, runID string) (SettleRunResult, error) {
	s, err := a.settler.Settle(ctx, runID, actorOf(ctx))
	if db.Permanent(err) {
		// The same transaction would fail the same way on every retry: the workflow
		// dead-letters the settlement instead.
		return SettleRunResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeSettlementInvalid, err)
	}
	if err != nil {
		return SettleRunResult{}, err
	}
	return SettleRunResult{
		Settled: s.Settled, Status: s.Status, LeaseExpiresAt: s.LeaseExpiresAt, CostMicros: s.CostMicros,
		ErrorCode: s.Run.ErrorCode, ErrorMessage: s.Run.ErrorMessage,
	}, nil
}

// ErrTypeSettlementInvalid is the application error type of a settlement that retrying
// cannot fix (the workflow's retry policy lists it as non-retryable).
const ErrTypeSettlementInvalid = "SettlementInvalid"

// DeadLetterSettlementInput names a settlement that gave up and why.
type DeadLetterSettlementInput struct {
	RunID string
	Error string
}

// DeadLetterSettlement records that a run's settlement gave up (idempotent). It returns
// false when there is nothing to dead-letter: the run settled meanwhile.
func (a *Activities) DeadLetterSettlement(ctx context.Context, in DeadLetterSettlementInput) (bool, error) {
	changed, pending, err := a.settler.DeadLetter(ctx, in.RunID, actorOf(ctx), in.Error)
	if err == nil && changed {
		a.log.Error("run settlement dead-lettered: fix the cause, then RunService.RetrySettlement", "run", in.RunID, "err", in.Error)
	}
	return pending, err
}
