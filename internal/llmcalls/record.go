// Package llmcalls records and reads LLM call records: every call an agent's run made to
// a model (RunService.RecordLlmCalls), or that arrived without a run (OpenTelemetry
// ingest), with its tokens by kind, latency, outcome and cost.
//
// The write path is built for volume: a batch of up to MaxBatch calls is validated and
// priced in memory and written by one multi-row INSERT, idempotently by call id. Its
// relation to a run's cost is settled elsewhere (internal/runs): a run that reports no
// cost and no tokens is charged the sum of the calls recorded before it settles; calls
// recorded after are marked late and never change the run's charge.
package llmcalls

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/authz"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/money"
	"github.com/governor-hq/governor/internal/pricing"
	"github.com/governor-hq/governor/internal/runs"
)

// Bounds of a batch and of each call.
const (
	// MaxBatch is the most calls one batch records.
	MaxBatch = 1000
	// MaxLatencyMs bounds a call's latency: 31 days.
	MaxLatencyMs int64 = 31 * 24 * 3600 * 1000
	// MaxAttributes bounds a call's attributes (keys of 1–64 characters, values up to 256).
	MaxAttributes = 32
	// FutureSkew is how far ahead of Governor's clock a call may say it started.
	FutureSkew = 24 * time.Hour
)

// Statuses, sources and cost sources of a call, as stored.
const (
	StatusOK    = "ok"
	StatusError = "error"

	SourceAPI  = "api"
	SourceOTLP = "otlp"

	CostReported = "reported"
	CostPriced   = "priced"
	CostUnpriced = "unpriced"
)

// earliest is the earliest start time a call may have.
var earliest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Call is one call to record. RunID and AgentID say whom it is attributed to: the run's
// agent when RunID is set (AgentID, if given too, must be that agent), else AgentID, else
// the agent the recording key is bound to. A batch may mix runs and agents (spans of an
// OpenTelemetry export), all of the caller's organization.
type Call struct {
	CallID     string
	RunID      string
	AgentID    string
	Model      string
	Provider   string
	Operation  string
	Feature    string // default the run's feature
	Tokens     pricing.Tokens
	CostMicros *int64 // nil: priced from the catalog
	LatencyMs  *int64 // nil: not reported
	Status     string // StatusOK (default) or StatusError
	ErrorType  string
	StartedAt  time.Time // zero: now
	TraceID    string
	SpanID     string
	Attributes map[string]string
}

// Result is what a batch did.
type Result struct {
	// Recorded calls were written by this batch; AlreadyRecorded ones had their call id
	// recorded before (a retry) and were left as they were (the first record stands).
	Recorded               int
	AlreadyRecorded        int
	AlreadyRecordedCallIDs []string
	// Late calls (of those recorded) belong to runs that had settled already.
	Late int
	// CostMicros is what the recorded calls cost, saturating at money.Ceiling.
	CostMicros int64
}

var (
	traceIDPattern = regexp.MustCompile(`^([0-9a-f]{32})?$`)
	spanIDPattern  = regexp.MustCompile(`^([0-9a-f]{16})?$`)
)

// Record validates, attributes, prices and writes a batch of calls for caller, in one
// transaction and one INSERT. Errors name the call at fault ("calls[3].input_tokens") as
// *runs.FieldError; unknown runs and agents are runs.ErrRunNotFound and
// runs.ErrAgentNotFound, those the caller may not act for runs.ErrNotPermitted, a blocked
// run runs.ErrRunNotActive, an unpriced call of a run whose cost limits will be charged its
// calls *runs.UnpricedModelError.
func Record(ctx context.Context, pool *pgxpool.Pool, caller authz.Principal, source string, calls []Call) (Result, error) {
	now := time.Now().UTC()
	if err := validate(calls, now); err != nil {
		return Result{}, err
	}
	if source != SourceAPI && source != SourceOTLP {
		return Result{}, fmt.Errorf("llm call source %q", source)
	}
	var res Result
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		res, err = record(ctx, tx, caller, source, calls, now)
		return err
	})
	return res, err
}

func fieldErr(i int, field, format string, args ...any) error {
	return &runs.FieldError{Field: fmt.Sprintf("calls[%d].%s", i, field), Msg: fmt.Sprintf(format, args...)}
}

