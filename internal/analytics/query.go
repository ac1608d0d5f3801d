package analytics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/analytics/bucket"
	"github.com/governor-hq/governor/internal/analytics/usage"
	"github.com/governor-hq/governor/internal/runs"
)

// Query asks for usage over a time range.
type Query struct {
	OrgID string
	// Range; End zero means now. Both are widened to whole quarter-hours.
	Start, End time.Time
	// Zone is an IANA time zone for day, week and month buckets ("": the organization's).
	Zone        string
	Granularity bucket.Granularity
	// GroupBy: at most MaxGroupBy dimensions.
	GroupBy []usage.Dim
	// Include and Exclude filter on every dimension ("" matches records without a value).
	Include, Exclude map[usage.Dim][]string
	// TopN keeps, per grouped dimension, the values with the largest totals of OrderBy
	// and folds the rest into "other" (0: DefaultTopN).
	TopN    int
	OrderBy usage.Metric
	// Latency asks for latency sketches (percentiles), which cost more to read.
	Latency bool
	// CatchUp rolls what is queued first (up to a bound), so the answer includes every
	// record committed before the call. The API's reads do not (a read writes nothing);
	// they answer from the rollups as the background roller keeps them, about a second
	// behind, and say so in AsOf.
	CatchUp bool
}

// Bounds of a query.
const (
	MaxGroupBy  = 3
	DefaultTopN = 10
	MaxTopN     = 1000
	// catchUpMax bounds the queue a query rolls before it answers; past it, the answer
	// says how fresh it is instead of waiting.
	catchUpMax = 20_000
)

// Answer is a query's result.
type Answer struct {
	Range    bucket.Range
	Zone     string
	Buckets  []bucket.Bucket
	GroupBy  []usage.Dim
	Result   usage.Result
	Cube     string
	AsOf     *time.Time
	OtherOf  map[usage.Dim]int // values folded into "other", per grouped dimension
	Standing []GroupStanding
}

// GroupStanding is where the limits of a group's scope stand (when the grouping is one of
// a limit's scopes: none for the organization, project, agent or API key).
type GroupStanding struct {
	Value    string // the group's value ("" for the organization)
	Standing []runs.Standing
}

func (s *Service) location(ctx context.Context, org, zone string) (*time.Location, string, error) {
	if zone == "" {
		o, err := dbsqlc.New().OrgGet(ctx, s.pool, org)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, "", ErrNotFound
		}
		if err != nil {
			return nil, "", err
		}
		zone = o.TimeZone
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, "", fmt.Errorf("%w: time_zone: unknown time zone %q", ErrInvalid, zone)
	}
	return loc, zone, nil
}

// AsOf says how fresh the organization's rollups are: every record committed before it is
// in them (nil while they are rebuilt). It writes nothing.
func (s *Service) AsOf(ctx context.Context, org string) (*time.Time, error) {
	return s.catchUp(ctx, org, true)
}

// catchUp rolls what is queued for org (when there is not too much) and says how fresh
// the rollups are: every record committed before the time returned is in them.
func (s *Service) catchUp(ctx context.Context, org string, skip bool) (*time.Time, error) {
	q := dbsqlc.New()
	if skip {
		// Nothing queued: every record committed before now is in the rollups.
		now := time.Now()
		n, err := q.AnalyticsPendingCount(ctx, s.pool, dbsqlc.AnalyticsPendingCountParams{OrgID: org, Max: 1})
		if err != nil {
			return nil, err
		}
		if n == 0 {
			if st, err := q.AnalyticsSettingsGet(ctx, s.pool, org); err == nil && st.RolledThrough == nil {
				return nil, nil // being rebuilt
			}
			return &now, nil
		}
	}
	if !skip {
		n, err := q.AnalyticsPendingCount(ctx, s.pool, dbsqlc.AnalyticsPendingCountParams{OrgID: org, Max: catchUpMax + 1})
		if err != nil {
			return nil, err
		}
		if n <= catchUpMax {
			for {
				r, err := s.Roll(ctx, org, RollBatch, true)
				if err != nil {
					return nil, err
				}
				if r.Drained {
					t := r.Through
					return &t, nil
				}
			}
		}
	}
	st, err := q.AnalyticsSettingsGet(ctx, s.pool, org)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return st.RolledThrough, nil
}

