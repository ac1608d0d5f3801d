package retention

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/internal/systemrecords"
)

// record writes the system record of a pass that deleted something or failed (passes that
// find nothing to delete, every few minutes, are not worth a row each). It concerns no one
// organization: operators read it, tenants do not.
func record(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, rep Report, err error, took time.Duration) {
	if ctx.Err() != nil || (err == nil && rep.Total() == 0) {
		return
	}
	r := systemrecords.Record{Kind: systemrecords.KindRetentionPass,
		Message: fmt.Sprintf("Retention pass deleted %d rows in %s", rep.Total(), took.Round(time.Millisecond)),
		Data:    map[string]any{"deleted": map[string]int64(rep), "duration_ms": took.Milliseconds()}}
	if err != nil {
		r.Severity = systemrecords.Warning
		r.Message = fmt.Sprintf("Retention pass failed after deleting %d rows: %v", rep.Total(), err)
		r.Data["error"] = err.Error()
	}
	if werr := systemrecords.Write(ctx, pool, r); werr != nil {
		log.Warn("housekeeping: retention pass not recorded", "err", werr)
	}
}