// validate checks every bound a client could break; the API's proto rules say the same,
// but calls also arrive by other roads (OpenTelemetry), so the domain checks itself.
func validate(calls []Call, now time.Time) error {
	if len(calls) == 0 || len(calls) > MaxBatch {
		return &runs.FieldError{Field: "calls", Msg: fmt.Sprintf("a batch holds 1 to %d calls, got %d", MaxBatch, len(calls))}
	}
	seen := make(map[string]int, len(calls))
	str := func(i int, field, v string, minLen, maxLen int) error {
		n := utf8.RuneCountInString(v)
		switch {
		case !utf8.ValidString(v):
			return fieldErr(i, field, "not valid UTF-8")
		case n < minLen || n > maxLen:
			return fieldErr(i, field, "must be %d to %d characters, got %d", minLen, maxLen, n)
		}
		return nil
	}
	for i, c := range calls {
		for _, s := range []struct {
			field, v string
			lo, hi   int
		}{{"call_id", c.CallID, 1, 128}, {"model", c.Model, 0, 128}, {"provider", c.Provider, 0, 64},
			{"operation", c.Operation, 0, 64}, {"feature", c.Feature, 0, 128}, {"error_type", c.ErrorType, 0, 128}} {
			if err := str(i, s.field, s.v, s.lo, s.hi); err != nil {
				return err
			}
		}
		if j, dup := seen[c.CallID]; dup {
			return fieldErr(i, "call_id", "repeats calls[%d].call_id %q: one batch records a call once", j, c.CallID)
		}
		seen[c.CallID] = i
		if c.RunID != "" && !ids.HasPrefix(c.RunID, ids.Run) {
			return fieldErr(i, "run_id", "not a run id")
		}
		if c.AgentID != "" && !ids.HasPrefix(c.AgentID, ids.Agent) {
			return fieldErr(i, "agent_id", "not an agent id")
		}
		for _, t := range []struct {
			field string
			v     int64
		}{{"input_tokens", c.Tokens.Input}, {"output_tokens", c.Tokens.Output}, {"cache_read_tokens", c.Tokens.CacheRead},
			{"cache_write_tokens", c.Tokens.CacheWrite}, {"reasoning_tokens", c.Tokens.Reasoning}} {
			if err := money.CheckRange(t.field, t.v, money.MaxTokens); err != nil {
				return fieldErr(i, t.field, "%v", err)
			}
		}
		if c.CostMicros != nil {
			if err := money.CheckRange("cost_micros", *c.CostMicros, money.MaxCostMicros); err != nil {
				return fieldErr(i, "cost_micros", "%v", err)
			}
		}
		if c.LatencyMs != nil {
			if err := money.CheckRange("latency_ms", *c.LatencyMs, MaxLatencyMs); err != nil {
				return fieldErr(i, "latency_ms", "%v", err)
			}
		}
		switch c.Status {
		case "", StatusOK, StatusError:
		default:
			return fieldErr(i, "status", "must be %q or %q", StatusOK, StatusError)
		}
		if !c.StartedAt.IsZero() && (!c.StartedAt.After(earliest) || c.StartedAt.After(now.Add(FutureSkew))) {
			return fieldErr(i, "start_time", "must be after 2000-01-01 and at most %s ahead of the server's clock, got %s",
				FutureSkew, c.StartedAt.UTC().Format(time.RFC3339))
		}
		if !traceIDPattern.MatchString(c.TraceID) {
			return fieldErr(i, "trace_id", "must be 32 lower-case hex digits")
		}
		if !spanIDPattern.MatchString(c.SpanID) {
			return fieldErr(i, "span_id", "must be 16 lower-case hex digits")
		}
		if len(c.Attributes) > MaxAttributes {
			return fieldErr(i, "attributes", "at most %d attributes, got %d", MaxAttributes, len(c.Attributes))
		}
		for k, v := range c.Attributes {
			if err := str(i, "attributes", k, 1, 64); err != nil {
				return err
			}
			if err := str(i, "attributes["+k+"]", v, 0, 256); err != nil {
				return err
			}
		}
	}
	return nil
}

// runState is what recording needs of a call's run.
type runState struct {
	row dbsqlc.LlmCallRunsLockRow
	// late: the run is settled; its charge no longer changes.
	late bool
	// chargedByCalls: the run's settlement will charge the sum of its calls (it has not
	// reported a cost or tokens).
	chargedByCalls bool
	costLimitID    string
}

