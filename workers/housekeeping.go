package workers

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/db/dbsqlc"
)

// housekeepingEvery is how often a worker deletes records past their retention.
const housekeepingEvery = 10 * time.Minute

// housekeep deletes expired idempotency records until ctx ends. Correctness never depends
// on it (an expired record is ignored when its key comes back); it only keeps the table
// small. Several workers doing it at once is harmless.
func housekeep(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) {
	q := dbsqlc.New()
	t := time.NewTicker(housekeepingEvery)
	defer t.Stop()
	for {
		if n, err := q.IdempotencyPurge(ctx, pool); err != nil && ctx.Err() == nil {
			log.Warn("housekeeping: purge of expired idempotency records failed", "err", err)
		} else if n > 0 {
			log.Info("housekeeping: expired idempotency records purged", "rows", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