func pieces(bs []bucket.Bucket, c usage.Cube, p *dbsqlc.AnalyticsQueryParams) error {
	for i, b := range bs {
		ps, err := bucket.Decompose(b.Range, c.Grains)
		if err != nil {
			return err
		}
		for _, x := range ps {
			p.PieceGrains = append(p.PieceGrains, int16(x.Grain/time.Minute))
			p.PieceStarts, p.PieceEnds = append(p.PieceStarts, x.Start), append(p.PieceEnds, x.End)
			p.PieceBuckets = append(p.PieceBuckets, int32(i))
		}
	}
	return nil
}

// filters sets the include and exclude lists of every dimension.
func filters(p *dbsqlc.AnalyticsQueryParams, in, out map[usage.Dim][]string) {
	get := func(m map[usage.Dim][]string, d usage.Dim) []string {
		if v := m[d]; v != nil {
			return v
		}
		return []string{}
	}
	p.InProject, p.OutProject = get(in, usage.Project), get(out, usage.Project)
	p.InAgent, p.OutAgent = get(in, usage.Agent), get(out, usage.Agent)
	p.InApiKey, p.OutApiKey = get(in, usage.APIKey), get(out, usage.APIKey)
	p.InProvider, p.OutProvider = get(in, usage.Provider), get(out, usage.Provider)
	p.InModel, p.OutModel = get(in, usage.Model), get(out, usage.Model)
	p.InFeature, p.OutFeature = get(in, usage.Feature), get(out, usage.Feature)
	p.InRunStatus, p.OutRunStatus = get(in, usage.RunStatus), get(out, usage.RunStatus)
	p.InTag, p.OutTag = get(in, usage.Tag), get(out, usage.Tag)
}

// grouping sets, for each dimension, whether it is grouped and its top values.
func grouping(p *dbsqlc.AnalyticsQueryParams, d usage.Dim, grouped, fold bool, top []string) {
	if top == nil {
		top = []string{}
	}
	switch d {
	case usage.Project:
		p.GProject, p.FoldProject, p.TopProject = grouped, fold, top
	case usage.Agent:
		p.GAgent, p.FoldAgent, p.TopAgent = grouped, fold, top
	case usage.APIKey:
		p.GApiKey, p.FoldApiKey, p.TopApiKey = grouped, fold, top
	case usage.Provider:
		p.GProvider, p.FoldProvider, p.TopProvider = grouped, fold, top
	case usage.Model:
		p.GModel, p.FoldModel, p.TopModel = grouped, fold, top
	case usage.Feature:
		p.GFeature, p.FoldFeature, p.TopFeature = grouped, fold, top
	case usage.RunStatus:
		p.GRunStatus, p.FoldRunStatus, p.TopRunStatus = grouped, fold, top
	case usage.Tag:
		p.GTag, p.FoldTag, p.TopTag = grouped, fold, top
	}
}

func measures(r dbsqlc.AnalyticsQueryRow) (usage.Measures, error) {
	m := usage.Measures{Cost: r.CostMicros, Input: r.InputTokens, Output: r.OutputTokens, CacheRead: r.CacheReadTokens,
		CacheWrite: r.CacheWriteTokens, Reasoning: r.ReasoningTokens, Succeeded: r.RunsSucceeded, Failed: r.RunsFailed,
		Cancelled: r.RunsCancelled, Expired: r.RunsExpired, Blocked: r.RunsBlocked, Admitted: r.Admitted,
		BlockedLimit: r.BlockedLimit, BlockedPolicy: r.BlockedPolicy, BlockedRate: r.BlockedRate, Warned: r.Warned,
		Calls: r.Calls, CallErrors: r.CallErrors, CacheHitCalls: r.CacheHitCalls}
	for _, sk := range []struct {
		raw  json.RawMessage
		into *usage.Measures
		run  bool
	}{{r.RunLatency, &m, true}, {r.CallLatency, &m, false}} {
		if len(sk.raw) == 0 || string(sk.raw) == "null" {
			continue
		}
		target := &sk.into.CallLatency
		if sk.run {
			target = &sk.into.RunLatency
		}
		if err := json.Unmarshal(sk.raw, target); err != nil {
			return m, fmt.Errorf("latency sketch: %w", err)
		}
	}
	return m, nil
}

