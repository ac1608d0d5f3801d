// Package analytics answers "how much am I spending, and where?" and "is the system
// okay?" from pre-aggregated rollups: the roller that keeps them (exactly once, from the
// queue the write path's triggers fill), the general usage query, and the overview.
package analytics

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/analytics/usage"
	"github.com/governor-hq/governor/internal/limits"
)

// Service is the analytics domain.
type Service struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	now  func() time.Time
}

// New returns the analytics service.
func New(pool *pgxpool.Pool, log *slog.Logger) *Service {
	return &Service{pool: pool, log: log, now: time.Now}
}

// Errors the API maps to codes.
var (
	ErrNotFound = errors.New("not found")
	ErrInvalid  = errors.New("invalid argument")
)

// RollBatch is how many queue rows one roll takes.
const RollBatch = 5000

// Rolled is what one roll did.
type Rolled struct {
	Records int
	Rows    int
	// Drained: the queue was empty at Through (everything committed before it is in the
	// rollups).
	Drained bool
	Through time.Time
	Locked  bool
}

// roll takes up to max rows of org's queue and adds them to the rollups, in the caller's
// transaction (so the queue rows go if and only if the rollups get them). wait chooses
// between waiting for a concurrent roll of the same organization and giving up at once.
func (s *Service) roll(ctx context.Context, tx pgx.Tx, org string, max int, wait bool) (Rolled, error) {
	q := dbsqlc.New()
	var out Rolled
	if wait {
		l, err := q.AnalyticsRollLock(ctx, tx, org)
		if err != nil {
			return out, err
		}
		out.Through, out.Locked = l.At, true
	} else {
		l, err := q.AnalyticsRollTryLock(ctx, tx, org)
		if err != nil || !l.Locked {
			return out, err
		}
		out.Through, out.Locked = l.At, true
	}
	tagKey := ""
	if st, err := q.AnalyticsSettingsGet(ctx, tx, org); err == nil {
		tagKey = st.TagKey
	} else if !errors.Is(err, pgx.ErrNoRows) {
		return out, err
	}
	claimed, err := q.AnalyticsPendingClaim(ctx, tx, dbsqlc.AnalyticsPendingClaimParams{OrgID: org, Max: int32(max)})
	if err != nil {
		return out, err
	}
	out.Records = len(claimed)
	if len(claimed) > 0 {
		out.Through = claimed[0].ClaimedAt
	}
	facts, negative, err := s.factsOf(ctx, tx, org, tagKey, claimed)
	if err != nil {
		return out, err
	}
	rows := map[usage.Key]*usage.Measures{}
	usage.Rollup(facts, rows)
	out.Rows = len(rows)
	if err := writeRollups(ctx, tx, org, rows); err != nil {
		return out, err
	}
	if negative {
		if err := pruneRollups(ctx, tx, org, rows); err != nil {
			return out, err
		}
	}
	if len(claimed) < max {
		out.Drained = true
		if err := q.AnalyticsMarkRolled(ctx, tx, dbsqlc.AnalyticsMarkRolledParams{OrgID: org, At: &out.Through}); err != nil {
			return out, err
		}
	}
	return out, nil
}

// Roll rolls up to max queue rows of org in a transaction of its own, waiting for a
// concurrent roll of the same organization (wait) or skipping it.
func (s *Service) Roll(ctx context.Context, org string, max int, wait bool) (Rolled, error) {
	var out Rolled
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		out, err = s.roll(ctx, tx, org, max, wait)
		return err
	})
	return out, err
}

// DefaultRollEvery is how often a roller looks for queued records: reads answer from the
// rollups (a read writes nothing), so this is how far behind they usually are. A look at
// an empty queue is one indexed query.
const DefaultRollEvery = 250 * time.Millisecond

// RunRoller keeps every organization's rollups current until ctx ends: it rolls what is
// queued, then looks again after `every`. Any number of processes may run it (each
// organization is rolled by one at a time).
func (s *Service) RunRoller(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultRollEvery
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.RollAll(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("analytics roller", "err", err)
		}
		t.Reset(every)
	}
}

