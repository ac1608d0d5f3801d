package runs

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/actor"
	"github.com/governor-hq/governor/internal/authz"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/limits"
	"github.com/governor-hq/governor/internal/pricing"
	"github.com/governor-hq/governor/internal/lifecycle"
)

// AdmitRequest is one run asking to start.
type AdmitRequest struct {
	Caller      authz.Principal
	RequestID   string
	AgentID     string
	Model       string
	Feature     string
	Tags        map[string]string
	Estimate    Estimate
	ClientRunID string
	Lease       time.Duration
}

// AdmitResult is the decision. A blocked run is a result, not an error: Run.Status is
// "blocked" and Decision.Blocking names the limit.
type AdmitResult struct {
	Run      dbsqlc.Run
	Decision limits.Decision
	Replayed bool
}

// Admitter decides admissions. Concurrent requests are grouped: one transaction decides a
// whole batch, taking each counter's row lock once per batch instead of once per run, so
// a hot budget admits many runs per commit. Decisions within a batch are made one after
// the other, exactly as if each had its own transaction.
type Admitter struct {
	pool     *pgxpool.Pool
	log      *slog.Logger
	lease    time.Duration
	maxBatch int
	queue    chan *pendingAdmit
	// committed is called after each batch commits (it wakes the outbox relay).
	committed func()
	// afterCommit, when set, runs after a batch commits and before results are returned:
	// fault injection for tests that kill the process between decision and workflow start.
	afterCommit func()
	now         func() time.Time
}

type pendingAdmit struct {
	req  AdmitRequest
	done chan admitOutcome
}

type admitOutcome struct {
	res AdmitResult
	err error
}

// AdmitterOptions configure an Admitter.
type AdmitterOptions struct {
	// DefaultLease is used when a request does not give one.
	DefaultLease time.Duration
	// MaxBatch bounds how many admissions one transaction decides (default 256).
	MaxBatch int
	// Committed is called after every committed batch.
	Committed func()
	// AfterCommit is a fault-injection hook (see Admitter).
	AfterCommit func()
}

// NewAdmitter returns an admitter; Run must be running for Admit to make progress.
func NewAdmitter(pool *pgxpool.Pool, log *slog.Logger, o AdmitterOptions) *Admitter {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.DefaultLease <= 0 {
		o.DefaultLease = 15 * time.Minute
	}
	return &Admitter{
		pool: pool, log: log, lease: o.DefaultLease, maxBatch: o.MaxBatch,
		queue: make(chan *pendingAdmit, 4*o.MaxBatch), committed: o.Committed, afterCommit: o.AfterCommit,
		now: time.Now,
	}
}

// Admit decides one run. It returns when the decision is committed.
func (a *Admitter) Admit(ctx context.Context, req AdmitRequest) (AdmitResult, error) {
	p := &pendingAdmit{req: req, done: make(chan admitOutcome, 1)}
	select {
	case a.queue <- p:
	case <-ctx.Done():
		return AdmitResult{}, ctx.Err()
	}
	select {
	case out := <-p.done:
		return out.res, out.err
	case <-ctx.Done():
		// The decision may still commit; a retry with the same client_run_id finds it.
		return AdmitResult{}, ctx.Err()
	}
}

// Run decides batches until ctx ends.
func (a *Admitter) Run(ctx context.Context) {
	var carry []*pendingAdmit
	for {
		batch := carry
		carry = nil
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return
			case p := <-a.queue:
				batch = append(batch, p)
			}
		}
	drain:
		for len(batch) < a.maxBatch {
			select {
			case p := <-a.queue:
				batch = append(batch, p)
			default:
				break drain
			}
		}
		// Two requests with one client_run_id cannot be decided in one batch (the second
		// must see the first's run): later ones wait for the next batch.
		batch, carry = splitDuplicates(batch)
		a.decide(ctx, batch)
	}
}

func splitDuplicates(batch []*pendingAdmit) (now, later []*pendingAdmit) {
	seen := map[string]bool{}
	for _, p := range batch {
		if id := p.req.ClientRunID; id != "" {
			k := p.req.Caller.OrgID + "\x00" + id
			if seen[k] {
				later = append(later, p)
				continue
			}
			seen[k] = true
		}
		now = append(now, p)
	}
	return now, later
}

// decide runs one batch; if the batch's transaction fails as a whole, each request is
// retried alone so that one bad request cannot fail the others.
func (a *Admitter) decide(ctx context.Context, batch []*pendingAdmit) {
	results, err := a.decideBatch(context.WithoutCancel(ctx), batch)
	if err != nil && len(batch) > 1 {
		a.log.Warn("admission batch failed; deciding its requests one by one", "size", len(batch), "err", err)
		for _, p := range batch {
			a.decide(ctx, []*pendingAdmit{p})
		}
		return
	}
	for i, p := range batch {
		if err != nil {
			p.done <- admitOutcome{err: err}
			continue
		}
		p.done <- results[i]
	}
}