func marginal(r dbsqlc.AnalyticsMarginalsRow) usage.Measures {
	return usage.Measures{Cost: r.CostMicros, Input: r.InputTokens, Output: r.OutputTokens, CacheRead: r.CacheReadTokens,
		CacheWrite: r.CacheWriteTokens, Reasoning: r.ReasoningTokens, Succeeded: r.RunsSucceeded, Failed: r.RunsFailed,
		Cancelled: r.RunsCancelled, Expired: r.RunsExpired, Blocked: r.RunsBlocked, Admitted: r.Admitted,
		BlockedLimit: r.BlockedLimit, BlockedPolicy: r.BlockedPolicy, BlockedRate: r.BlockedRate, Warned: r.Warned,
		Calls: r.Calls, CallErrors: r.CallErrors, CacheHitCalls: r.CacheHitCalls}
}

func rowValue(r dbsqlc.AnalyticsQueryRow, d usage.Dim) usage.Value {
	vals := [usage.NumDims]string{r.ProjectID, r.AgentID, r.ApiKeyID, r.Provider, r.Model, r.Feature, r.RunStatus, r.Tag}
	others := [usage.NumDims]bool{r.ProjectOther, r.AgentOther, r.ApiKeyOther, r.ProviderOther, r.ModelOther, r.FeatureOther,
		r.RunStatusOther, r.TagOther}
	return usage.Value{V: vals[d], Other: others[d]}
}

// QueryUsage answers a usage query from the rollups.
func (s *Service) QueryUsage(ctx context.Context, qu Query) (Answer, error) {
	var ans Answer
	if len(qu.GroupBy) > MaxGroupBy {
		return ans, fmt.Errorf("%w: group_by: at most %d dimensions", ErrInvalid, MaxGroupBy)
	}
	seen := map[usage.Dim]bool{}
	for _, d := range qu.GroupBy {
		if d < 0 || d >= usage.NumDims || seen[d] {
			return ans, fmt.Errorf("%w: group_by: each dimension once", ErrInvalid)
		}
		seen[d] = true
	}
	if qu.TopN <= 0 {
		qu.TopN = DefaultTopN
	}
	qu.TopN = min(qu.TopN, MaxTopN)
	if qu.OrderBy == "" {
		qu.OrderBy = usage.MetricCost
	}
	loc, zone, err := s.location(ctx, qu.OrgID, qu.Zone)
	if err != nil {
		return ans, err
	}
	end := qu.End
	if end.IsZero() {
		end = s.now()
	}
	if !end.After(qu.Start) {
		return ans, fmt.Errorf("%w: end_time: must be after start_time", ErrInvalid)
	}
	r := bucket.Snap(qu.Start, end)
	bs, err := bucket.Buckets(r, qu.Granularity, loc)
	if errors.Is(err, bucket.ErrTooManyBuckets) {
		return ans, fmt.Errorf("%w: granularity: %v (choose a coarser granularity or a shorter range)", ErrInvalid, err)
	}
	if err != nil {
		return ans, err
	}
	need := slices.Clone(qu.GroupBy)
	for d, v := range qu.Include {
		if len(v) > 0 {
			need = append(need, d)
		}
	}
	for d, v := range qu.Exclude {
		if len(v) > 0 {
			need = append(need, d)
		}
	}
	cube := usage.Pick(need)
	ans = Answer{Range: r, Zone: zone, Buckets: bs, GroupBy: qu.GroupBy, Cube: cube.Name, OtherOf: map[usage.Dim]int{}}
	if ans.AsOf, err = s.catchUp(ctx, qu.OrgID, !qu.CatchUp); err != nil {
		return ans, err
	}
	p := dbsqlc.AnalyticsQueryParams{OrgID: qu.OrgID, Cube: cube.ID, WithLatency: qu.Latency}
	if err := pieces(bs, cube, &p); err != nil {
		return ans, err
	}
	filters(&p, qu.Include, qu.Exclude)
	for d := range usage.NumDims {
		grouping(&p, d, false, false, nil)
	}
	q := dbsqlc.New()
	for _, d := range qu.GroupBy {
		// The top values over the whole range rank the dimension; the rest are "other".
		mp := dbsqlc.AnalyticsMarginalsParams{Dim: int32(d), PieceGrains: p.PieceGrains, PieceStarts: p.PieceStarts,
			PieceEnds: p.PieceEnds, PieceBuckets: p.PieceBuckets, OrgID: p.OrgID, Cube: p.Cube,
			InProject: p.InProject, OutProject: p.OutProject, InAgent: p.InAgent, OutAgent: p.OutAgent,
			InApiKey: p.InApiKey, OutApiKey: p.OutApiKey, InProvider: p.InProvider, OutProvider: p.OutProvider,
			InModel: p.InModel, OutModel: p.OutModel, InFeature: p.InFeature, OutFeature: p.OutFeature,
			InRunStatus: p.InRunStatus, OutRunStatus: p.OutRunStatus, InTag: p.InTag, OutTag: p.OutTag}
		rows, err := q.AnalyticsMarginals(ctx, s.pool, mp)
		if err != nil {
			return ans, err
		}
		ms := make([]usage.Marginal, len(rows))
		for i, r := range rows {
			ms[i] = usage.Marginal{Value: r.Value, M: marginal(r)}
		}
		keep, folded := usage.Top(ms, qu.TopN, qu.OrderBy)
		grouping(&p, d, true, folded > 0, keep)
		ans.OtherOf[d] = folded
	}
	rows, err := q.AnalyticsQuery(ctx, s.pool, p)
	if err != nil {
		return ans, err
	}
	out := make([]usage.Row, 0, len(rows))
	for _, r := range rows {
		m, err := measures(r)
		if err != nil {
			return ans, err
		}
		vs := make([]usage.Value, len(qu.GroupBy))
		for i, d := range qu.GroupBy {
			vs[i] = rowValue(r, d)
		}
		out = append(out, usage.Row{Bucket: int(r.Bucket), Values: vs, M: m})
	}
	ans.Result = usage.Assemble(out, len(bs), qu.OrderBy)
	if ans.Standing, err = s.standingOf(ctx, qu, ans.Result); err != nil {
		return ans, err
	}
	return ans, nil
}