// RollAll rolls every organization's queue until it is empty (or another process is
// rolling it).
func (s *Service) RollAll(ctx context.Context) error {
	orgs, err := dbsqlc.New().AnalyticsPendingOrgs(ctx, s.pool, 1000)
	if err != nil {
		return err
	}
	for _, org := range orgs {
		for ctx.Err() == nil {
			r, err := s.Roll(ctx, org, RollBatch, false)
			if err != nil {
				return fmt.Errorf("roll %s: %w", org, err)
			}
			if !r.Locked || r.Drained {
				break
			}
		}
	}
	return ctx.Err()
}

func runOf(r dbsqlc.AnalyticsRunsRow) usage.Run {
	u := usage.Run{ProjectID: r.ProjectID, AgentID: r.AgentID, APIKeyID: r.ApiKeyID, Model: r.Model, Feature: r.Feature,
		Tag: r.Tag, Status: r.Status, AdmittedAt: r.AdmittedAt, Warned: r.Warned}
	if r.Status == usage.StatusBlocked {
		switch {
		case r.BlockedByPolicy:
			u.BlockReason = usage.ReasonPolicy
		case r.BlockedMetric == limits.MetricRequests:
			u.BlockReason = usage.ReasonRate
		default:
			u.BlockReason = usage.ReasonLimit
		}
	}
	return u
}

func callOf(c dbsqlc.AnalyticsCallsOfRunsRow) usage.Call {
	return usage.Call{ID: c.ID, ProjectID: c.ProjectID, AgentID: c.AgentID, APIKeyID: c.ApiKeyID, Provider: c.Provider,
		Model: c.Model, Feature: c.Feature, Input: c.InputTokens, Output: c.OutputTokens, CacheRead: c.CacheReadTokens,
		CacheWrite: c.CacheWriteTokens, Reason: c.ReasoningTokens, Cost: c.CostMicros, LatencyMs: c.LatencyMs,
		Error: c.Status == "error", StartedAt: c.StartedAt}
}