type admitItem struct {
	p        *pendingAdmit
	outcome  *admitOutcome
	subject  Subject
	request  limits.Request
	planned  planned
	estCost  int64
	replayed *dbsqlc.Run
}

func (a *Admitter) decideBatch(ctx context.Context, batch []*pendingAdmit) ([]admitOutcome, error) {
	outcomes := make([]admitOutcome, len(batch))
	now := a.now().UTC().Truncate(time.Microsecond)
	tx, err := a.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	q := dbsqlc.New()

	items, err := a.load(ctx, tx, batch, outcomes, now)
	if err != nil {
		return nil, err
	}

	// Lock every counter the batch touches, in one global order, release their expired
	// reservations, and read them.
	keySet := map[counterKey]bool{}
	for _, it := range items {
		for _, k := range it.planned.keys {
			keySet[k] = true
		}
	}
	keys := slices.Collect(maps.Keys(keySet))
	sortKeys(keys)
	counters := map[counterKey]*limits.Counter{}
	if len(keys) > 0 {
		lids, wins := keyArrays(keys)
		if err := q.CountersEnsure(ctx, tx, dbsqlc.CountersEnsureParams{LimitIds: lids, WindowStarts: wins}); err != nil {
			return nil, err
		}
		if _, err := q.CountersLock(ctx, tx, dbsqlc.CountersLockParams{LimitIds: lids, WindowStarts: wins}); err != nil {
			return nil, err
		}
		if err := q.ReservationsReleaseExpired(ctx, tx, dbsqlc.ReservationsReleaseExpiredParams{LimitIds: lids, WindowStarts: wins}); err != nil {
			return nil, err
		}
		rows, err := q.CountersGet(ctx, tx, dbsqlc.CountersGetParams{LimitIds: lids, WindowStarts: wins})
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			counters[counterKey{r.LimitID, r.WindowStart.UTC()}] = &limits.Counter{Used: r.Used, Reserved: r.Reserved}
		}
	}

	// Decide in arrival order, each decision seeing the reservations of those before it.
	reserve := map[counterKey]int64{}
	var runs []dbsqlc.RunsInsertParams
	var reservations []dbsqlc.ReservationsInsertParams
	var evs []dbsqlc.EventsInsertParams
	var outbox []dbsqlc.OutboxInsertParams
	for _, it := range items {
		if it.replayed != nil {
			it.outcome.res = AdmitResult{Run: *it.replayed, Replayed: true}
			continue
		}
		checks := it.planned.checks
		for i, k := range it.planned.keys {
			c := counters[k]
			if c == nil {
				return nil, fmt.Errorf("counter %s@%s missing after ensure", k.limitID, k.window)
			}
			checks[i].Used, checks[i].Reserved = c.Used, c.Reserved
		}
		d := limits.Decide(checks)
		r := it.p.req
		lease := r.Lease
		if lease <= 0 {
			lease = a.lease
		}
		expires := now.Add(lease)
		tags, _ := json.Marshal(nonNilTags(r.Tags))
		row := dbsqlc.RunsInsertParams{
			OrgID: it.subject.OrgID, ID: ids.New(ids.Run), ProjectID: it.subject.ProjectID, AgentID: it.subject.AgentID,
			ApiKeyID: it.subject.APIKeyID, Model: r.Model, Feature: r.Feature, Tags: tags,
			EstCostMicros: it.estCost, EstInputTokens: r.Estimate.InputTokens, EstOutputTokens: r.Estimate.OutputTokens,
			AdmittedAt: now,
		}
		if len(d.Warnings) > 0 {
			row.Warnings, _ = json.Marshal(Records(d.Warnings))
		}
		ev := dbsqlc.EventsInsertParams{
			ID: ids.New(ids.Event), OrgID: row.OrgID, OccurredAt: now, Domain: events.DomainRuns,
			EntityType: "run", EntityID: row.ID, CorrelationID: row.ID,
			ActorKind: actor.KindAPIKey, ActorApiKeyID: r.Caller.APIKeyID, ActorUserID: r.Caller.UserID,
		}
		ev.Related, _ = json.Marshal([]events.Ref{{Type: "agent", ID: row.AgentID}, {Type: "project", ID: row.ProjectID}, {Type: "api_key", ID: row.ApiKeyID}})
		if d.Admitted() {
			row.Status = "admitted"
			row.LeaseExpiresAt = &expires
			if r.ClientRunID != "" {
				row.ClientRunID = &r.ClientRunID
			}
			for i, k := range it.planned.keys {
				amt := checks[i].Requested
				counters[k].Reserved += amt
				reserve[k] += amt
				reservations = append(reservations, dbsqlc.ReservationsInsertParams{
					RunID: row.ID, LimitID: k.limitID, WindowStart: k.window, Metric: checks[i].Limit.Metric,
					Amount: amt, ExpiresAt: expires,
				})
			}
			ev.Type = "run_admitted"
			ev.Summary = fmt.Sprintf("Run admitted for agent %s (%s)", row.AgentID, describe(row.Model, row.Feature))
			ev.Data, _ = json.Marshal(map[string]any{"model": row.Model, "feature": row.Feature, "estimate_cost_micros": it.estCost,
				"lease_expires_at": expires, "limits_checked": len(checks), "warnings": Records(d.Warnings)})
			payload, _ := json.Marshal(lifecycle.RunInput{
				OrgID: row.OrgID, RunID: row.ID, ProjectID: row.ProjectID, AgentID: row.AgentID, APIKeyID: row.ApiKeyID,
				LeaseExpiresAt: expires,
			})
			outbox = append(outbox, dbsqlc.OutboxInsertParams{
				OrgID: row.OrgID, Kind: "start", WorkflowType: lifecycle.RunWorkflowType,
				WorkflowID: lifecycle.RunWorkflowID(row.ID), Payload: payload,
			})
		} else {
			row.Status = "blocked"
			row.BlockedBy, _ = json.Marshal(Records(blockingFirst(d)))
			ev.Type = "run_blocked"
			b := d.Blocking
			ev.Summary = fmt.Sprintf("Run blocked for agent %s: %s limit %s (%s %s) has %d of %d left, run asked %d",
				row.AgentID, b.Limit.ScopeType, b.Limit.ID, b.Limit.Window, b.Limit.Metric, b.Remaining(), b.Limit.Amount, b.Requested)
			ev.Related, _ = json.Marshal([]events.Ref{{Type: "agent", ID: row.AgentID}, {Type: "project", ID: row.ProjectID},
				{Type: "api_key", ID: row.ApiKeyID}, {Type: "limit", ID: b.Limit.ID}})
			ev.Data, _ = json.Marshal(map[string]any{"model": row.Model, "feature": row.Feature, "blocking": Record(*b)})
		}
		runs = append(runs, row)
		evs = append(evs, ev)
		it.outcome.res = AdmitResult{Run: runFromInsert(row), Decision: d}
	}

	if len(reserve) > 0 {
		rk := slices.Collect(maps.Keys(reserve))
		sortKeys(rk)
		lids, wins := keyArrays(rk)
		amts := make([]int64, len(rk))
		for i, k := range rk {
			amts[i] = reserve[k]
		}
		if err := q.CountersReserve(ctx, tx, dbsqlc.CountersReserveParams{LimitIds: lids, WindowStarts: wins, Amounts: amts}); err != nil {
			return nil, err
		}
	}
	if len(runs) > 0 {
		if _, err := q.RunsInsert(ctx, tx, runs); err != nil {
			return nil, err
		}
		if _, err := q.EventsInsert(ctx, tx, evs); err != nil {
			return nil, err
		}
	}
	if len(reservations) > 0 {
		if _, err := q.ReservationsInsert(ctx, tx, reservations); err != nil {
			return nil, err
		}
	}
	if len(outbox) > 0 {
		if _, err := q.OutboxInsert(ctx, tx, outbox); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	if a.afterCommit != nil {
		a.afterCommit()
	}
	if a.committed != nil && len(outbox) > 0 {
		a.committed()
	}
	return outcomes, nil
}

