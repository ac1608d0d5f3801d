package runs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/db"
	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/actor"
	"github.com/governor-hq/governor/internal/authz"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/lifecycle"
	"github.com/governor-hq/governor/internal/limits"
	"github.com/governor-hq/governor/internal/money"
	"github.com/governor-hq/governor/internal/policy"
	"github.com/governor-hq/governor/internal/pricing"
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
	// RetryOf is an earlier run of the organization this run retries (empty: none).
	RetryOf string
}

// AdmitResult is the decision. A blocked run is a result, not an error: Run.Status is
// "blocked" and Decision.Blocking names the limit.
type AdmitResult struct {
	Run      dbsqlc.Run
	Decision limits.Decision
	Replayed bool
	// PolicyRule is set when an active policy rule refused the run (then Decision is
	// empty: limits were not consulted).
	PolicyRule *policy.Rule
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
	parallel int
	queue    chan *pendingAdmit
	// committed is called after each batch commits (it wakes the outbox relay).
	committed func()
	// afterCommit, when set, runs after a batch commits and before results are returned:
	// fault injection for tests that kill the process between decision and workflow start.
	afterCommit func()
	now         func() time.Time
	timeout     time.Duration
	lockTimeout time.Duration
	// Organizations whose counters timed out, until when they are sidelined.
	busyMu sync.Mutex
	busy   map[string]time.Time
	side   chan struct{}
}

type pendingAdmit struct {
	req  AdmitRequest
	item *admitItem
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
	// Parallel is how many batches may be in flight at once (default 1: on a small
	// machine a second batch only competes with the first for the same CPU).
	Parallel int
	// Committed is called after every committed batch.
	Committed func()
	// AfterCommit is a fault-injection hook (see Admitter).
	AfterCommit func()
	// Timeout is the deadline of one batch (default 5 s); LockTimeout bounds its wait for
	// counter locks another transaction holds (default 2 s).
	Timeout     time.Duration
	LockTimeout time.Duration
}

// NewAdmitter returns an admitter; Run must be running for Admit to make progress.
func NewAdmitter(pool *pgxpool.Pool, log *slog.Logger, o AdmitterOptions) *Admitter {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.DefaultLease <= 0 {
		o.DefaultLease = 15 * time.Minute
	}
	if o.Parallel <= 0 {
		o.Parallel = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = 2 * time.Second
	}
	return &Admitter{
		pool: pool, log: log, lease: o.DefaultLease, maxBatch: o.MaxBatch, parallel: o.Parallel,
		queue: make(chan *pendingAdmit, 4*o.MaxBatch), committed: o.Committed, afterCommit: o.AfterCommit,
		now: time.Now, timeout: o.Timeout, lockTimeout: o.LockTimeout,
		busy: map[string]time.Time{}, side: make(chan struct{}, maxSideline),
	}
}