// factsOf loads what the claimed queue rows point at and turns it into facts. negative
// reports whether some take something back (rows may then sum to nothing).
func (s *Service) factsOf(ctx context.Context, tx pgx.Tx, org, tagKey string, claimed []dbsqlc.AnalyticsPendingClaimRow) ([]usage.Fact, bool, error) {
	q := dbsqlc.New()
	var runIDs, costIDs, callIDs, settleRuns []string
	for _, c := range claimed {
		switch c.Kind {
		case "admitted", "expired", "unexpired":
			runIDs = append(runIDs, c.RefID)
			if c.Kind != "admitted" {
				settleRuns = append(settleRuns, c.RefID)
			}
		case "settled":
			costIDs = append(costIDs, c.RefID)
		case "call":
			callIDs = append(callIDs, c.RefID)
		}
	}
	costs := map[string]dbsqlc.AnalyticsCostRecordsRow{}
	if len(costIDs) > 0 {
		rows, err := q.AnalyticsCostRecords(ctx, tx, dbsqlc.AnalyticsCostRecordsParams{OrgID: org, Ids: costIDs})
		if err != nil {
			return nil, false, err
		}
		for _, r := range rows {
			costs[r.ID] = r
			runIDs = append(runIDs, r.RunID)
			settleRuns = append(settleRuns, r.RunID)
		}
	}
	lone := map[string]dbsqlc.AnalyticsCallsRow{}
	if len(callIDs) > 0 {
		rows, err := q.AnalyticsCalls(ctx, tx, dbsqlc.AnalyticsCallsParams{OrgID: org, Ids: callIDs, TagKey: tagKey})
		if err != nil {
			return nil, false, err
		}
		for _, r := range rows {
			lone[r.ID] = r
			if r.RunID != nil {
				runIDs = append(runIDs, *r.RunID)
			}
		}
	}
	runs := map[string]usage.Run{}
	if len(runIDs) > 0 {
		rows, err := q.AnalyticsRuns(ctx, tx, dbsqlc.AnalyticsRunsParams{OrgID: org, Ids: dedupe(runIDs), TagKey: tagKey})
		if err != nil {
			return nil, false, err
		}
		for _, r := range rows {
			runs[r.ID] = runOf(r)
		}
	}
	callsOf := map[string][]usage.Call{}
	if len(settleRuns) > 0 {
		rows, err := q.AnalyticsCallsOfRuns(ctx, tx, dbsqlc.AnalyticsCallsOfRunsParams{OrgID: org, RunIds: dedupe(settleRuns)})
		if err != nil {
			return nil, false, err
		}
		for _, r := range rows {
			callsOf[*r.RunID] = append(callsOf[*r.RunID], callOf(r))
		}
		for _, cs := range callsOf {
			slices.SortFunc(cs, func(a, b usage.Call) int { return strings.Compare(a.ID, b.ID) })
		}
	}
	var facts []usage.Fact
	negative := false
	missing := 0
	for _, c := range claimed {
		switch c.Kind {
		case "admitted":
			r, ok := runs[c.RefID]
			if !ok {
				missing++
				continue
			}
			facts = append(facts, usage.Admitted(r))
		case "expired", "unexpired":
			r, ok := runs[c.RefID]
			if !ok {
				missing++
				continue
			}
			if c.Kind == "expired" {
				facts = append(facts, usage.Expired(r, c.At, callsOf[c.RefID])...)
			} else {
				facts = append(facts, usage.Unexpired(r, c.At, callsOf[c.RefID])...)
				negative = true
			}
		case "settled":
			cr, ok := costs[c.RefID]
			r, rok := runs[cr.RunID]
			if !ok || !rok {
				missing++
				continue
			}
			facts = append(facts, usage.Settled(r, usage.CostRecord{Cost: cr.CostMicros, Input: cr.InputTokens, Output: cr.OutputTokens,
				Status: cr.RunStatus, LatencyMs: cr.LatencyMs, At: cr.RecordedAt}, callsOf[cr.RunID])...)
		case "call":
			lc, ok := lone[c.RefID]
			if !ok {
				missing++
				continue
			}
			call := callOf(dbsqlc.AnalyticsCallsOfRunsRow{ID: lc.ID, ProjectID: lc.ProjectID, AgentID: lc.AgentID, ApiKeyID: lc.ApiKeyID,
				Model: lc.Model, Provider: lc.Provider, Feature: lc.Feature, InputTokens: lc.InputTokens, OutputTokens: lc.OutputTokens,
				CacheReadTokens: lc.CacheReadTokens, CacheWriteTokens: lc.CacheWriteTokens, ReasoningTokens: lc.ReasoningTokens,
				CostMicros: lc.CostMicros, LatencyMs: lc.LatencyMs, Status: lc.Status, StartedAt: lc.StartedAt})
			call.Tag = lc.Tag
			var run *usage.Run
			if lc.RunID != nil {
				if r, ok := runs[*lc.RunID]; ok {
					run = &r
				}
			}
			facts = append(facts, usage.LoneCall(call, run))
		}
	}
	if missing > 0 {
		// Only a deleted raw record can cause this (nothing deletes them): say so loudly.
		s.log.Error("analytics: queued records not found; they are not in the rollups", "org", org, "missing", missing)
	}
	return facts, negative, nil
}

func dedupe(ids []string) []string {
	slices.Sort(ids)
	return slices.Compact(ids)
}

func sortedKeys(rows map[usage.Key]*usage.Measures) []usage.Key {
	keys := make([]usage.Key, 0, len(rows))
	for k := range rows {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b usage.Key) int {
		if c := cmp.Compare(a.Cube, b.Cube); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Grain, b.Grain); c != 0 {
			return c
		}
		if c := a.Bucket.Compare(b.Bucket); c != 0 {
			return c
		}
		for i := range a.Dims {
			if c := strings.Compare(a.Dims[i], b.Dims[i]); c != 0 {
				return c
			}
		}
		return 0
	})
	return keys
}

