package runs

import (
	"context"
	"time"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/limits"
	"github.com/governor-hq/governor/internal/money"
)

// Prospect is a run that might be admitted.
type Prospect struct {
	OrgID    string
	AgentID  string
	APIKeyID string
	Model    string
	Feature  string
	Estimate Estimate
}

// subjectOf loads the agent's project and the organization's time zone.
func subjectOf(ctx context.Context, db dbsqlc.DBTX, p Prospect) (Subject, error) {
	rows, err := dbsqlc.New().AgentsForAdmission(ctx, db, []string{p.AgentID})
	if err != nil {
		return Subject{}, err
	}
	if len(rows) == 0 || rows[0].OrgID != p.OrgID {
		return Subject{}, ErrAgentNotFound
	}
	a := rows[0]
	return Subject{TimeZone: a.TimeZone, Subject: limits.Subject{
		OrgID: a.OrgID, ProjectID: a.ProjectID, AgentID: a.ID, APIKeyID: p.APIKeyID, Model: p.Model, Feature: p.Feature,
	}}, nil
}

func candidatesFor(ctx context.Context, db dbsqlc.DBTX, s Subject) ([]limits.Limit, error) {
	rows, err := dbsqlc.New().LimitsForSubjects(ctx, db, dbsqlc.LimitsForSubjectsParams{
		OrgIds: []string{s.OrgID}, ProjectIds: []string{s.ProjectID}, AgentIds: []string{s.AgentID}, ApiKeyIds: []string{s.APIKeyID},
	})
	if err != nil {
		return nil, err
	}
	out := make([]limits.Limit, 0, len(rows))
	for _, r := range rows {
		out = append(out, FromRow(r))
	}
	return out, nil
}

// Check is a dry run of admission: the checks AdmitRun would make now, without reserving.
// Reservations past their lease do not count, exactly as admission would release them.
func Check(ctx context.Context, db dbsqlc.DBTX, p Prospect) (limits.Decision, error) {
	s, err := subjectOf(ctx, db, p)
	if err != nil {
		return limits.Decision{}, err
	}
	cands, err := candidatesFor(ctx, db, s)
	if err != nil {
		return limits.Decision{}, err
	}
	prices, err := pricesOf(ctx, db, []string{s.OrgID}, []string{p.Model})
	if err != nil {
		return limits.Decision{}, err
	}
	cost, priced, err := estimateCost(p.Estimate, p.Model, prices[s.OrgID])
	if err != nil {
		return limits.Decision{}, err
	}
	pl, _, err := plan(s, cands, limits.Request{CostMicros: cost, Tokens: money.Add(p.Estimate.InputTokens, p.Estimate.OutputTokens)}, time.Now())
	if err != nil {
		return limits.Decision{}, err
	}
	if err := requireCostPriced(priced, p.Model, pl.checks); err != nil {
		return limits.Decision{}, err
	}
	if len(pl.keys) > 0 {
		lids, wins := keyArrays(pl.keys)
		rows, err := dbsqlc.New().CountersPeek(ctx, db, dbsqlc.CountersPeekParams{LimitIds: lids, WindowStarts: wins})
		if err != nil {
			return limits.Decision{}, err
		}
		got := map[counterKey]dbsqlc.CountersPeekRow{}
		for _, r := range rows {
			got[counterKey{r.LimitID, r.WindowStart.UTC()}] = r
		}
		for i, k := range pl.keys {
			pl.checks[i].Used, pl.checks[i].Reserved = got[k].Used, got[k].Reserved
		}
	}
	return limits.Decide(pl.checks), nil
}

// Effective resolves the limits governing runs of an agent (with a key, model and
// feature), with the reason for every limit considered.
func Effective(ctx context.Context, db dbsqlc.DBTX, p Prospect) ([]limits.Limit, []limits.Resolution, error) {
	s, err := subjectOf(ctx, db, p)
	if err != nil {
		return nil, nil, err
	}
	cands, err := candidatesFor(ctx, db, s)
	if err != nil {
		return nil, nil, err
	}
	eff, res := limits.Resolve(cands, s.Subject)
	return eff, res, nil
}