func record(ctx context.Context, tx pgx.Tx, caller authz.Principal, source string, calls []Call, now time.Time) (Result, error) {
	calls = slices.Clone(calls) // agents are filled in below; the caller's slice stays as it was
	q := dbsqlc.New()
	// The runs, locked in id order.
	var runIDs []string
	for _, c := range calls {
		if c.RunID != "" {
			runIDs = append(runIDs, c.RunID)
		}
	}
	slices.Sort(runIDs)
	runIDs = slices.Compact(runIDs)
	states := map[string]*runState{}
	if len(runIDs) > 0 {
		rows, err := q.LlmCallRunsLock(ctx, tx, runIDs)
		if err != nil {
			return Result{}, err
		}
		for _, r := range rows {
			if r.OrgID != caller.OrgID {
				continue // another organization's run does not exist for this caller
			}
			s := &runState{row: r}
			// An expired run reported afterwards settles again, charging its calls: until
			// then it is not settled for them.
			lateReportPending := r.Status == "expired" && r.ReportedAt != nil
			s.late = r.SettledAt != nil && !lateReportPending
			reportedTokens := r.ReportedAt != nil && (deref(r.InputTokens)+deref(r.OutputTokens) > 0)
			s.chargedByCalls = !s.late && r.ReportedCostMicros == nil && !reportedTokens
			states[r.ID] = s
		}
		var charged []string
		for _, id := range runIDs {
			if s := states[id]; s != nil && s.chargedByCalls {
				charged = append(charged, id)
			}
		}
		if len(charged) > 0 {
			res, err := q.LlmCallRunsWithCostReservation(ctx, tx, charged)
			if err != nil {
				return Result{}, err
			}
			for _, r := range res {
				states[r.RunID].costLimitID = r.LimitID
			}
		}
	}
	// The agents of calls without a run.
	agents := map[string]string{} // agent → project
	var agentIDs []string
	for i := range calls {
		if calls[i].RunID == "" {
			if calls[i].AgentID == "" {
				calls[i].AgentID = caller.AgentID
			}
			if calls[i].AgentID == "" {
				return Result{}, fieldErr(i, "agent_id", "a call without a run needs its agent (this key is not bound to one)")
			}
			agentIDs = append(agentIDs, calls[i].AgentID)
		}
	}
	if len(agentIDs) > 0 {
		rows, err := q.LlmCallAgents(ctx, tx, agentIDs)
		if err != nil {
			return Result{}, err
		}
		for _, r := range rows {
			if r.OrgID == caller.OrgID {
				agents[r.ID] = r.ProjectID
			}
		}
	}
	// Prices of the models that need one.
	var models []string
	for _, c := range calls {
		if c.CostMicros == nil && c.Tokens.Total() > 0 {
			models = append(models, c.Model)
		}
	}
	prices, err := pricesOf(ctx, tx, caller.OrgID, models)
	if err != nil {
		return Result{}, err
	}

	p := dbsqlc.LlmCallsInsertManyParams{OrgID: caller.OrgID, Source: source}
	cost := make(map[string]int64, len(calls))
	late := make(map[string]bool, len(calls))
	for i, c := range calls {
		var projectID, agentID, feature string
		var rs *runState
		if c.RunID != "" {
			rs = states[c.RunID]
			if rs == nil {
				return Result{}, fmt.Errorf("calls[%d].run_id: %w", i, runs.ErrRunNotFound)
			}
			if c.AgentID != "" && c.AgentID != rs.row.AgentID {
				return Result{}, fieldErr(i, "agent_id", "run %s is a run of agent %s, not %s", c.RunID, rs.row.AgentID, c.AgentID)
			}
			if rs.row.Status == "blocked" {
				return Result{}, fmt.Errorf("%w: run %s (calls[%d]) was blocked at admission and cannot have made calls", runs.ErrRunNotActive, c.RunID, i)
			}
			projectID, agentID, feature = rs.row.ProjectID, rs.row.AgentID, rs.row.Feature
		} else {
			proj, ok := agents[c.AgentID]
			if !ok {
				return Result{}, fmt.Errorf("calls[%d].agent_id: %w", i, runs.ErrAgentNotFound)
			}
			projectID, agentID = proj, c.AgentID
		}
		if !caller.MayActForAgent(projectID, agentID) {
			return Result{}, fmt.Errorf("calls[%d]: %w", i, runs.ErrNotPermitted)
		}
		if c.Feature != "" {
			feature = c.Feature
		}
		callCost, costSource, err := price(i, c, prices)
		if err != nil {
			return Result{}, err
		}
		if costSource == CostUnpriced && c.Tokens.Total() > 0 && rs != nil && rs.chargedByCalls && rs.costLimitID != "" {
			return Result{}, &runs.UnpricedModelError{Model: c.Model, LimitID: rs.costLimitID, Field: fmt.Sprintf("calls[%d].cost_micros", i)}
		}
		started := c.StartedAt
		if started.IsZero() {
			started = now
		}
		status := c.Status
		if status == "" {
			status = StatusOK
		}
		latency := int64(-1)
		if c.LatencyMs != nil {
			latency = *c.LatencyMs
		}
		attrs := []byte("{}")
		if len(c.Attributes) > 0 {
			if attrs, err = json.Marshal(c.Attributes); err != nil {
				return Result{}, err
			}
		}
		isLate := rs != nil && rs.late
		cost[c.CallID], late[c.CallID] = callCost, isLate
		p.Ids, p.CallIds, p.RunIds = append(p.Ids, ids.New(ids.LlmCall)), append(p.CallIds, c.CallID), append(p.RunIds, c.RunID)
		p.ProjectIds, p.AgentIds, p.ApiKeyIds = append(p.ProjectIds, projectID), append(p.AgentIds, agentID), append(p.ApiKeyIds, caller.APIKeyID)
		p.Models, p.Providers, p.Operations = append(p.Models, c.Model), append(p.Providers, c.Provider), append(p.Operations, c.Operation)
		p.Features, p.InputTokens, p.OutputTokens = append(p.Features, feature), append(p.InputTokens, c.Tokens.Input), append(p.OutputTokens, c.Tokens.Output)
		p.CacheReadTokens, p.CacheWriteTokens = append(p.CacheReadTokens, c.Tokens.CacheRead), append(p.CacheWriteTokens, c.Tokens.CacheWrite)
		p.ReasoningTokens, p.CostMicros, p.CostSources = append(p.ReasoningTokens, c.Tokens.Reasoning), append(p.CostMicros, callCost), append(p.CostSources, costSource)
		p.LatencyMs, p.Statuses, p.ErrorTypes = append(p.LatencyMs, latency), append(p.Statuses, status), append(p.ErrorTypes, c.ErrorType)
		p.StartedAts, p.Lates, p.TraceIds = append(p.StartedAts, started), append(p.Lates, isLate), append(p.TraceIds, c.TraceID)
		p.SpanIds, p.Attributes = append(p.SpanIds, c.SpanID), append(p.Attributes, attrs)
	}
	inserted, err := q.LlmCallsInsertMany(ctx, tx, p)
	if err != nil {
		return Result{}, err
	}
	res := Result{Recorded: len(inserted)}
	fresh := make(map[string]bool, len(inserted))
	for _, id := range inserted {
		fresh[id] = true
		res.CostMicros = money.Add(res.CostMicros, cost[id])
		if late[id] {
			res.Late++
		}
	}
	for _, c := range calls {
		if !fresh[c.CallID] {
			res.AlreadyRecorded++
			res.AlreadyRecordedCallIDs = append(res.AlreadyRecordedCallIDs, c.CallID)
		}
	}
	return res, nil
}

