package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/export"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/llmcalls"
	"github.com/governor-hq/governor/internal/pricing"
	"github.com/governor-hq/governor/internal/runs"
)

// CallsOptions configure the LLM call write benchmark.
type CallsOptions struct {
	Duration    time.Duration
	Concurrency []int
	// Batch is how many calls one request records.
	Batch int
	Out   io.Writer
	Log   *slog.Logger
}

// baselineCalls is a second yardstick's table: llm_calls' columns, keys, indexes and
// checks, but not its foreign keys (to the organization and the run), which PostgreSQL
// checks row by row. Benchmark-only SQL, like bench_budget.
const baselineCalls = `CREATE TABLE IF NOT EXISTS bench_llm_calls (LIKE llm_calls INCLUDING ALL)`

// The bare multi-row INSERT: the same rows as a recorded batch, every column as the write
// path sends it, in one statement with nothing around it (no validation, pricing, run
// lock, conflict handling or RETURNING), into llm_calls itself or the table without
// foreign keys.
const baselineInsert = `INSERT INTO %s (org_id, id, call_id, run_id, project_id, agent_id, api_key_id, model,
    provider, operation, feature, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,
    cost_micros, cost_source, latency_ms, status, error_type, started_at, late, source, trace_id, span_id, attributes)
SELECT $1, unnest($2::text[]), unnest($3::text[]), unnest($4::text[]), unnest($5::text[]), unnest($6::text[]),
       unnest($7::text[]), unnest($8::text[]), unnest($9::text[]), unnest($10::text[]), unnest($11::text[]),
       unnest($12::bigint[]), unnest($13::bigint[]), unnest($14::bigint[]), unnest($15::bigint[]), unnest($16::bigint[]),
       unnest($17::bigint[]), unnest($18::text[]), nullif(unnest($19::bigint[]), -1), unnest($20::text[]), unnest($21::text[]),
       unnest($22::timestamptz[]), unnest($23::boolean[]), 'api', unnest($24::text[]), unnest($25::text[]),
       unnest($26::jsonb[])`