// load reads what the batch's decisions need: agents, replays, limits and prices. Requests
// that fail here (unknown agent, key bound elsewhere, reused client run id) get their
// error and drop out of the batch.
func (a *Admitter) load(ctx context.Context, tx pgx.Tx, batch []*pendingAdmit, outcomes []admitOutcome, now time.Time) ([]*admitItem, error) {
	q := dbsqlc.New()
	agentIDs := make([]string, 0, len(batch))
	for _, p := range batch {
		agentIDs = append(agentIDs, p.req.AgentID)
	}
	agents, err := q.AgentsForAdmission(ctx, tx, agentIDs)
	if err != nil {
		return nil, err
	}
	byID := map[string]dbsqlc.AgentsForAdmissionRow{}
	for _, ag := range agents {
		byID[ag.ID] = ag
	}
	var items []*admitItem
	var orgs, projects, agentsOf, keysOf, clientOrgs, clientIDs []string
	models := map[string]bool{}
	for i, p := range batch {
		ag, ok := byID[p.req.AgentID]
		if !ok || ag.OrgID != p.req.Caller.OrgID {
			outcomes[i].err = ErrAgentNotFound
			continue
		}
		if !p.req.Caller.MayActForAgent(ag.ProjectID, ag.ID) {
			outcomes[i].err = ErrNotPermitted
			continue
		}
		it := &admitItem{p: p, outcome: &outcomes[i], subject: Subject{
			Subject: limits.Subject{OrgID: ag.OrgID, ProjectID: ag.ProjectID, AgentID: ag.ID,
				APIKeyID: p.req.Caller.APIKeyID, Model: p.req.Model, Feature: p.req.Feature},
			TimeZone: ag.TimeZone,
		}}
		items = append(items, it)
		orgs, projects, agentsOf, keysOf = append(orgs, ag.OrgID), append(projects, ag.ProjectID), append(agentsOf, ag.ID), append(keysOf, p.req.Caller.APIKeyID)
		if p.req.ClientRunID != "" {
			clientOrgs, clientIDs = append(clientOrgs, ag.OrgID), append(clientIDs, p.req.ClientRunID)
		}
		if p.req.Estimate.CostMicros == 0 && p.req.Model != "" {
			models[p.req.Model] = true
		}
	}
	if len(items) == 0 {
		return nil, nil
	}
	if len(clientIDs) > 0 {
		existing, err := q.RunsByClientID(ctx, tx, dbsqlc.RunsByClientIDParams{OrgIds: clientOrgs, ClientRunIds: clientIDs})
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			for _, r := range existing {
				if r.ClientRunID != nil && *r.ClientRunID == it.p.req.ClientRunID && r.OrgID == it.subject.OrgID {
					if !sameAdmission(r, it) {
						it.outcome.err = ErrClientRunIDReused
					} else {
						run := r
						it.replayed = &run
					}
				}
			}
		}
	}
	cands, err := q.LimitsForSubjects(ctx, tx, dbsqlc.LimitsForSubjectsParams{OrgIds: orgs, ProjectIds: projects, AgentIds: agentsOf, ApiKeyIds: keysOf})
	if err != nil {
		return nil, err
	}
	candidates := make([]limits.Limit, 0, len(cands))
	for _, c := range cands {
		candidates = append(candidates, FromRow(c))
	}
	var prices map[string]map[string]pricing.Price
	if len(models) > 0 {
		if prices, err = pricesOf(ctx, tx, orgs, slices.Collect(maps.Keys(models))); err != nil {
			return nil, err
		}
	}
	kept := items[:0]
	for _, it := range items {
		if it.outcome.err != nil {
			continue
		}
		if it.replayed == nil {
			e := it.p.req.Estimate
			it.estCost = estimateCost(e, it.p.req.Model, prices[it.subject.OrgID])
			it.request = limits.Request{CostMicros: it.estCost, Tokens: e.InputTokens + e.OutputTokens}
			var err error
			if it.planned, _, err = plan(it.subject, candidates, it.request, now); err != nil {
				return nil, err
			}
		}
		kept = append(kept, it)
	}
	return kept, nil
}

