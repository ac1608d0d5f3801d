// Package export streams whole datasets (cost records, LLM calls, runs, audit entries,
// incidents, anomalies) as CSV or newline-delimited JSON. Rows are read in keyset order,
// oldest first, one bounded batch per statement, and written as they are read, so an
// export holds one batch in memory whatever its size and no transaction stays open
// between batches. An export is therefore not a snapshot: rows committed while it runs
// may or may not be in it.
package export

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/export/tabular"
	"github.com/governor-hq/governor/internal/llmcalls"
)

// Dataset names a dataset (as in /export/v1/<dataset>.csv).
type Dataset string

const (
	CostRecords  Dataset = "cost_records"
	LlmCalls     Dataset = "llm_calls"
	Runs         Dataset = "runs"
	AuditEntries Dataset = "audit_entries"
	Incidents    Dataset = "incidents"
	Anomalies    Dataset = "anomalies"
)

// Datasets are every dataset, in a stable order.
var Datasets = []Dataset{CostRecords, LlmCalls, Runs, AuditEntries, Incidents, Anomalies}

// Format names a format (and the file extension).
type Format string

const (
	CSV    Format = "csv"
	NDJSON Format = "ndjson"
)

// ContentType is a format's media type.
func (f Format) ContentType() string {
	if f == NDJSON {
		return "application/x-ndjson"
	}
	// RFC 4180 and RFC 7111: the header parameter says the first line names the columns.
	return "text/csv; charset=utf-8; header=present"
}

// BatchRows is how many rows one statement reads: enough that a round trip is amortized,
// few enough that the decoded batch stays small (the next one is read meanwhile).
const BatchRows = 2500

// Request is one export.
type Request struct {
	OrgID   string
	Dataset Dataset
	Format  Format
	// Rows of [Start, End) by the dataset's time; nil: unbounded.
	Start, End *time.Time
	// Excel: a CSV with a byte-order mark and no cell that runs as a formula.
	Excel bool
	// The filter of the dataset exported (the others are ignored).
	CostRecords CostRecordFilter
	LlmCalls    llmcalls.Filter
	Runs        RunFilter
	Audit       AuditFilter
	Incidents   IncidentFilter
	Anomalies   AnomalyFilter
	// BatchRows overrides BatchRows (tests).
	BatchRows int32
}

// CostRecordFilter are ListCostRecords' filters.
type CostRecordFilter struct{ AgentID, APIKeyID, ProjectID, Model, Feature string }

// RunFilter are ListRuns' filters; statuses as stored ("succeeded").
type RunFilter struct {
	Statuses                                     []string
	AgentID, APIKeyID, ProjectID, Model, Feature string
}

// AuditFilter are ListAuditEntries' filters.
type AuditFilter struct{ EntityType, EntityID, ActorAPIKeyID, ActorUserID, Action string }

// IncidentFilter are ListIncidents' filters, as stored ("open", "high", "RUN_FAILURE").
type IncidentFilter struct {
	Statuses, Severities, Categories []string
	AgentID                          string
}

// AnomalyFilter are ListAnomalies' filters, as stored; days inclusive.
type AnomalyFilter struct {
	Types, Severities, Metrics []string
	EntityType, EntityID       string
	IncidentID, RunID          string
	FromDay, ToDay             *time.Time
}

// FileName is a name for the exported file.
func FileName(r Request) string {
	var b strings.Builder
	b.WriteString("governor-" + string(r.Dataset))
	stamp := func(t *time.Time) string {
		if t == nil {
			return "all"
		}
		return t.UTC().Format("20060102T150405Z")
	}
	if r.Start != nil || r.End != nil {
		b.WriteString("-" + stamp(r.Start) + "-" + stamp(r.End))
	}
	b.WriteString("." + string(r.Format))
	return b.String()
}

// dataset reads pages of one table and turns its rows into cells.
type dataset struct {
	cols []tabular.Column
	// page reads up to max rows after the cursor and returns how many it read, the cursor
	// after them, and the function that writes them.
	page func(ctx context.Context, db dbsqlc.DBTX, r Request, c cursor, max int32) (int, cursor, writeFunc, error)
}

// writeFunc writes a page's rows, one emit per row (the cells are reused between rows).
type writeFunc func(emit func([]tabular.Value) error) error

// cursor is the keyset position of an export: the last row's time and id (or sequence).
type cursor struct {
	t   time.Time
	id  string
	seq int64
}

// Columns returns the columns of a dataset.
func Columns(d Dataset) ([]tabular.Column, error) {
	ds, ok := datasets[d]
	if !ok {
		return nil, fmt.Errorf("unknown dataset %q", d)
	}
	return ds.cols, nil
}

// Write writes the export to w and returns how many rows it wrote. A failure part-way
// leaves w holding what was written before it.
func Write(ctx context.Context, db dbsqlc.DBTX, r Request, w io.Writer) (int64, error) {
	ds, ok := datasets[r.Dataset]
	if !ok {
		return 0, fmt.Errorf("unknown dataset %q", r.Dataset)
	}
	f := tabular.CSV
	switch r.Format {
	case CSV:
	case NDJSON:
		f = tabular.NDJSON
	default:
		return 0, fmt.Errorf("unknown format %q", r.Format)
	}
	tw, err := tabular.NewWriter(w, f, ds.cols, r.Excel)
	if err != nil {
		return 0, err
	}
	max := r.BatchRows
	if max <= 0 {
		max = BatchRows
	}
	// The next page is read while this one is written: the database and the encoding run
	// side by side, and at most two pages are in memory.
	type page struct {
		n     int
		next  cursor
		write writeFunc
		err   error
	}
	fetch := func(c cursor) <-chan page {
		ch := make(chan page, 1)
		go func() {
			n, next, write, err := ds.page(ctx, db, r, c, max)
			ch <- page{n, next, write, err}
		}()
		return ch
	}
	pending := fetch(cursor{t: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)})
	for {
		p := <-pending
		if p.err != nil {
			return tw.Rows(), p.err
		}
		full := p.n == int(max)
		if full {
			pending = fetch(p.next)
		}
		if err := p.write(tw.Row); err != nil {
			if full {
				<-pending // let the read in flight finish before returning
			}
			return tw.Rows(), err
		}
		if !full {
			break
		}
		if err := ctx.Err(); err != nil {
			<-pending
			return tw.Rows(), err
		}
	}
	return tw.Rows(), tw.Flush()
}
