package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/outbox"
	"github.com/governor-hq/governor/internal/runs"
	"github.com/governor-hq/governor/workers"
)

// LifecycleOptions configure the end-to-end benchmark.
type LifecycleOptions struct {
	TemporalAddress string
	Namespace       string
	InMemory        bool
	Clients         []int
	Duration        time.Duration
	Out             io.Writer
	Log             *slog.Logger
}

// Lifecycle measures runs per second through admit → complete → settled (the run's
// workflow started from the outbox, signalled, and its settlement activity committed).
func Lifecycle(ctx context.Context, pool *pgxpool.Pool, o LifecycleOptions) error {
	c, err := client.Dial(client.Options{HostPort: o.TemporalAddress, Namespace: o.Namespace, Logger: quiet{}})
	if err != nil {
		return err
	}
	defer c.Close()
	queue := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	wctx, stop := context.WithCancel(ctx)
	// The worker, relay and admitter stop before this returns: the caller drops the
	// database next.
	var running sync.WaitGroup
	defer func() { stop(); running.Wait() }()
	running.Go(func() {
		_ = workers.Run(wctx, workers.Deps{Client: c, Pool: pool, Log: o.Log, TaskQueue: queue, Namespace: o.Namespace})
	})
	relay := outbox.New(pool, c, queue, o.Log)
	running.Go(func() { relay.Run(wctx) })
	adm := runs.NewAdmitter(pool, o.Log, runs.AdmitterOptions{Committed: relay.Notify})
	running.Go(func() { adm.Run(wctx) })

	f, err := setupFixture(ctx, pool, 1, false)
	if err != nil {
		return err
	}
	kind := "Temporal at " + o.TemporalAddress
	if o.InMemory {
		kind = "Temporal dev server (in memory, started by bench)"
	}
	fmt.Fprintf(o.Out, "\n== end to end: admit → complete → settled, %s ==\n", kind)
	q := dbsqlc.New()
	for _, clients := range o.Clients {
		r := measure(ctx, "lifecycle: admit→complete→settled", clients, o.Duration, func(ctx context.Context, _ int) error {
			res, err := adm.Admit(ctx, runs.AdmitRequest{Caller: f.caller, AgentID: f.agents[0], Estimate: runs.Estimate{CostMicros: 1 + rand.Int64N(1000)}})
			if err != nil {
				return err
			}
			cost := res.Run.EstCostMicros
			if _, err := runs.RecordReport(ctx, pool, f.caller, res.Run.ID, runs.Report{Status: "succeeded", CostMicros: &cost}); err != nil {
				return err
			}
			relay.Notify()
			for {
				run, err := q.RunGet(ctx, pool, dbsqlc.RunGetParams{OrgID: f.caller.OrgID, ID: res.Run.ID})
				if err != nil {
					return err
				}
				if run.SettledAt != nil {
					return nil
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(5 * time.Millisecond):
				}
			}
		})
		fmt.Fprintln(o.Out, r)
	}
	return nil
}

type quiet struct{}

func (quiet) Debug(string, ...any) {}
func (quiet) Info(string, ...any)  {}
func (quiet) Warn(string, ...any)  {}
func (quiet) Error(string, ...any) {}
