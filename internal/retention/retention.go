// Package retention deletes what Governor no longer needs, table by table, each past its
// own documented period (GOVERNOR_RETAIN_*), in batches of bounded size so that no pass
// holds many locks or a long transaction. What analytics and the audit ledger read is
// never deleted: cost records, runs, usage rollups, incidents, anomalies and audit
// entries stay.
package retention

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/db/dbsqlc"
)

// Periods say how long each kind of record is kept.
type Periods struct {
	// Events: timeline events (domain_events). Default 400 days.
	Events time.Duration
	// Reservations: released reservations, after their lease ended — the late-report
	// window, in which a completion reported after its lease still charges the limit
	// counters through them. Default 35 days (longer than any limit window).
	Reservations time.Duration
	// ShortCounters: usage counters of minute and hour windows, after the window started.
	// Default 8 days (anomaly detection looks a week back).
	ShortCounters time.Duration
	// Counters: usage counters of day, week and month windows. Default 400 days.
	Counters time.Duration
	// Alerts: alerts done with (delivered or given up), with their deliveries, attempts
	// and in-app notifications. Default 180 days.
	Alerts time.Duration
}

// DefaultPeriods are the documented defaults.
var DefaultPeriods = Periods{
	Events: 400 * 24 * time.Hour, Reservations: 35 * 24 * time.Hour, ShortCounters: 8 * 24 * time.Hour,
	Counters: 400 * 24 * time.Hour, Alerts: 180 * 24 * time.Hour,
}

func (p Periods) withDefaults() Periods {
	d := DefaultPeriods
	if p.Events > 0 {
		d.Events = p.Events
	}
	if p.Reservations > 0 {
		d.Reservations = p.Reservations
	}
	if p.ShortCounters > 0 {
		d.ShortCounters = p.ShortCounters
	}
	if p.Counters > 0 {
		d.Counters = p.Counters
	}
	if p.Alerts > 0 {
		d.Alerts = p.Alerts
	}
	return d
}

// BatchSize is how many rows one statement deletes at most.
const BatchSize = 5000

// Report counts what a pass deleted, by table.
type Report map[string]int64

// Total is every row the pass deleted.
func (r Report) Total() int64 {
	var n int64
	for _, v := range r {
		n += v
	}
	return n
}

// Run deletes everything past its period as of now, batch after batch, until nothing is
// left or ctx ends. Several processes running it at once is harmless (each batch deletes
// rows another has not).
func Run(ctx context.Context, pool *pgxpool.Pool, p Periods, now time.Time, batch int32) (Report, error) {
	p = p.withDefaults()
	if batch <= 0 {
		batch = BatchSize
	}
	q := dbsqlc.New()
	rep := Report{}
	steps := []struct {
		table string
		del   func() (int64, error)
	}{
		{"domain_events", func() (int64, error) {
			return q.RetentionEvents(ctx, pool, dbsqlc.RetentionEventsParams{Before: now.Add(-p.Events), Max: batch})
		}},
		{"run_reservations", func() (int64, error) {
			return q.RetentionReservations(ctx, pool, dbsqlc.RetentionReservationsParams{Before: now.Add(-p.Reservations), Max: batch})
		}},
		{"limit_counters", func() (int64, error) {
			return q.RetentionCounters(ctx, pool, dbsqlc.RetentionCountersParams{
				ShortBefore: now.Add(-p.ShortCounters), LongBefore: now.Add(-p.Counters), Max: batch})
		}},
		{"alerts", func() (int64, error) {
			return q.RetentionAlerts(ctx, pool, dbsqlc.RetentionAlertsParams{Before: now.Add(-p.Alerts), Max: batch})
		}},
		{"idempotency_records", func() (int64, error) { return q.RetentionIdempotency(ctx, pool, batch) }},
		{"api_key_rate_windows", func() (int64, error) {
			return q.RetentionRateWindows(ctx, pool, dbsqlc.RetentionRateWindowsParams{Before: now.Add(-24 * time.Hour), Max: batch})
		}},
	}
	for _, s := range steps {
		for {
			n, err := s.del()
			if err != nil {
				return rep, fmt.Errorf("retention of %s: %w", s.table, err)
			}
			rep[s.table] += n
			if n < int64(batch) {
				break
			}
			if err := ctx.Err(); err != nil {
				return rep, err
			}
		}
	}
	return rep, nil
}

// Loop runs a pass every interval until ctx ends, logging what it deleted.
func Loop(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, p Periods, every time.Duration) {
	if every <= 0 {
		every = 10 * time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		start := time.Now()
		rep, err := Run(ctx, pool, p, start, BatchSize)
		record(ctx, pool, log, rep, err, time.Since(start))
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("housekeeping: retention pass failed", "err", err, "deleted", map[string]int64(rep))
		case rep.Total() > 0:
			log.Info("housekeeping: retention pass", "deleted", map[string]int64(rep), "ms", time.Since(start).Milliseconds())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
