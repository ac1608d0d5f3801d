package workers

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/internal/retention"
)

// housekeep deletes records past their retention (internal/retention) every interval
// until ctx ends. Correctness never depends on it; it keeps tables from growing without
// bound. Several workers doing it at once is harmless.
func housekeep(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, p retention.Periods, every time.Duration) {
	retention.Loop(ctx, pool, log, p, every)
}