// Admit decides one run. It returns when the decision is committed.
func (a *Admitter) Admit(ctx context.Context, req AdmitRequest) (AdmitResult, error) {
	it, err := a.prepare(ctx, req)
	if err != nil {
		return AdmitResult{}, err
	}
	p := &pendingAdmit{req: req, item: it, done: make(chan admitOutcome, 1)}
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

// prepare reads what the decision needs (the agent, its organization's time zone, the
// limits that could govern the run, prices) and plans the checks. It runs in the caller's
// goroutine, concurrently with other requests, so the batch transaction holds its locks
// only for the decision and the writes.
func (a *Admitter) prepare(ctx context.Context, req AdmitRequest) (*admitItem, error) {
	rows, err := dbsqlc.New().AdmissionContext(ctx, a.pool, dbsqlc.AdmissionContextParams{
		AgentID: req.AgentID, ApiKeyID: req.Caller.APIKeyID,
	})
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 || rows[0].OrgID != req.Caller.OrgID {
		return nil, ErrAgentNotFound
	}
	ag := rows[0]
	if !req.Caller.MayActForAgent(ag.ProjectID, req.AgentID) {
		return nil, ErrNotPermitted
	}
	if err := checkRetryOf(ctx, a.pool, ag.OrgID, req.RetryOf); err != nil {
		return nil, err
	}
	var candidates []limits.Limit
	for _, r := range rows {
		if r.LimitID != "" {
			candidates = append(candidates, limitFromContext(r))
		}
	}
	it := &admitItem{subject: Subject{
		Subject: limits.Subject{OrgID: ag.OrgID, ProjectID: ag.ProjectID, AgentID: req.AgentID,
			APIKeyID: req.Caller.APIKeyID, Model: req.Model, Feature: req.Feature},
		TimeZone: ag.TimeZone,
	}}
	var prices map[string]map[string]pricing.Price
	if req.Estimate.CostMicros == 0 && req.Model != "" && (req.Estimate.InputTokens > 0 || req.Estimate.OutputTokens > 0) {
		if prices, err = pricesOf(ctx, a.pool, []string{ag.OrgID}, []string{req.Model}); err != nil {
			return nil, err
		}
	}
	var priced bool
	if it.estCost, priced, err = estimateCost(req.Estimate, req.Model, prices[ag.OrgID]); err != nil {
		return nil, err
	}
	it.request = limits.Request{CostMicros: it.estCost, Tokens: money.Add(req.Estimate.InputTokens, req.Estimate.OutputTokens)}
	if it.planned, _, err = plan(it.subject, candidates, it.request, a.now()); err != nil {
		return nil, err
	}
	if err := requireCostPriced(priced, req.Model, it.planned.checks); err != nil {
		return nil, err
	}
	return it, nil
}

func limitFromContext(r dbsqlc.AdmissionContextRow) limits.Limit {
	return limits.Limit{
		ID: r.LimitID, Name: r.LimitName, ScopeType: r.ScopeType, ScopeID: r.ScopeID, Model: r.Model,
		Feature: r.Feature, Metric: r.Metric, Window: r.WindowKind, Amount: r.Amount, Enforcement: r.Enforcement,
		Thresholds: r.Thresholds, Inheritance: r.Inheritance, Priority: r.Priority,
	}
}

// Run decides batches until ctx ends, with Parallel batches in flight at once; batches
// that touch the same counters take their locks one after the other, in the same order.
func (a *Admitter) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range a.parallel {
		wg.Go(func() { a.loop(ctx) })
	}
	wg.Wait()
}

func (a *Admitter) loop(ctx context.Context) {
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
		batch = a.sideline(ctx, batch)
		if len(batch) > 0 {
			a.decide(ctx, batch)
		}
	}
}

// busyFor is how long an organization whose counters timed out is decided beside the
// main batches, so that its stuck rows cannot hold up everyone else's admissions.
const busyFor = 10 * time.Second

// maxSideline bounds how many sidelined decisions run at once; past it, a busy
// organization's admissions fail at once rather than queue behind its stuck rows.
const maxSideline = 4

// sideline takes the requests of organizations whose counters recently timed out out of
// the batch and decides them in their own transactions, concurrently with the main
// batch; it returns the rest.
func (a *Admitter) sideline(ctx context.Context, batch []*pendingAdmit) []*pendingAdmit {
	now := time.Now()
	a.busyMu.Lock()
	var rest []*pendingAdmit
	side := map[string][]*pendingAdmit{}
	for _, p := range batch {
		org := p.req.Caller.OrgID
		if until, ok := a.busy[org]; ok && now.Before(until) {
			side[org] = append(side[org], p)
			continue
		} else if ok {
			delete(a.busy, org)
		}
		rest = append(rest, p)
	}
	a.busyMu.Unlock()
	for _, group := range side {
		select {
		case a.side <- struct{}{}:
			go func() {
				defer func() { <-a.side }()
				a.decide(ctx, group)
			}()
		default:
			for _, p := range group {
				p.done <- admitOutcome{err: fmt.Errorf("%w (it timed out moments ago); retry", ErrCountersBusy)}
			}
		}
	}
	return rest
}

