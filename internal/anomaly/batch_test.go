package anomaly_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/api"
	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/anomaly"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// tenant is an organization with agents (each with its own ingest key) and a month of
// daily usage, some agents spiking yesterday.
type tenant struct {
	org    string
	agents []string
	spiky  map[string]bool
}

func seedTenant(t *testing.T, pool *pgxpool.Pool, agents, spiky int) tenant {
	t.Helper()
	ctx := context.Background()
	res, err := api.Bootstrap(ctx, pool, "test", api.BootstrapInput{OrgName: t.Name() + ids.New("x"), AdminEmail: "a@example.com"})
	require.NoError(t, err)
	tn := tenant{org: res.Organization.Id, spiky: map[string]bool{}}
	project := ids.New(ids.Project)
	_, err = pool.Exec(ctx, "INSERT INTO projects (org_id, id, name) VALUES ($1, $2, 'p')", tn.org, project)
	require.NoError(t, err)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	b := &pgx.Batch{}
	for i := range agents {
		agent, key := ids.New(ids.Agent), ids.New(ids.APIKey)
		tn.agents = append(tn.agents, agent)
		hash := make([]byte, 32)
		_, _ = rand.Read(hash)
		b.Queue("INSERT INTO agents (org_id, id, project_id, name) VALUES ($1, $2, $3, $4)", tn.org, agent, project, fmt.Sprintf("agent %d", i))
		b.Queue(`INSERT INTO api_keys (org_id, id, name, kind, prefix, secret_hash, project_id, agent_id)
		         VALUES ($1, $2, 'k', 'ingest', 'gvk_test', $3, $4, $5)`, tn.org, key, hash, project, agent)
		level := float64(2+i%7) * 1_000_000
		for d := 28; d >= 1; d-- {
			cost := level * (1 + 0.1*math.Sin(float64(d*(i+3))))
			if d == 1 && i < spiky {
				cost = level * 6
				tn.spiky[agent] = true
			}
			run := ids.New(ids.Run)
			at := today.AddDate(0, 0, -d).Add(10 * time.Hour)
			b.Queue(`INSERT INTO runs (org_id, id, project_id, agent_id, api_key_id, model, status, admitted_at, settled_at, cost_micros, latency_ms)
			         VALUES ($1, $2, $3, $4, $5, 'gpt-4o', 'succeeded', $6, $6, $7, 500)`, tn.org, run, project, agent, key, at, int64(cost))
			b.Queue(`INSERT INTO cost_records (org_id, id, run_id, project_id, agent_id, api_key_id, model, feature, cost_micros,
			         input_tokens, output_tokens, run_status, recorded_at, latency_ms)
			         VALUES ($1, $2, $3, $4, $5, $6, 'gpt-4o', '', $7, 100, 10, 'succeeded', $8, 500)`,
				tn.org, ids.New(ids.CostRecord), run, project, agent, key, int64(cost), at)
		}
	}
	require.NoError(t, pool.SendBatch(ctx, b).Close())
	return tn
}

func found(t *testing.T, pool *pgxpool.Pool, org string) []string {
	t.Helper()
	rows, err := dbsqlc.New().AnomalyList(context.Background(), pool, dbsqlc.AnomalyListParams{OrgID: org, Types: []string{}, Severities: []string{},
		Metrics: []string{}, Max: 10_000})
	require.NoError(t, err)
	var out []string
	for _, a := range rows {
		out = append(out, a.EntityType+"/"+a.Metric+"/"+a.Severity)
	}
	sort.Strings(out)
	return out
}

