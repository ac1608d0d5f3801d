package retention

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// A pass that deleted rows, or failed, is a system record of no organization; a pass that
// found nothing is not.
func TestPassesThatDidSomethingAreRecorded(t *testing.T) {
	ctx := context.Background()
	pool := testenv.DB(t)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	count := func() int {
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM system_records WHERE kind = 'retention_pass' AND org_id IS NULL`).Scan(&n))
		return n
	}
	record(ctx, pool, log, Report{"domain_events": 0}, nil, time.Millisecond)
	require.Equal(t, 0, count())
	record(ctx, pool, log, Report{"domain_events": 3, "alerts": 2}, nil, 1500*time.Millisecond)
	require.Equal(t, 1, count())
	record(ctx, pool, log, Report{}, errors.New("lock timeout"), time.Second)
	require.Equal(t, 2, count())
	var sev, msg string
	var data json.RawMessage
	require.NoError(t, pool.QueryRow(ctx, `SELECT severity, message, data FROM system_records WHERE kind = 'retention_pass' ORDER BY seq LIMIT 1`).Scan(&sev, &msg, &data))
	require.Equal(t, "info", sev)
	require.Contains(t, msg, "deleted 5 rows")
	require.JSONEq(t, `{"deleted": {"domain_events": 3, "alerts": 2}, "duration_ms": 1500}`, string(data))
	require.NoError(t, pool.QueryRow(ctx, `SELECT severity FROM system_records WHERE kind = 'retention_pass' ORDER BY seq DESC LIMIT 1`).Scan(&sev))
	require.Equal(t, "warning", sev)
}