func (a *Admitter) markBusy(org string) {
	a.busyMu.Lock()
	a.busy[org] = time.Now().Add(busyFor)
	a.busyMu.Unlock()
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

// decide runs one batch. If its transaction gave up waiting for counter locks (another
// transaction holds them), the batch is decided again per organization, concurrently, so
// that the organization whose counters are held fails fast and the others go on. If it
// failed otherwise, each request is retried alone so that one bad request cannot fail the
// others.
func (a *Admitter) decide(ctx context.Context, batch []*pendingAdmit) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.timeout)
	results, err := a.decideBatch(bctx, batch)
	cancel()
	if err != nil && db.Busy(err) {
		groups := byOrg(batch)
		if len(groups) > 1 {
			a.log.Warn("admission batch timed out on counter locks; deciding it per organization", "size", len(batch), "orgs", len(groups), "err", err)
			var wg sync.WaitGroup
			for _, g := range groups {
				wg.Go(func() { a.decide(ctx, g) })
			}
			wg.Wait()
			return
		}
		a.log.Warn("admissions of an organization timed out on counter locks", "org", batch[0].req.Caller.OrgID, "size", len(batch), "err", err)
		a.markBusy(batch[0].req.Caller.OrgID)
		for _, p := range batch {
			p.done <- admitOutcome{err: fmt.Errorf("%w (waited %s); retry", ErrCountersBusy, a.lockTimeout)}
		}
		return
	}
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

// ErrCountersBusy: an admission could not lock its limit counters in time because
// another transaction holds them. Retrying later helps.
var ErrCountersBusy = errors.New("admission could not lock the organization's limit counters in time: another transaction holds them")

// byOrg splits a batch by organization, keeping arrival order within each.
func byOrg(batch []*pendingAdmit) [][]*pendingAdmit {
	idx := map[string]int{}
	var out [][]*pendingAdmit
	for _, p := range batch {
		i, ok := idx[p.req.Caller.OrgID]
		if !ok {
			i = len(out)
			idx[p.req.Caller.OrgID] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], p)
	}
	return out
}

type admitItem struct {
	subject Subject
	request limits.Request
	planned planned
	estCost int64
}

// batchWrites accumulates a batch's rows, column by column, for the multi-row inserts.
type batchWrites struct {
	runs dbsqlc.RunsInsertManyParams
	res  dbsqlc.ReservationsInsertManyParams
	evs  dbsqlc.EventsInsertManyParams
	out  dbsqlc.OutboxInsertManyParams
	prev dbsqlc.PreventionsInsertManyParams
}

func (w *batchWrites) run(r dbsqlc.Run) {
	p := &w.runs
	p.OrgIds, p.Ids, p.ProjectIds = append(p.OrgIds, r.OrgID), append(p.Ids, r.ID), append(p.ProjectIds, r.ProjectID)
	p.AgentIds, p.ApiKeyIds, p.Models = append(p.AgentIds, r.AgentID), append(p.ApiKeyIds, r.ApiKeyID), append(p.Models, r.Model)
	p.Features, p.Tags, p.ClientRunIds = append(p.Features, r.Feature), append(p.Tags, r.Tags), append(p.ClientRunIds, deref(r.ClientRunID))
	p.Statuses, p.EstCostMicros = append(p.Statuses, r.Status), append(p.EstCostMicros, r.EstCostMicros)
	p.EstInputTokens, p.EstOutputTokens = append(p.EstInputTokens, r.EstInputTokens), append(p.EstOutputTokens, r.EstOutputTokens)
	p.BlockedBys, p.Warnings = append(p.BlockedBys, jsonOrNull(r.BlockedBy)), append(p.Warnings, jsonOrNull(r.Warnings))
	p.AdmittedAts, p.LeaseExpiresAts = append(p.AdmittedAts, r.AdmittedAt), append(p.LeaseExpiresAts, deref(r.LeaseExpiresAt))
	p.BlockedByRules = append(p.BlockedByRules, deref(r.BlockedByRule))
	p.RetryOfs = append(p.RetryOfs, deref(r.RetryOf))
}