// sameAdmission reports whether a stored run was admitted for the same request as it.
func sameAdmission(r dbsqlc.Run, it *admitItem) bool {
	req := it.p.req
	return r.AgentID == req.AgentID && r.Model == req.Model && r.Feature == req.Feature &&
		r.ApiKeyID == req.Caller.APIKeyID && r.EstInputTokens == req.Estimate.InputTokens &&
		r.EstOutputTokens == req.Estimate.OutputTokens &&
		(req.Estimate.CostMicros == 0 || r.EstCostMicros == req.Estimate.CostMicros)
}

func blockingFirst(d limits.Decision) []limits.Check {
	out := []limits.Check{*d.Blocking}
	for _, c := range d.Checks {
		if c.Verdict == limits.Blocked && c.Limit.ID != d.Blocking.Limit.ID {
			out = append(out, c)
		}
	}
	return out
}

func nonNilTags(t map[string]string) map[string]string {
	if t == nil {
		return map[string]string{}
	}
	return t
}

func describe(model, feature string) string {
	switch {
	case model != "" && feature != "":
		return model + ", " + feature
	case model != "":
		return model
	case feature != "":
		return feature
	}
	return "no model given"
}

func runFromInsert(r dbsqlc.RunsInsertParams) dbsqlc.Run {
	return dbsqlc.Run{
		OrgID: r.OrgID, ID: r.ID, ProjectID: r.ProjectID, AgentID: r.AgentID, ApiKeyID: r.ApiKeyID, Model: r.Model,
		Feature: r.Feature, Tags: r.Tags, ClientRunID: r.ClientRunID, Status: r.Status, EstCostMicros: r.EstCostMicros,
		EstInputTokens: r.EstInputTokens, EstOutputTokens: r.EstOutputTokens, BlockedBy: r.BlockedBy,
		Warnings: r.Warnings, AdmittedAt: r.AdmittedAt, LeaseExpiresAt: r.LeaseExpiresAt,
	}
}

// IsBlocked reports whether an admission was refused.
func (r AdmitResult) IsBlocked() bool { return r.Run.Status == "blocked" }