// Calls measures RecordLlmCalls' write path (llmcalls.Record: validate, lock the run,
// price each call by kind, one multi-row INSERT) against a bare multi-row INSERT of the
// same rows into a table like llm_calls, at each concurrency, measured one after the
// other in the same database.
func Calls(ctx context.Context, pool *pgxpool.Pool, o CallsOptions) ([]Result, error) {
	if o.Batch <= 0 {
		o.Batch = llmcalls.MaxBatch
	}
	f, err := setupFixture(ctx, pool, 1, false)
	if err != nil {
		return nil, err
	}
	adm := runs.NewAdmitter(pool, o.Log, runs.AdmitterOptions{DefaultLease: 24 * time.Hour})
	admCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); adm.Run(admCtx) }()
	res, err := adm.Admit(ctx, runs.AdmitRequest{Caller: f.caller, AgentID: f.agents[0], Model: "gpt-4o", Estimate: runs.Estimate{CostMicros: 1}})
	stop()
	<-done
	if err != nil {
		return nil, err
	}
	run := res.Run
	if _, err := pool.Exec(ctx, baselineCalls); err != nil {
		return nil, err
	}
	if _, err := pool.Exec(ctx, `TRUNCATE bench_llm_calls`); err != nil {
		return nil, err
	}
	var seq atomic.Int64
	fmt.Fprintf(o.Out, "\n== LLM call records: batches of %d calls into one run ==\n", o.Batch)
	var out []Result
	bare := func(table string) func(ctx context.Context, _ int) error {
		return func(ctx context.Context, _ int) error {
			n := seq.Add(1)
			b := o.Batch
			strs := func(v string) []string {
				out := make([]string, b)
				for i := range out {
					out[i] = v
				}
				return out
			}
			nums := func(v int64) []int64 {
				out := make([]int64, b)
				for i := range out {
					out[i] = v
				}
				return out
			}
			idsA, callIDs, started, lates, attrs := make([]string, b), make([]string, b), make([]time.Time, b), make([]bool, b), make([]json.RawMessage, b)
			now := time.Now()
			for i := range b {
				idsA[i], callIDs[i], started[i], attrs[i] = ids.New(ids.LlmCall), fmt.Sprintf("base-%d-%d", n, i), now, json.RawMessage("{}")
			}
			_, err := pool.Exec(ctx, fmt.Sprintf(baselineInsert, table), run.OrgID, idsA, callIDs, strs(run.ID), strs(run.ProjectID), strs(run.AgentID),
				strs(run.ApiKeyID), strs("gpt-4o"), strs("openai"), strs("chat"), strs(run.Feature), nums(1000), nums(200), nums(500),
				nums(0), nums(0), nums(3125), strs("priced"), nums(-1), strs("ok"), strs(""), started, lates, strs(""), strs(""), attrs)
			return err
		}
	}
	for _, c := range o.Concurrency {
		noFK := measure(ctx, "baseline: bare INSERT, no foreign keys", c, o.Duration, bare("bench_llm_calls"))
		base := measure(ctx, "baseline: bare INSERT into llm_calls", c, o.Duration, bare("llm_calls"))
		r := measure(ctx, "governor: RecordLlmCalls", c, o.Duration, func(ctx context.Context, _ int) error {
			n := seq.Add(1)
			calls := make([]llmcalls.Call, o.Batch)
			for i := range calls {
				calls[i] = llmcalls.Call{CallID: fmt.Sprintf("gov-%d-%d", n, i), RunID: run.ID, Model: "gpt-4o", Provider: "openai",
					Operation: "chat", Tokens: pricing.Tokens{Input: 1000, Output: 200, CacheRead: 500}}
			}
			got, err := llmcalls.Record(ctx, pool, f.caller, llmcalls.SourceAPI, calls)
			if err == nil && got.Recorded != o.Batch {
				err = fmt.Errorf("recorded %d of %d", got.Recorded, o.Batch)
			}
			return err
		})
		r.Name += fmt.Sprintf(" (%d calls)", o.Batch)
		out = append(out, noFK, base, r)
		perBatch := float64(o.Batch)
		for _, b := range []Result{noFK, base} {
			fmt.Fprintf(o.Out, "%-48s %4d clients %10.0f rows/s   p50 %8s  p99 %8s  (%d batches, %d errors)\n", b.Name, c,
				b.OpsPerSec*perBatch, round(b.P50), round(b.P99), b.Ops, b.Errors)
		}
		fmt.Fprintf(o.Out, "%-48s %4d clients %10.0f calls/s  p50 %8s  p99 %8s  (%d batches, %d errors)\n", r.Name, c,
			r.OpsPerSec*perBatch, round(r.P50), round(r.P99), r.Ops, r.Errors)
		if base.OpsPerSec > 0 {
			fmt.Fprintf(o.Out, "%-48s %4d clients throughput %.2f× the bare INSERT into llm_calls\n", "  ratio", c, r.OpsPerSec/base.OpsPerSec)
		}
	}
	return out, nil
}

// SeedCalls writes n LLM calls of one agent without a run, one millisecond apart from
// start, with plain SQL (the benchmark's and tests' business, not the product's).
func SeedCalls(ctx context.Context, pool *pgxpool.Pool, org, project, agent, key string, n int, start time.Time) error {
	_, err := pool.Exec(ctx, `
		INSERT INTO llm_calls (org_id, id, call_id, project_id, agent_id, api_key_id, model, provider, operation, feature,
		                       input_tokens, output_tokens, cache_read_tokens, cost_micros, cost_source, latency_ms, status,
		                       error_type, started_at, attributes)
		SELECT $1, 'llm_' || lpad(g::text, 26, '0'), 'seed-' || g, $2, $3, $4, 'model-' || (g % 20), 'provider', 'chat',
		       'feature "' || (g % 50) || '", with a comma', 1000 + g % 997, 200 + g % 101, g % 7 * 100, 1000 + g % 9973, 'priced',
		       200 + g % 1000, CASE WHEN g % 50 = 0 THEN 'error' ELSE 'ok' END, CASE WHEN g % 50 = 0 THEN 'timeout' ELSE '' END,
		       $5::timestamptz + g * interval '1 millisecond', jsonb_build_object('step', g % 3)
		FROM generate_series(1, $6::bigint) g`, org, project, agent, key, start, n)
	if err == nil {
		_, err = pool.Exec(ctx, `VACUUM ANALYZE llm_calls`)
	}
	return err
}

// ExportOptions configure the export benchmark.
type ExportOptions struct {
	Rows []int
	Out  io.Writer
	Log  *slog.Logger
}