func (w *batchWrites) prevention(run dbsqlc.Run, rule *policy.Rule) {
	p := &w.prev
	p.OrgIds, p.Ids, p.RuleIds = append(p.OrgIds, run.OrgID), append(p.Ids, ids.New(ids.Prevention)), append(p.RuleIds, rule.ID)
	p.RunIds, p.IncidentIds, p.AgentIds = append(p.RunIds, run.ID), append(p.IncidentIds, rule.SourceIncidentID), append(p.AgentIds, run.AgentID)
	p.Costs = append(p.Costs, run.EstCostMicros)
}

func jsonOrNull(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return b
}

func (w *batchWrites) reservation(runID string, k counterKey, metric string, amount int64, expires time.Time) {
	p := &w.res
	p.RunIds, p.LimitIds, p.WindowStarts = append(p.RunIds, runID), append(p.LimitIds, k.limitID), append(p.WindowStarts, k.window)
	p.Metrics, p.Amounts, p.ExpiresAts = append(p.Metrics, metric), append(p.Amounts, amount), append(p.ExpiresAts, expires)
}

func (w *batchWrites) event(e dbsqlc.DomainEvent) {
	p := &w.evs
	p.Ids, p.OrgIds, p.OccurredAts = append(p.Ids, e.ID), append(p.OrgIds, e.OrgID), append(p.OccurredAts, e.OccurredAt)
	p.Domains, p.Types, p.EntityTypes = append(p.Domains, e.Domain), append(p.Types, e.Type), append(p.EntityTypes, e.EntityType)
	p.EntityIds, p.Relateds, p.CorrelationIds = append(p.EntityIds, e.EntityID), append(p.Relateds, e.Related), append(p.CorrelationIds, e.CorrelationID)
	p.Summaries, p.Datas, p.ActorKinds = append(p.Summaries, e.Summary), append(p.Datas, e.Data), append(p.ActorKinds, e.ActorKind)
	p.ActorApiKeyIds, p.ActorUserIds, p.ActorSystems = append(p.ActorApiKeyIds, e.ActorApiKeyID), append(p.ActorUserIds, e.ActorUserID), append(p.ActorSystems, e.ActorSystem)
}

func (w *batchWrites) outbox(orgID, kind, wfType, wfID string, payload json.RawMessage) {
	p := &w.out
	p.OrgIds, p.Kinds, p.WorkflowTypes = append(p.OrgIds, orgID), append(p.Kinds, kind), append(p.WorkflowTypes, wfType)
	p.WorkflowIds, p.SignalNames, p.Payloads = append(p.WorkflowIds, wfID), append(p.SignalNames, ""), append(p.Payloads, payload)
}

