// Package runs is the run lifecycle's data side: admission (one transaction decides
// against every limit and either reserves on all of them or on none), heartbeats,
// completion reports and settlement. Decisions a caller waits for happen here, in
// PostgreSQL; the durable rest (waiting for completion or lease expiry, settling) is
// driven by the run workflow through Settle.
package runs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/limits"
	"github.com/governor-hq/governor/internal/money"
	"github.com/governor-hq/governor/internal/pricing"
)

var (
	// ErrAgentNotFound: the agent does not exist in the caller's organization.
	ErrAgentNotFound = errors.New("agent not found")
	// ErrNotPermitted: the caller's key is bound to another project or agent.
	ErrNotPermitted = errors.New("this API key may not act for that agent")
	// ErrClientRunIDReused: a client run id came back with a different request.
	ErrClientRunIDReused = errors.New("client_run_id was already used for a different run")
	// ErrRunNotFound: no such run in the caller's organization.
	ErrRunNotFound = errors.New("run not found")
)

// Estimate is what a run expects to use.
type Estimate struct {
	CostMicros   int64
	InputTokens  int64
	OutputTokens int64
}

// Subject describes a prospective run for planning.
type Subject struct {
	limits.Subject
	TimeZone string
}

// CheckRecord is a limit check as stored on a run and returned by the API.
type CheckRecord struct {
	LimitID     string    `json:"limit_id"`
	LimitName   string    `json:"limit_name,omitempty"`
	ScopeType   string    `json:"scope_type"`
	ScopeID     string    `json:"scope_id"`
	Model       string    `json:"model,omitempty"`
	Feature     string    `json:"feature,omitempty"`
	Metric      string    `json:"metric"`
	Window      string    `json:"window"`
	Enforcement string    `json:"enforcement"`
	WindowStart time.Time `json:"window_start"`
	ResetTime   time.Time `json:"reset_time"`
	Limit       int64     `json:"limit"`
	Used        int64     `json:"used"`
	Reserved    int64     `json:"reserved"`
	Requested   int64     `json:"requested"`
	Remaining   int64     `json:"remaining"`
	Verdict     string    `json:"verdict"`
}

// Record converts a check for storage and the API.
func Record(c limits.Check) CheckRecord {
	return CheckRecord{
		LimitID: c.Limit.ID, LimitName: c.Limit.Name, ScopeType: c.Limit.ScopeType, ScopeID: c.Limit.ScopeID,
		Model: c.Limit.Model, Feature: c.Limit.Feature, Metric: c.Limit.Metric, Window: c.Limit.Window,
		Enforcement: c.Limit.Enforcement, WindowStart: c.WindowStart, ResetTime: c.ResetTime,
		Limit: c.Limit.Amount, Used: c.Used, Reserved: c.Reserved, Requested: c.Requested,
		Remaining: c.Remaining(), Verdict: c.Verdict,
	}
}

// Records converts checks.
func Records(cs []limits.Check) []CheckRecord {
	out := make([]CheckRecord, 0, len(cs))
	for _, c := range cs {
		out = append(out, Record(c))
	}
	return out
}

// DecodeChecks reads stored checks.
func DecodeChecks(b json.RawMessage) []CheckRecord {
	var out []CheckRecord
	if len(b) > 0 {
		_ = json.Unmarshal(b, &out)
	}
	return out
}

// FromRow converts a limit row.
func FromRow(l dbsqlc.Limit) limits.Limit {
	return limits.Limit{
		ID: l.ID, Name: l.Name, ScopeType: l.ScopeType, ScopeID: l.ScopeID, Model: l.Model, Feature: l.Feature,
		Metric: l.Metric, Window: l.WindowKind, Amount: l.Amount, Enforcement: l.Enforcement,
		Thresholds: l.Thresholds, Inheritance: l.Inheritance, Priority: l.Priority,
	}
}

// counterKey names one limit's window.
type counterKey struct {
	limitID string
	window  time.Time
}

func sortKeys(keys []counterKey) {
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].limitID != keys[j].limitID {
			return keys[i].limitID < keys[j].limitID
		}
		return keys[i].window.Before(keys[j].window)
	})
}

func keyArrays(keys []counterKey) ([]string, []time.Time) {
	ids := make([]string, len(keys))
	ws := make([]time.Time, len(keys))
	for i, k := range keys {
		ids[i], ws[i] = k.limitID, k.window
	}
	return ids, ws
}

// planned is one run's limits, windows and requested amounts.
type planned struct {
	checks []limits.Check // window, reset and requested set; usage filled in later
	keys   []counterKey   // parallel to checks
}

