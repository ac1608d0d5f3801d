package export_test

import (
	"context"
	"encoding/csv"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/api"
	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/bench"
	"github.com/governor-hq/governor/internal/export"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// seeded is an organization with n LLM calls.
func seeded(t testing.TB, n int) string {
	t.Helper()
	ctx := context.Background()
	pool := testenv.DB(t)
	res, err := api.Bootstrap(ctx, pool, "test", api.BootstrapInput{OrgName: "export " + ids.New("t"), AdminEmail: "a@example.com"})
	require.NoError(t, err)
	org := res.Organization.Id
	q := dbsqlc.New()
	prj, err := q.ProjectCreate(ctx, pool, dbsqlc.ProjectCreateParams{OrgID: org, ID: ids.New(ids.Project), Name: "p"})
	require.NoError(t, err)
	ag, err := q.AgentCreate(ctx, pool, dbsqlc.AgentCreateParams{OrgID: org, ID: ids.New(ids.Agent), ProjectID: prj.ID, Name: "a"})
	require.NoError(t, err)
	require.NoError(t, bench.SeedCalls(ctx, pool, org, prj.ID, ag.ID, res.APIKey.Id, n, time.Now().Add(-72*time.Hour)))
	return org
}

// rowCounter counts the CSV rows it is written (and checks they parse) without keeping
// them.
type rowCounter struct {
	w    *io.PipeWriter
	rows chan int
}

func newRowCounter(t *testing.T) *rowCounter {
	pr, pw := io.Pipe()
	c := &rowCounter{w: pw, rows: make(chan int, 1)}
	go func() {
		r := csv.NewReader(pr)
		r.ReuseRecord = true
		n := 0
		for {
			if _, err := r.Read(); err != nil {
				if err != io.EOF {
					n = -1
				}
				_, _ = io.Copy(io.Discard, pr)
				c.rows <- n
				return
			}
			n++
		}
	}()
	return c
}

// Memory stays flat as rows grow: the peak heap of exporting 100,000 rows is within a
// small constant of exporting 20,000 (one batch of rows is held at a time, whatever the
// export's size), and every row comes out as parseable CSV.
func TestExportMemoryIsFlatAsRowsGrow(t *testing.T) {
	ctx := context.Background()
	pool := testenv.DB(t)
	small, large := seeded(t, 20_000), seeded(t, 100_000)
	// Batches of 1,000 rows: both sizes take many batches (20 and 100), so both see the
	// worst moment (a batch read while another is written) and the comparison measures
	// growth with rows, not the luck of when the collector ran.
	const batch = 1000
	heaps := map[int]bench.Heap{}
	for _, c := range []struct {
		org  string
		rows int
	}{{small, 20_000}, {large, 100_000}} {
		counter := newRowCounter(t)
		var rows int64
		var err error
		h := bench.PeakHeap(func() {
			rows, err = export.Write(ctx, pool, export.Request{OrgID: c.org, Dataset: export.LlmCalls, Format: export.CSV, BatchRows: batch}, counter.w)
		})
		require.NoError(t, err)
		require.NoError(t, counter.w.Close())
		require.EqualValues(t, c.rows, rows)
		require.Equal(t, c.rows+1, <-counter.rows, "every row and the header parse")
		heaps[c.rows] = h
		t.Logf("%d rows: peak heap %.1f MiB, peak live heap %.1f MiB (%.1f MiB before)", c.rows,
			float64(h.Peak)/(1<<20), float64(h.PeakLive)/(1<<20), float64(h.Start)/(1<<20))
	}
	// Five times the rows, at most 4 MiB more live heap at the peak: holding the 80,000 more
	// rows would take some 50 MiB. The peak of the heap in use, garbage included, depends
	// on when the collector runs; it is logged.
	grew := int64(heaps[100_000].PeakLive) - int64(heaps[20_000].PeakLive)
	require.Less(t, grew, int64(4<<20), "peak live heap %d bytes at 100k rows against %d at 20k",
		heaps[100_000].PeakLive, heaps[20_000].PeakLive)
}

// BenchmarkExport prints rows/s of exporting 200,000 LLM calls as CSV and NDJSON.
func BenchmarkExport(b *testing.B) {
	ctx := context.Background()
	pool := testenv.DB(b)
	const n = 200_000
	org := seeded(b, n)
	for _, f := range []export.Format{export.CSV, export.NDJSON} {
		b.Run(string(f), func(b *testing.B) {
			for b.Loop() {
				rows, err := export.Write(ctx, pool, export.Request{OrgID: org, Dataset: export.LlmCalls, Format: f}, io.Discard)
				if err != nil || rows != n {
					b.Fatalf("%d rows, %v", rows, err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