// decideBatch decides a batch in one transaction of two round trips: BEGIN with every
// read (rules, replays, counters), then every write with COMMIT.
func (a *Admitter) decideBatch(ctx context.Context, batch []*pendingAdmit) ([]admitOutcome, error) {
	outcomes := make([]admitOutcome, len(batch))
	now := a.now().UTC().Truncate(time.Microsecond)
	q := dbsqlc.New()

	// Every counter the batch touches, sorted: the global lock order.
	keySet := map[counterKey]bool{}
	var clientOrgs, clientIDs []string
	for _, p := range batch {
		for _, k := range p.item.planned.keys {
			keySet[k] = true
		}
		if p.req.ClientRunID != "" {
			clientOrgs, clientIDs = append(clientOrgs, p.req.Caller.OrgID), append(clientIDs, p.req.ClientRunID)
		}
	}
	keys := slices.Collect(maps.Keys(keySet))
	sortKeys(keys)

	conn, err := a.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()

	orgSet := map[string]bool{}
	for _, p := range batch {
		orgSet[p.req.Caller.OrgID] = true
	}
	orgs := slices.Collect(maps.Keys(orgSet))
	lids, wins := keyArrays(keys)
	acquire := dbsqlc.CountersAcquireParams{LimitIds: lids, WindowStarts: wins}
	replays := dbsqlc.RunsByClientIDParams{OrgIds: clientOrgs, ClientRunIds: clientIDs}

	// One round trip: BEGIN; the active policy rules (read inside the transaction, so a
	// rule activated before this batch commits cannot be missed); stored runs of retried
	// client run ids; and every counter created, locked in order, released of expired
	// reservations and read, by one statement.
	var read db.Pipeline
	_, _ = read.Exec(ctx, "BEGIN")
	_ = q.TxSetLockTimeout(ctx, &read, fmt.Sprintf("%dms", a.lockTimeout.Milliseconds()))
	_, _ = q.PolicyRulesActive(ctx, &read, orgs)
	if len(clientIDs) > 0 {
		_, _ = q.RunsByClientID(ctx, &read, replays)
	}
	if len(keys) > 0 {
		_, _ = q.CountersAcquire(ctx, &read, acquire)
	}
	committed := false
	defer func() {
		if !committed {
			if _, rerr := conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
				// A connection in an unknown state must not go back to the pool.
				_ = conn.Conn().Close(context.WithoutCancel(ctx))
			}
		}
	}()
	if err := read.Send(ctx, conn); err != nil {
		_ = read.Close()
		return nil, err
	}
	results := read.Results()
	ruleRows, err := q.PolicyRulesActive(ctx, results, orgs)
	if err != nil {
		_ = read.Close()
		return nil, err
	}
	var existing []dbsqlc.Run
	if len(clientIDs) > 0 {
		if existing, err = q.RunsByClientID(ctx, results, replays); err != nil {
			_ = read.Close()
			return nil, err
		}
	}
	var counterRows []dbsqlc.CountersAcquireRow
	if len(keys) > 0 {
		if counterRows, err = q.CountersAcquire(ctx, results, acquire); err != nil {
			_ = read.Close()
			return nil, err
		}
	}
	if err := read.Close(); err != nil {
		return nil, err
	}

	rules := map[string][]policy.Rule{}
	for _, r := range ruleRows {
		rules[r.OrgID] = append(rules[r.OrgID], policy.FromRow(r))
	}
	// Retries of runs already admitted are answered with the stored run.
	replayed := make([]bool, len(batch))
	for i, p := range batch {
		for _, r := range existing {
			if r.OrgID != p.req.Caller.OrgID || deref(r.ClientRunID) != p.req.ClientRunID {
				continue
			}
			replayed[i] = true
			if sameAdmission(r, p) {
				outcomes[i].res = AdmitResult{Run: r, Replayed: true}
			} else {
				outcomes[i].err = ErrClientRunIDReused
			}
		}
	}
	counters := map[counterKey]*limits.Counter{}
	for _, r := range counterRows {
		counters[counterKey{r.LimitID, r.WindowStart.UTC()}] = &limits.Counter{Used: r.Used, Reserved: r.Reserved}
	}

	// Decide in arrival order, each decision seeing the reservations of those before it.
	reserve := map[counterKey]int64{}
	var w batchWrites
	for i, p := range batch {
		if replayed[i] {
			continue
		}
		it := p.item
		r := p.req
		rule := policy.First(rules[it.subject.OrgID], policy.Run{ProjectID: it.subject.ProjectID, AgentID: it.subject.AgentID,
			Model: r.Model, Feature: r.Feature, Tags: r.Tags})
		var d limits.Decision
		if rule == nil {
			checks := slices.Clone(it.planned.checks)
			for j, k := range it.planned.keys {
				c := counters[k]
				if c == nil {
					return nil, fmt.Errorf("counter %s@%s missing after acquire", k.limitID, k.window)
				}
				checks[j].Used, checks[j].Reserved = c.Used, c.Reserved
			}
			d = limits.Decide(checks)
		}
		lease := r.Lease
		if lease <= 0 {
			lease = a.lease
		}
		expires := now.Add(lease)
		tags, _ := json.Marshal(nonNilTags(r.Tags))
		run := dbsqlc.Run{
			OrgID: it.subject.OrgID, ID: ids.New(ids.Run), ProjectID: it.subject.ProjectID, AgentID: it.subject.AgentID,
			ApiKeyID: it.subject.APIKeyID, Model: r.Model, Feature: r.Feature, Tags: tags,
			EstCostMicros: it.estCost, EstInputTokens: r.Estimate.InputTokens, EstOutputTokens: r.Estimate.OutputTokens,
			AdmittedAt: now,
		}
		if r.RetryOf != "" {
			run.RetryOf = &r.RetryOf
		}
		if len(d.Warnings) > 0 {
			run.Warnings, _ = json.Marshal(Records(d.Warnings))
		}
		ev := dbsqlc.DomainEvent{
			ID: ids.New(ids.Event), OrgID: run.OrgID, OccurredAt: now, Domain: events.DomainRuns,
			EntityType: "run", EntityID: run.ID, CorrelationID: run.ID,
			ActorKind: actor.KindAPIKey, ActorApiKeyID: r.Caller.APIKeyID, ActorUserID: r.Caller.UserID,
		}
		related := []events.Ref{{Type: "agent", ID: run.AgentID}, {Type: "project", ID: run.ProjectID}, {Type: "api_key", ID: run.ApiKeyID}}
		switch {
		case rule != nil:
			// Prevented by policy: recorded with the rule and the incident it came from.
			run.Status = "blocked"
			run.BlockedByRule = &rule.ID
			ev.Type = "run_blocked"
			ev.Summary = fmt.Sprintf("Run blocked for agent %s by policy rule %s (%s)", run.AgentID, rule.ID, rule.Name)
			related = append(related, events.Ref{Type: "policy_rule", ID: rule.ID})
			if rule.SourceIncidentID != "" {
				related = append(related, events.Ref{Type: "incident", ID: rule.SourceIncidentID})
			}
			ev.Data, _ = json.Marshal(map[string]any{"model": run.Model, "feature": run.Feature, "reason": "policy",
				"policy_rule_id": rule.ID, "incident_id": rule.SourceIncidentID, "estimated_cost_micros": it.estCost})
			w.prevention(run, rule)
		case d.Admitted():
			run.Status = "admitted"
			run.LeaseExpiresAt = &expires
			if r.ClientRunID != "" {
				run.ClientRunID = &r.ClientRunID
			}
			for j, k := range it.planned.keys {
				amt := d.Checks[j].Requested
				counters[k].Reserved += amt
				reserve[k] += amt
				w.reservation(run.ID, k, d.Checks[j].Limit.Metric, amt, expires)
			}
			ev.Type = "run_admitted"
			ev.Summary = fmt.Sprintf("Run admitted for agent %s (%s)", run.AgentID, describe(run.Model, run.Feature))
			ev.Data, _ = json.Marshal(map[string]any{"model": run.Model, "feature": run.Feature, "estimate_cost_micros": it.estCost,
				"lease_expires_at": expires, "limits_checked": len(d.Checks), "warnings": Records(d.Warnings), "retry_of": r.RetryOf})
			payload, _ := json.Marshal(lifecycle.RunInput{
				OrgID: run.OrgID, RunID: run.ID, ProjectID: run.ProjectID, AgentID: run.AgentID, APIKeyID: run.ApiKeyID,
				LeaseExpiresAt: expires,
			})
			w.outbox(run.OrgID, "start", lifecycle.RunWorkflowType, lifecycle.RunWorkflowID(run.ID), payload)
		default:
			run.Status = "blocked"
			run.BlockedBy, _ = json.Marshal(Records(blockingFirst(d)))
			b := d.Blocking
			ev.Type = "run_blocked"
			ev.Summary = fmt.Sprintf("Run blocked for agent %s: %s limit %s (%s %s) has %s of %s left, run asked %s",
				run.AgentID, b.Limit.ScopeType, limitLabel(b.Limit), b.Limit.Window, b.Limit.Metric,
				Amount(b.Limit.Metric, b.Remaining()), Amount(b.Limit.Metric, b.Limit.Amount), Amount(b.Limit.Metric, b.Requested))
			related = append(related, events.Ref{Type: "limit", ID: b.Limit.ID})
			ev.Data, _ = json.Marshal(map[string]any{"model": run.Model, "feature": run.Feature, "blocking": Record(*b)})
		}
		ev.Related, _ = json.Marshal(related)
		w.run(run)
		w.event(ev)
		outcomes[i].res = AdmitResult{Run: run, Decision: d, PolicyRule: rule}
	}

	// Write everything and commit: one round trip.
	var pipe db.Pipeline
	if len(reserve) > 0 {
		rk := slices.Collect(maps.Keys(reserve))
		sortKeys(rk)
		lids, wins := keyArrays(rk)
		amts := make([]int64, len(rk))
		for i, k := range rk {
			amts[i] = reserve[k]
		}
		_ = q.CountersReserve(ctx, &pipe, dbsqlc.CountersReserveParams{LimitIds: lids, WindowStarts: wins, Amounts: amts})
	}
	if len(w.runs.Ids) > 0 {
		_ = q.RunsInsertMany(ctx, &pipe, w.runs)
		_ = q.EventsInsertMany(ctx, &pipe, w.evs)
	}
	if len(w.res.RunIds) > 0 {
		_ = q.ReservationsInsertMany(ctx, &pipe, w.res)
	}
	if len(w.out.OrgIds) > 0 {
		_ = q.OutboxInsertMany(ctx, &pipe, w.out)
	}
	if len(w.prev.Ids) > 0 {
		_ = q.PreventionsInsertMany(ctx, &pipe, w.prev)
	}
	_, _ = pipe.Exec(ctx, "COMMIT")
	err = pipe.Send(ctx, conn)
	if cerr := pipe.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	committed = true
	if a.afterCommit != nil {
		a.afterCommit()
	}
	if a.committed != nil && len(w.out.OrgIds) > 0 {
		a.committed()
	}
	return outcomes, nil
}

