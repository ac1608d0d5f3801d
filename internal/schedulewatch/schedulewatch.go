// Package schedulewatch makes a Temporal Schedule's skipped actions visible: Temporal
// counts the actions a schedule skipped because the previous one was still running
// (overlap policy Skip) or because it could not start them within the catch-up window,
// and says nothing else about them. Workers look at the counts every so often and write a
// system record when one grew (org_id NULL: a schedule serves every organization).
package schedulewatch

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"

	"github.com/governor-hq/governor/internal/systemrecords"
)

// Counts are a schedule's skip counters.
type Counts struct {
	SkippedOverlap      int
	MissedCatchupWindow int
}

// Records are the system records of the skips between two observations of a schedule's
// counts (prev nil: the first observation, when every skip counted so far is reported).
// Each is keyed by the count it reports, so workers watching the same schedule write it
// once.
func Records(scheduleID string, prev *Counts, cur Counts) []systemrecords.Record {
	var out []systemrecords.Record
	var base Counts
	if prev != nil {
		base = *prev
	}
	for _, k := range []struct {
		name, why string
		was, now  int
	}{
		{"skipped_overlap", "the previous batch was still running (overlap policy Skip)", base.SkippedOverlap, cur.SkippedOverlap},
		{"missed_catchup_window", "Temporal could not start it within the catch-up window", base.MissedCatchupWindow, cur.MissedCatchupWindow},
	} {
		if k.now <= k.was {
			continue
		}
		out = append(out, systemrecords.Record{
			Kind: systemrecords.KindScheduleSkipped, Severity: systemrecords.Warning, WorkflowID: scheduleID,
			Message: fmt.Sprintf("Schedule %s skipped %d action(s) because %s; %d skipped so far", scheduleID, k.now-k.was, k.why, k.now),
			Data:    map[string]any{"schedule_id": scheduleID, "reason": k.name, "skipped": k.now - k.was, "total": k.now},
			Key:     fmt.Sprintf("schedule/%s/%s/%d", scheduleID, k.name, k.now),
		})
	}
	return out
}

// Watcher observes one schedule.
type Watcher struct {
	Schedules  client.ScheduleClient
	Pool       *pgxpool.Pool
	Log        *slog.Logger
	ScheduleID string
	last       *Counts
}

// Check describes the schedule once and records the skips since the last check.
func (w *Watcher) Check(ctx context.Context) error {
	d, err := w.Schedules.GetHandle(ctx, w.ScheduleID).Describe(ctx)
	if err != nil {
		return fmt.Errorf("describe schedule %s: %w", w.ScheduleID, err)
	}
	cur := Counts{SkippedOverlap: d.Info.NumActionsSkippedOverlap, MissedCatchupWindow: d.Info.NumActionsMissedCatchupWindow}
	for _, r := range Records(w.ScheduleID, w.last, cur) {
		if err := systemrecords.Write(ctx, w.Pool, r); err != nil {
			return err
		}
	}
	w.last = &cur
	return nil
}

// Run checks every interval until ctx ends; failures are logged and tried again.
func (w *Watcher) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := w.Check(ctx); err != nil && ctx.Err() == nil {
			w.Log.Warn("schedule watch", "schedule", w.ScheduleID, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