// price is a call's cost and where it came from: the client's, else its tokens at the
// model's price, else nothing (no price: recorded at 0, "unpriced").
func price(i int, c Call, prices map[string]pricing.ModelPrice) (int64, string, error) {
	if c.CostMicros != nil {
		return *c.CostMicros, CostReported, nil
	}
	if c.Tokens.Total() == 0 {
		return 0, CostPriced, nil
	}
	p, ok := pricing.LookupModel(prices, c.Model)
	if !ok {
		return 0, CostUnpriced, nil
	}
	v, err := p.CallCost(c.Tokens)
	if err == nil {
		return v, CostPriced, nil
	}
	// Name the token kind that alone is too expensive, if one is.
	field := "input_tokens"
	for _, k := range []struct {
		field string
		t     pricing.Tokens
	}{{"input_tokens", pricing.Tokens{Input: c.Tokens.Input}}, {"output_tokens", pricing.Tokens{Output: c.Tokens.Output}},
		{"cache_read_tokens", pricing.Tokens{CacheRead: c.Tokens.CacheRead}}, {"cache_write_tokens", pricing.Tokens{CacheWrite: c.Tokens.CacheWrite}},
		{"reasoning_tokens", pricing.Tokens{Reasoning: c.Tokens.Reasoning}}} {
		if _, kerr := p.CallCost(k.t); kerr != nil {
			field = k.field
			break
		}
	}
	return 0, "", fieldErr(i, field, "at the price of %q these tokens cost more than $%d, the most one call may cost", c.Model, money.MaxCostMicros/1_000_000)
}

// pricesOf loads the organization's prices of the given models.
func pricesOf(ctx context.Context, db dbsqlc.DBTX, org string, models []string) (map[string]pricing.ModelPrice, error) {
	if len(models) == 0 {
		return nil, nil
	}
	slices.Sort(models)
	rows, err := dbsqlc.New().LlmCallPrices(ctx, db, dbsqlc.LlmCallPricesParams{OrgID: org, Models: slices.Compact(models)})
	if err != nil {
		return nil, err
	}
	out := make(map[string]pricing.ModelPrice, len(rows))
	for _, r := range rows {
		out[r.Model] = PriceOf(r)
	}
	return out, nil
}

// PriceOf converts an organization's stored price.
func PriceOf(r dbsqlc.ModelPrice) pricing.ModelPrice {
	return pricing.ModelPrice{
		Price: pricing.Price{InputPerMTok: r.InputMicrosPerMtok, OutputPerMTok: r.OutputMicrosPerMtok},
		Extra: pricing.Extra{CacheReadPerMTok: r.CacheReadMicrosPerMtok, CacheWritePerMTok: r.CacheWriteMicrosPerMtok, ReasoningPerMTok: r.ReasoningMicrosPerMtok},
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