// sameAdmission reports whether a stored run was admitted for the same request as p.
func sameAdmission(r dbsqlc.Run, p *pendingAdmit) bool {
	req := p.req
	return r.AgentID == req.AgentID && r.Model == req.Model && r.Feature == req.Feature &&
		r.ApiKeyID == req.Caller.APIKeyID && r.EstInputTokens == req.Estimate.InputTokens &&
		r.EstOutputTokens == req.Estimate.OutputTokens &&
		(req.Estimate.CostMicros == 0 || r.EstCostMicros == req.Estimate.CostMicros) && deref(r.RetryOf) == req.RetryOf
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

// IsBlocked reports whether an admission was refused (by a limit or a policy rule).
func (r AdmitResult) IsBlocked() bool { return r.Run.Status == "blocked" }

// limitLabel names a limit for people: its name and id, or the id alone.
func limitLabel(l limits.Limit) string {
	if l.Name == "" {
		return l.ID
	}
	return fmt.Sprintf("%q (%s)", l.Name, l.ID)
}

// Amount renders an amount of a limit's metric: money for cost, a count otherwise.
func Amount(metric string, n int64) string {
	if metric == limits.MetricCost {
		return money.Dollars(n)
	}
	return fmt.Sprintf("%d %s", n, metric)
}