// A detection stopped after three pages (as a worker crash would stop it) resumes from
// its last heartbeat: the second run evaluates only the pages left and rolls up nothing
// again, and the result is the same as an uninterrupted run on the same data.
func TestDetectorResumesFromItsLastPage(t *testing.T) {
	t.Parallel()
	pool := testenv.DB(t)
	crashed := seedTenant(t, pool, 30, 6)
	clean := seedTenant(t, pool, 30, 6)
	d := anomaly.NewDetector(pool, slog.Default())
	d.PageSize = 8 // 30 agents + 30 keys + 1 model + the organization: 8 pages
	// One clock for every run below, at noon of the seeded "today": a run just after
	// midnight would find yesterday not yet sealed (sealGrace) and roll it up again, and
	// runs on both sides of midnight would not agree on the last complete day.
	now := time.Now().UTC().Truncate(24 * time.Hour).Add(12 * time.Hour)
	d.Now = func() time.Time { return now }

	sum, err := d.Run(context.Background(), anomaly.Request{OrgID: clean.org, WorkflowID: "wf-clean"}, anomaly.Progress{}, nil)
	require.NoError(t, err)
	require.Equal(t, 8, sum.Pages)
	require.Equal(t, 29, sum.DaysRolledUp)
	want := found(t, pool, clean.org)
	require.NotEmpty(t, want)

	ctx, crash := context.WithCancel(context.Background())
	var last anomaly.Progress
	_, err = d.Run(ctx, anomaly.Request{OrgID: crashed.org, WorkflowID: "wf-crashed"}, anomaly.Progress{}, func(p anomaly.Progress) {
		last = p
		if p.Pages == 3 {
			crash()
		}
	})
	require.Error(t, err)
	require.Equal(t, 3, last.Pages)
	require.NotEmpty(t, last.AfterID)

	pages := 0
	sum, err = d.Run(context.Background(), anomaly.Request{OrgID: crashed.org, WorkflowID: "wf-crashed"}, last, func(p anomaly.Progress) {
		if p.Pages > last.Pages+pages {
			pages++
		}
	})
	require.NoError(t, err)
	require.Equal(t, 5, pages, "only the pages left")
	require.Equal(t, 0, sum.DaysRolledUp, "the rollups survived the crash")
	require.Equal(t, 8, sum.Pages)
	require.Equal(t, want, found(t, pool, crashed.org), "the same anomalies as an uninterrupted run")

	// The agents that spiked, and no other agent, are anomalous.
	rows, err := dbsqlc.New().AnomalyList(context.Background(), pool, dbsqlc.AnomalyListParams{OrgID: crashed.org, Types: []string{},
		Severities: []string{}, Metrics: []string{}, EntityType: "agent", Max: 1000})
	require.NoError(t, err)
	agents := map[string]bool{}
	for _, a := range rows {
		agents[a.EntityID] = true
	}
	require.Equal(t, crashed.spiky, agents)

	// Once more from scratch: nothing new.
	sum, err = d.Run(context.Background(), anomaly.Request{OrgID: crashed.org, WorkflowID: "wf-again"}, anomaly.Progress{}, nil)
	require.NoError(t, err)
	require.Zero(t, sum.AnomaliesCreated)
	require.Equal(t, len(want), sum.AnomaliesFound)
}

// Scheduled batches evaluate the days each organization has due: after an outage, the
// days it missed (up to a week), and nothing twice.
func TestScheduledDetectionCatchesUpOnMissedDays(t *testing.T) {
	t.Parallel()
	pool := testenv.DB(t)
	tn := seedTenant(t, pool, 3, 1)
	ctx := context.Background()
	d := anomaly.NewDetector(pool, slog.Default())
	today := time.Now().UTC().Truncate(24 * time.Hour)
	d.Now = func() time.Time { return today.AddDate(0, 0, -3).Add(time.Hour) }
	sum, err := d.Run(ctx, anomaly.Request{OrgID: tn.org, WorkflowID: "sched-1", Scheduled: true}, anomaly.Progress{}, nil)
	require.NoError(t, err)
	require.Equal(t, []string{today.AddDate(0, 0, -4).Format(anomaly.DayLayout)}, sum.Days)

	d.Now = func() time.Time { return today.Add(time.Hour) } // three days later
	sum, err = d.Run(ctx, anomaly.Request{OrgID: tn.org, WorkflowID: "sched-2", Scheduled: true}, anomaly.Progress{}, nil)
	require.NoError(t, err)
	require.Equal(t, []string{today.AddDate(0, 0, -3).Format(anomaly.DayLayout), today.AddDate(0, 0, -2).Format(anomaly.DayLayout),
		today.AddDate(0, 0, -1).Format(anomaly.DayLayout)}, sum.Days)
	require.Positive(t, sum.AnomaliesCreated, "yesterday's spike")

	sum, err = d.Run(ctx, anomaly.Request{OrgID: tn.org, WorkflowID: "sched-3", Scheduled: true}, anomaly.Progress{}, nil)
	require.NoError(t, err)
	require.Empty(t, sum.Days, "nothing due")
}