// standingOf is where the limits of the grouping's scope stand, per group: for no
// grouping the organization's limits, for a grouping by project, agent or API key those
// of each group's value.
func (s *Service) standingOf(ctx context.Context, qu Query, res usage.Result) ([]GroupStanding, error) {
	scope := ""
	switch {
	case len(qu.GroupBy) == 0:
		scope = "organization"
	case len(qu.GroupBy) == 1 && qu.GroupBy[0] == usage.Project:
		scope = "project"
	case len(qu.GroupBy) == 1 && qu.GroupBy[0] == usage.Agent:
		scope = "agent"
	case len(qu.GroupBy) == 1 && qu.GroupBy[0] == usage.APIKey:
		scope = "api_key"
	default:
		return nil, nil
	}
	var ids []string
	if scope != "organization" {
		ids = []string{}
		for _, g := range res.Groups {
			if !g.Values[0].Other && g.Values[0].V != "" {
				ids = append(ids, g.Values[0].V)
			}
		}
		if len(ids) == 0 {
			return nil, nil
		}
	}
	// Limits' windows are the organization's, whatever zone the query asked for.
	orgLoc, _, err := s.location(ctx, qu.OrgID, "")
	if err != nil {
		return nil, err
	}
	st, err := runs.Standings(ctx, s.pool, qu.OrgID, scope, ids, orgLoc, s.now())
	if err != nil {
		return nil, err
	}
	by := map[string][]runs.Standing{}
	for _, x := range st {
		k := x.Limit.ScopeID
		if scope == "organization" {
			k = ""
		}
		by[k] = append(by[k], x)
	}
	var out []GroupStanding
	if scope == "organization" {
		if len(by[""]) > 0 {
			out = append(out, GroupStanding{Value: "", Standing: by[""]})
		}
		return out, nil
	}
	for _, id := range ids {
		if len(by[id]) > 0 {
			out = append(out, GroupStanding{Value: id, Standing: by[id]})
		}
	}
	return out, nil
}
