// Package workers runs Governor's Temporal worker: one function that registers every
// workflow and activity and stops when its context ends.
package workers

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/governor-hq/governor/activities"
	"github.com/governor-hq/governor/internal/alerts"
	"github.com/governor-hq/governor/internal/analytics"
	"github.com/governor-hq/governor/internal/audit"
	"github.com/governor-hq/governor/internal/audit/checkpoint"
	"github.com/governor-hq/governor/internal/incidents"
	"github.com/governor-hq/governor/internal/lifecycle"
	"github.com/governor-hq/governor/internal/outbox"
	"github.com/governor-hq/governor/internal/retention"
	"github.com/governor-hq/governor/internal/runs"
	"github.com/governor-hq/governor/internal/schedulewatch"
	"github.com/governor-hq/governor/internal/signing"
	"github.com/governor-hq/governor/workflows"
)

// Deps are what the worker's activities need.
type Deps struct {
	Client    client.Client
	Pool      *pgxpool.Pool
	Log       *slog.Logger
	TaskQueue string
	Namespace string
	// SettleHooks run inside each run's settlement transaction (incidents for failed
	// runs, limit-threshold alerts).
	SettleHooks []runs.SettleHook
	// Alerts are the alert channels' delivery settings (SMTP server, HTTP client).
	Alerts alerts.DeliverOptions
	// Retention is how long records are kept; HousekeepingEvery how often a pass runs.
	Retention         retention.Periods
	HousekeepingEvery time.Duration
	// AnomalySchedule is the daily anomaly batch's schedule, created or updated at start
	// (Cron empty or "off": none, e.g. for tests and benchmarks on a shared server).
	AnomalySchedule workflows.AnomalyScheduleOptions
	// SignalKeys verify the API's signatures on proposal decisions (GOVERNOR_SIGNAL_KEY).
	SignalKeys signing.Keyring
	// AuditSigner signs a checkpoint of every audit chain head that moved, every
	// AuditCheckpointEvery (nil: none are signed).
	AuditSigner          *checkpoint.Signer
	AuditCheckpointEvery time.Duration
}

// Run registers Governor's search attributes (if missing), workflows and activities, and
// polls the task queue until ctx ends.
func Run(ctx context.Context, d Deps) error {
	if err := workflows.EnsureSearchAttributes(ctx, d.Client, d.Namespace); err != nil {
		return fmt.Errorf("register search attributes: %w", err)
	}
	if c := d.AnomalySchedule.Cron; c != "" && c != "off" {
		sched := d.AnomalySchedule
		sched.TaskQueue = d.TaskQueue
		if err := workflows.EnsureAnomalySchedule(ctx, d.Client, sched); err != nil {
			return fmt.Errorf("anomaly schedule: %w", err)
		}
	}
	w := worker.New(d.Client, d.TaskQueue, worker.Options{})
	workflows.Register(w)
	// What a run's settlement sets off, in the settlement's own transaction.
	hooks := append([]runs.SettleHook{incidents.OnRunSettled, alerts.OnRunSettled}, d.SettleHooks...)
	w.RegisterActivity(activities.New(d.Pool, d.Log, activities.Options{SettleHooks: hooks, Alerts: d.Alerts,
		DeadLetterHooks: []runs.DeadLetterHook{alerts.OnSettlementDeadLettered}, SignalKeys: d.SignalKeys}))
	if err := w.Start(); err != nil {
		return err
	}
	d.Log.Info("worker polling", "task_queue", d.TaskQueue, "namespace", d.Namespace)
	// Workers relay the outbox too, so workflow starts owed by an API process that died
	// after committing are delivered even if no API process runs.
	relay := outbox.New(d.Pool, d.Client, d.TaskQueue, d.Log)
	var bg sync.WaitGroup
	bg.Go(func() { relay.Run(ctx) })
	bg.Go(func() { housekeep(ctx, d.Pool, d.Log, d.Retention, d.HousekeepingEvery) })
	// Workers roll analytics up too, so rollups stay current without an API process.
	bg.Go(func() { analytics.New(d.Pool, d.Log).RunRoller(ctx, 0) })
	if d.AuditSigner != nil {
		every := d.AuditCheckpointEvery
		if every <= 0 {
			every = time.Hour
		}
		bg.Go(func() { audit.CheckpointLoop(ctx, d.Pool, d.Log, *d.AuditSigner, every) })
	}
	if c := d.AnomalySchedule.Cron; c != "" && c != "off" {
		// Skipped batches are visible only in Temporal's counters: record them.
		watch := &schedulewatch.Watcher{Schedules: d.Client.ScheduleClient(), Pool: d.Pool, Log: d.Log, ScheduleID: lifecycle.AnomalyScheduleID(d.TaskQueue)}
		bg.Go(func() { watch.Run(ctx, time.Minute) })
	}
	<-ctx.Done()
	bg.Wait()
	w.Stop()
	return nil
}
