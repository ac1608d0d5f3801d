package api

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/governor-hq/governor/db/dbsqlc"
)

type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(pool *pgxpool.Pool) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "governor_rpc_requests_total",
			Help: "RPCs handled, by procedure and Connect code.",
		}, []string{"procedure", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "governor_rpc_duration_seconds",
			Help:    "RPC latency, by procedure.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"procedure"}),
	}
	m.registry.MustRegister(m.requests, m.duration, &stateGauges{pool: pool},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(procedure, code string, d time.Duration) {
	m.requests.WithLabelValues(procedure, code).Inc()
	m.duration.WithLabelValues(procedure).Observe(d.Seconds())
}

// stateGauges read, at scrape time, states an operator must act on; every API replica
// reports the same (shared) numbers.
type stateGauges struct{ pool *pgxpool.Pool }

var (
	deadLetteredDesc = prometheus.NewDesc("governor_settlements_dead_lettered",
		"Runs whose settlement gave up after its retries and waits for RunService.RetrySettlement.", nil, nil)
	outboxPendingDesc = prometheus.NewDesc("governor_outbox_pending",
		"Workflow starts and signals committed but not yet handed to Temporal.", nil, nil)
)

func (g *stateGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- deadLetteredDesc
	ch <- outboxPendingDesc
}

func (g *stateGauges) Collect(ch chan<- prometheus.Metric) {
	if g.pool == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	q := dbsqlc.New()
	if n, err := q.RunsDeadLetteredCount(ctx, g.pool); err == nil {
		ch <- prometheus.MustNewConstMetric(deadLetteredDesc, prometheus.GaugeValue, float64(n))
	}
	if n, err := q.OutboxPending(ctx, g.pool); err == nil {
		ch <- prometheus.MustNewConstMetric(outboxPendingDesc, prometheus.GaugeValue, float64(n))
	}
}