// plan resolves the effective limits of s among candidates and computes, for each, the
// window containing now and what the run requests of it.
func plan(s Subject, candidates []limits.Limit, req limits.Request, now time.Time) (planned, []limits.Resolution, error) {
	loc, err := time.LoadLocation(s.TimeZone)
	if err != nil {
		return planned{}, nil, fmt.Errorf("organization time zone %q: %w", s.TimeZone, err)
	}
	eff, res := limits.Resolve(candidates, s.Subject)
	var p planned
	for _, l := range eff {
		start, err := limits.WindowStart(l.Window, now, loc)
		if err != nil {
			return planned{}, nil, err
		}
		p.checks = append(p.checks, limits.Check{
			Limit: l, WindowStart: start, ResetTime: limits.WindowEnd(l.Window, start, loc),
			Requested: req.Amount(l.Metric),
		})
		p.keys = append(p.keys, counterKey{l.ID, start.UTC()}) // map keys: one location
	}
	return p, res, nil
}

// FieldError is a request value Governor cannot accept; Field names it as the API does
// (e.g. "estimate.input_tokens"). The API answers InvalidArgument.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// UnpricedModelError refuses tokens that cannot be turned into cost under a cost limit:
// without a price the run would look free to its budget. The API answers
// FailedPrecondition.
type UnpricedModelError struct {
	Model   string
	LimitID string
	// Field is what the client could give instead ("estimate.cost_micros", "cost_micros").
	Field string
}

func (e *UnpricedModelError) Error() string {
	what := fmt.Sprintf("model %q has no price", e.Model)
	if e.Model == "" {
		what = "the run names no model, so its tokens have no price"
	}
	return fmt.Sprintf("%s, and cost limit %s applies: give %s, or price the model with "+
		"LimitService.SetModelPrice {\"model\": %q, \"input_micros_per_million_tokens\": …, \"output_micros_per_million_tokens\": …}",
		what, e.LimitID, e.Field, e.Model)
}

// costOf prices tokens of a model. priced is false when the model has no price (cost 0).
// A price of the bounded tokens above money.MaxCostMicros is a FieldError on the field
// that makes it so (prefix: "estimate." for estimates, "" for reports).
func costOf(prefix string, in, out int64, model string, prices map[string]pricing.Price) (cost int64, priced bool, err error) {
	p, ok := pricing.Lookup(prices, model)
	if !ok {
		return 0, false, nil
	}
	cost, err = p.Cost(in, out)
	if err == nil {
		return cost, true, nil
	}
	field := prefix + "input_tokens"
	if _, ierr := p.Cost(in, 0); ierr == nil {
		field = prefix + "output_tokens"
	}
	return 0, true, &FieldError{Field: field, Msg: fmt.Sprintf("at the price of %q these tokens cost more than $%d, the most one run may cost",
		model, money.MaxCostMicros/1_000_000)}
}

// estimateCost is the cost a run reserves: the estimate's cost if given, else the price of
// its estimated tokens. priced is false when tokens were given for a model without a price.
func estimateCost(e Estimate, model string, prices map[string]pricing.Price) (cost int64, priced bool, err error) {
	if e.CostMicros > 0 {
		return e.CostMicros, true, nil
	}
	if e.InputTokens == 0 && e.OutputTokens == 0 {
		return 0, true, nil
	}
	return costOf("estimate.", e.InputTokens, e.OutputTokens, model, prices)
}

// requireCostPriced refuses an unpriced estimate when a cost limit would check the run.
func requireCostPriced(priced bool, model string, checks []limits.Check) error {
	if priced {
		return nil
	}
	for _, c := range checks {
		if c.Limit.Metric == limits.MetricCost {
			return &UnpricedModelError{Model: model, LimitID: c.Limit.ID, Field: "estimate.cost_micros"}
		}
	}
	return nil
}

// pricesOf loads the custom prices of the given organizations for the given models.
func pricesOf(ctx context.Context, db dbsqlc.DBTX, orgs, models []string) (map[string]map[string]pricing.Price, error) {
	rows, err := dbsqlc.New().ModelPricesForModels(ctx, db, dbsqlc.ModelPricesForModelsParams{OrgIds: orgs, Models: models})
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]pricing.Price{}
	for _, r := range rows {
		if out[r.OrgID] == nil {
			out[r.OrgID] = map[string]pricing.Price{}
		}
		out[r.OrgID][r.Model] = pricing.Price{InputPerMTok: r.InputMicrosPerMtok, OutputPerMTok: r.OutputMicrosPerMtok}
	}
	return out, nil
}