// ExportResult is one measured export.
type ExportResult struct {
	Rows                 int
	Format               export.Format
	Elapsed, Copy        time.Duration
	Bytes, CopyBytes     int64
	Heap                 Heap
	RowsPerSec, CopyRate float64
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// Heap is what PeakHeap saw.
type Heap struct {
	// Peak is the most heap in use (live objects and garbage not yet collected) sampled;
	// PeakLive the most live heap any collection found: what the work kept, whatever the
	// collector's pacing.
	Peak, PeakLive uint64
	// Start is the heap in use before (after a collection).
	Start uint64
}

// PeakHeap runs fn while sampling the heap every millisecond (runtime/metrics, which does
// not stop the world) and reports the highest figures seen.
func PeakHeap(fn func()) Heap {
	runtime.GC()
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(samples)
	h := Heap{Start: samples[0].Value.Uint64()}
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	sample := func() {
		metrics.Read(samples)
		mu.Lock()
		h.Peak, h.PeakLive = max(h.Peak, samples[0].Value.Uint64()), max(h.PeakLive, samples[1].Value.Uint64())
		mu.Unlock()
	}
	wg.Go(func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				sample()
			}
		}
	})
	fn()
	close(stop)
	wg.Wait()
	sample()
	return h
}

// Exports measures the export of N LLM calls, CSV and NDJSON, against PostgreSQL's own
// COPY … TO STDOUT (CSV) of the same rows in the same run, and samples the heap.
func Exports(ctx context.Context, pool *pgxpool.Pool, o ExportOptions) ([]ExportResult, error) {
	var out []ExportResult
	fmt.Fprintf(o.Out, "\n== export of LLM calls (28 columns), each beside COPY (SELECT … ) TO STDOUT CSV of the same rows ==\n")
	for _, n := range o.Rows {
		f, err := setupFixture(ctx, pool, 1, false)
		if err != nil {
			return out, err
		}
		org := f.org.Organization.Id
		prj, err := dbsqlc.New().ProjectList(ctx, pool, dbsqlc.ProjectListParams{OrgID: org, Max: 1})
		if err != nil || len(prj) == 0 {
			return out, fmt.Errorf("bench project: %v", err)
		}
		if err := SeedCalls(ctx, pool, org, prj[0].ID, f.agents[0], f.org.APIKey.Id, n, time.Now().Add(-48*time.Hour)); err != nil {
			return out, fmt.Errorf("seed calls: %w", err)
		}
		for _, format := range []export.Format{export.CSV, export.NDJSON} {
			r := ExportResult{Rows: n, Format: format}
			// The yardstick: PostgreSQL writing the same rows as CSV itself.
			conn, err := pool.Acquire(ctx)
			if err != nil {
				return out, err
			}
			var cw countingWriter
			t0 := time.Now()
			_, err = conn.Conn().PgConn().CopyTo(ctx, &cw, `COPY (SELECT * FROM llm_calls WHERE org_id = '`+org+`' ORDER BY started_at, id) TO STDOUT (FORMAT csv, HEADER)`)
			r.Copy, r.CopyBytes = time.Since(t0), cw.n
			conn.Release()
			if err != nil {
				return out, err
			}
			var w countingWriter
			var rows int64
			var xerr error
			r.Heap = PeakHeap(func() {
				t0 = time.Now()
				rows, xerr = export.Write(ctx, pool, export.Request{OrgID: org, Dataset: export.LlmCalls, Format: format}, &w)
				r.Elapsed = time.Since(t0)
			})
			if xerr != nil {
				return out, xerr
			}
			if rows != int64(n) {
				return out, fmt.Errorf("exported %d rows of %d", rows, n)
			}
			r.Bytes = w.n
			r.RowsPerSec, r.CopyRate = float64(n)/r.Elapsed.Seconds(), float64(n)/r.Copy.Seconds()
			out = append(out, r)
			fmt.Fprintf(o.Out, "%9d rows %-6s governor %9.0f rows/s (%s, %5.1f MB) | COPY csv %9.0f rows/s (%s, %5.1f MB) | %.2f× COPY | heap peak %5.1f MiB, live %5.1f MiB (%.1f MiB before)\n",
				n, format, r.RowsPerSec, round(r.Elapsed), float64(r.Bytes)/1e6, r.CopyRate, round(r.Copy), float64(r.CopyBytes)/1e6,
				r.RowsPerSec/r.CopyRate, mib(r.Heap.Peak), mib(r.Heap.PeakLive), mib(r.Heap.Start))
		}
	}
	return out, nil
}