// writeRollups adds rows to the rollups in key order (one statement per few thousand).
func writeRollups(ctx context.Context, tx pgx.Tx, org string, rows map[usage.Key]*usage.Measures) error {
	keys := sortedKeys(rows)
	const chunk = 4000
	for len(keys) > 0 {
		n := min(chunk, len(keys))
		var p dbsqlc.AnalyticsRollupsAddParams
		p.OrgID = org
		for _, k := range keys[:n] {
			m := rows[k]
			p.Cubes, p.Grains, p.BucketStarts = append(p.Cubes, k.Cube), append(p.Grains, k.Grain), append(p.BucketStarts, k.Bucket)
			d := k.Dims
			p.ProjectIds, p.AgentIds, p.ApiKeyIds = append(p.ProjectIds, d[usage.Project]), append(p.AgentIds, d[usage.Agent]), append(p.ApiKeyIds, d[usage.APIKey])
			p.Providers, p.Models, p.Features = append(p.Providers, d[usage.Provider]), append(p.Models, d[usage.Model]), append(p.Features, d[usage.Feature])
			p.RunStatuss, p.Tags = append(p.RunStatuss, d[usage.RunStatus]), append(p.Tags, d[usage.Tag])
			p.CostMicros, p.InputTokens, p.OutputTokens = append(p.CostMicros, m.Cost), append(p.InputTokens, m.Input), append(p.OutputTokens, m.Output)
			p.CacheReadTokens, p.CacheWriteTokens, p.ReasoningTokens = append(p.CacheReadTokens, m.CacheRead), append(p.CacheWriteTokens, m.CacheWrite), append(p.ReasoningTokens, m.Reasoning)
			p.RunsSucceeded, p.RunsFailed, p.RunsCancelled = append(p.RunsSucceeded, m.Succeeded), append(p.RunsFailed, m.Failed), append(p.RunsCancelled, m.Cancelled)
			p.RunsExpired, p.RunsBlocked, p.Admitted = append(p.RunsExpired, m.Expired), append(p.RunsBlocked, m.Blocked), append(p.Admitted, m.Admitted)
			p.BlockedLimit, p.BlockedPolicy, p.BlockedRate = append(p.BlockedLimit, m.BlockedLimit), append(p.BlockedPolicy, m.BlockedPolicy), append(p.BlockedRate, m.BlockedRate)
			p.Warned, p.Calls, p.CallErrors, p.CacheHitCalls = append(p.Warned, m.Warned), append(p.Calls, m.Calls), append(p.CallErrors, m.CallErrors), append(p.CacheHitCalls, m.CacheHitCalls)
			rl, err := json.Marshal(m.RunLatency)
			if err != nil {
				return err
			}
			cl, err := json.Marshal(m.CallLatency)
			if err != nil {
				return err
			}
			p.RunLatencies, p.CallLatencies = append(p.RunLatencies, rl), append(p.CallLatencies, cl)
		}
		if err := dbsqlc.New().AnalyticsRollupsAdd(ctx, tx, p); err != nil {
			return fmt.Errorf("add rollups: %w", err)
		}
		keys = keys[n:]
	}
	return nil
}

// pruneRollups deletes rows that a retraction brought back to nothing.
func pruneRollups(ctx context.Context, tx pgx.Tx, org string, rows map[usage.Key]*usage.Measures) error {
	cubes, grains, buckets := map[int16]bool{}, map[int16]bool{}, map[time.Time]bool{}
	for k := range rows {
		cubes[k.Cube], grains[k.Grain], buckets[k.Bucket] = true, true, true
	}
	p := dbsqlc.AnalyticsRollupsPruneParams{OrgID: org}
	for c := range cubes {
		p.Cubes = append(p.Cubes, c)
	}
	for g := range grains {
		p.Grains = append(p.Grains, g)
	}
	for b := range buckets {
		p.BucketStarts = append(p.BucketStarts, b)
	}
	return dbsqlc.New().AnalyticsRollupsPrune(ctx, tx, p)
}
