package anomaly

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/actor"
	"github.com/governor-hq/governor/internal/alerts"
	"github.com/governor-hq/governor/internal/change"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/incidents"
	"github.com/governor-hq/governor/internal/limits"
)

// DayLayout is how days are written (in the organization's time zone).
const DayLayout = "2006-01-02"

// MaxCatchUpDays bounds how many missed days a scheduled batch evaluates for an
// organization after an outage (the most recent ones).
const MaxCatchUpDays = 7

// sealGrace is how long after a day ends its rollup is taken as final (a settlement
// transaction that began before midnight may commit just after).
const sealGrace = 5 * time.Minute

// Detector runs detection for one organization at a time.
type Detector struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	// PageSize is how many entities one page evaluates (and one transaction writes).
	PageSize int
	// Now is the clock (tests).
	Now func() time.Time
}

// NewDetector returns a detector with pages of 500 entities.
func NewDetector(pool *pgxpool.Pool, log *slog.Logger) *Detector {
	return &Detector{pool: pool, log: log, PageSize: 500, Now: time.Now}
}

// Request is one organization's detection.
type Request struct {
	OrgID string `json:"org_id"`
	// RunID is the run row of an on-demand request; scheduled batches make theirs from
	// WorkflowID.
	RunID      string `json:"run_id,omitempty"`
	WorkflowID string `json:"workflow_id"`
	// Day to evaluate (YYYY-MM-DD); empty: the days due (scheduled) or yesterday.
	Day       string `json:"day,omitempty"`
	Scheduled bool   `json:"scheduled,omitempty"`
}

// Progress is how far a detection got: it is the activity's heartbeat, so a retried
// activity (after a worker crash) resumes at the page after the last one committed.
type Progress struct {
	RunID    string   `json:"run_id"`
	Days     []string `json:"days"`
	DayIndex int      `json:"day_index"`
	// The last entity of the last committed page of Days[DayIndex].
	AfterType string `json:"after_type"`
	AfterID   string `json:"after_id"`
	// Pages committed so far (all days).
	Pages int `json:"pages"`
	// Budgets are checked.
	BudgetsDone bool `json:"budgets_done"`
}

// Summary is what a detection did.
type Summary struct {
	RunID            string   `json:"run_id"`
	Days             []string `json:"days"`
	DaysRolledUp     int      `json:"days_rolled_up"`
	Pages            int      `json:"pages"`
	SeriesEvaluated  int64    `json:"series_evaluated"`
	AnomaliesFound   int      `json:"anomalies_found"`
	AnomaliesCreated int      `json:"anomalies_created"`
	IncidentsLinked  int      `json:"incidents_linked"`
	AlertsRaised     int      `json:"alerts_raised"`
}

// counts of one committed page.
type counts struct {
	series                           int64
	found, created, incidents, alert int
}

func (s *Summary) add(c counts) {
	s.SeriesEvaluated += c.series
	s.AnomaliesFound += c.found
	s.AnomaliesCreated += c.created
	s.IncidentsLinked += c.incidents
	s.AlertsRaised += c.alert
}

// Config reads an organization's settings (the defaults when it has none).
func ConfigOf(ctx context.Context, db dbsqlc.DBTX, orgID string) (Config, error) {
	row, err := dbsqlc.New().AnomalySettingsGet(ctx, db, orgID)
	if errors.Is(err, pgx.ErrNoRows) {
		return DefaultConfig(), nil
	}
	if err != nil {
		return Config{}, err
	}
	return Config{
		Enabled: row.Enabled, Metrics: row.Metrics, Methods: row.Methods,
		Thresholds:   Thresholds{Info: row.InfoThreshold, Warning: row.WarningThreshold, High: row.HighThreshold, Critical: row.CriticalThreshold},
		LookbackDays: int(row.LookbackDays), MinDataPoints: int(row.MinDataPoints), MinDailyRuns: int(row.MinDailyRuns),
	}, nil
}

// LastCompleteDay is the last calendar day in loc that has ended at now.
func LastCompleteDay(now time.Time, loc *time.Location) time.Time {
	l := now.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day()-1, 0, 0, 0, 0, loc)
}

func dayStart(day string, loc *time.Location) (time.Time, error) {
	return time.ParseInLocation(DayLayout, day, loc)
}

// Run detects anomalies in one organization, resuming from p. onPage is called after
// every committed page and rolled-up day with the progress so far (the activity
// heartbeats it).
func (d *Detector) Run(ctx context.Context, req Request, p Progress, onPage func(Progress)) (Summary, error) {
	if onPage == nil {
		onPage = func(Progress) {}
	}
	q := dbsqlc.New()
	org, err := q.OrgGet(ctx, d.pool, req.OrgID)
	if err != nil {
		return Summary{}, fmt.Errorf("organization %s: %w", req.OrgID, err)
	}
	loc, err := time.LoadLocation(org.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	cfg, err := ConfigOf(ctx, d.pool, req.OrgID)
	if err != nil {
		return Summary{}, err
	}
	now := d.Now()
	if p.RunID == "" {
		if p.RunID, p.Days, err = d.begin(ctx, req, cfg, now, loc); err != nil {
			return Summary{}, err
		}
		onPage(p)
	}
	sum := Summary{RunID: p.RunID, Days: p.Days, Pages: p.Pages}
	by := actor.System("workflow:" + req.WorkflowID)
	if cfg.Enabled {
		for ; p.DayIndex < len(p.Days); p.DayIndex++ {
			day, err := dayStart(p.Days[p.DayIndex], loc)
			if err != nil {
				return sum, err
			}
			rolled, err := d.rollUp(ctx, req.OrgID, day, cfg.LookbackDays, loc, now, func() { onPage(p) })
			if err != nil {
				return sum, err
			}
			sum.DaysRolledUp += rolled
			for {
				c, last, more, err := d.page(ctx, req, p, day, cfg, loc, by)
				if err != nil {
					return sum, err
				}
				sum.add(c)
				p.Pages++
				sum.Pages = p.Pages
				p.AfterType, p.AfterID = last[0], last[1]
				onPage(p)
				if !more {
					break
				}
			}
			p.AfterType, p.AfterID = "", ""
		}
	}
	if !p.BudgetsDone {
		c, err := d.budgets(ctx, req, p.RunID, cfg, loc, now, by)
		if err != nil {
			return sum, err
		}
		sum.add(c)
		p.BudgetsDone = true
		onPage(p)
	}
	if req.Scheduled && len(p.Days) > 0 {
		last, _ := dayStart(p.Days[len(p.Days)-1], loc)
		if err := q.AnomalyProgressAdvance(ctx, d.pool, dbsqlc.AnomalyProgressAdvanceParams{OrgID: req.OrgID, EvaluatedThrough: date(last)}); err != nil {
			return sum, err
		}
	}
	run, err := q.AnomalyRunFinish(ctx, d.pool, dbsqlc.AnomalyRunFinishParams{ID: p.RunID, Status: "succeeded"})
	if err != nil {
		return sum, err
	}
	sum.SeriesEvaluated, sum.AnomaliesFound, sum.AnomaliesCreated = run.SeriesEvaluated, int(run.AnomaliesFound), int(run.AnomaliesCreated)
	sum.IncidentsLinked, sum.AlertsRaised = int(run.IncidentsLinked), int(run.AlertsRaised)
	return sum, recordRan(ctx, d.pool, req, sum)
}

// begin makes (or finds) the run row and decides the days to evaluate.
func (d *Detector) begin(ctx context.Context, req Request, cfg Config, now time.Time, loc *time.Location) (string, []string, error) {
	q := dbsqlc.New()
	last := LastCompleteDay(now, loc)
	var days []time.Time
	switch {
	case req.Day != "":
		day, err := dayStart(req.Day, loc)
		if err != nil {
			return "", nil, fmt.Errorf("day %q: %w", req.Day, err)
		}
		days = []time.Time{day}
	case req.Scheduled:
		through, err := q.AnomalyProgressGet(ctx, d.pool, req.OrgID)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			days = []time.Time{last}
		case err != nil:
			return "", nil, err
		default:
			from := time.Date(through.Time.Year(), through.Time.Month(), through.Time.Day()+1, 0, 0, 0, 0, loc)
			if earliest := last.AddDate(0, 0, -(MaxCatchUpDays - 1)); from.Before(earliest) {
				from = earliest
			}
			for day := from; !day.After(last); day = day.AddDate(0, 0, 1) {
				days = append(days, day)
			}
		}
	default:
		days = []time.Time{last}
	}
	var names []string
	var dates []pgtype.Date
	for _, day := range days {
		names = append(names, day.Format(DayLayout))
		dates = append(dates, date(day))
	}
	runID := req.RunID
	if runID == "" {
		run, err := q.AnomalyRunForWorkflow(ctx, d.pool, dbsqlc.AnomalyRunForWorkflowParams{OrgID: req.OrgID, ID: ids.New(ids.AnomalyRun), WorkflowID: req.WorkflowID})
		if err != nil {
			return "", nil, err
		}
		runID = run.ID
	}
	if dates == nil {
		dates = []pgtype.Date{}
	}
	if _, err := q.AnomalyRunStart(ctx, d.pool, dbsqlc.AnomalyRunStartParams{ID: runID, Days: dates}); err != nil {
		return "", nil, fmt.Errorf("start anomaly run %s: %w", runID, err)
	}
	if !cfg.Enabled {
		names = nil
	}
	return runID, names, nil
}

func date(t time.Time) pgtype.Date {
	return pgtype.Date{Time: time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC), Valid: true}
}

// rollUp makes sure every day of the window [day-lookback, day] is rolled up; days that
// were rolled up after they ended are final and skipped. It returns how many days it
// rolled up.
func (d *Detector) rollUp(ctx context.Context, orgID string, day time.Time, lookback int, loc *time.Location, now time.Time, progress func()) (int, error) {
	q := dbsqlc.New()
	from := day.AddDate(0, 0, -lookback)
	done, err := q.UsageDaysComplete(ctx, d.pool, dbsqlc.UsageDaysCompleteParams{OrgID: orgID, FromDay: date(from), ToDay: date(day)})
	if err != nil {
		return 0, err
	}
	final := map[string]bool{}
	for _, dd := range done {
		final[dd.Time.Format(DayLayout)] = true
	}
	n := 0
	for t := from; !t.After(day); t = t.AddDate(0, 0, 1) {
		if final[t.Format(DayLayout)] {
			continue
		}
		end := limits.WindowEnd(limits.WindowDay, t, loc)
		if _, err := q.UsageDailyRollup(ctx, d.pool, dbsqlc.UsageDailyRollupParams{
			OrgID: orgID, Day: date(t), StartTime: t, EndTime: end, Complete: !end.Add(sealGrace).After(now),
		}); err != nil {
			return n, fmt.Errorf("roll up %s: %w", t.Format(DayLayout), err)
		}
		n++
		progress()
	}
	return n, nil
}

// page evaluates the next page of entities for a day and writes what it finds in one
// transaction. It returns the page's last entity and whether more follow.
func (d *Detector) page(ctx context.Context, req Request, p Progress, day time.Time, cfg Config, loc *time.Location, by actor.Actor) (counts, [2]string, bool, error) {
	q := dbsqlc.New()
	var c counts
	last := [2]string{p.AfterType, p.AfterID}
	from := day.AddDate(0, 0, -cfg.LookbackDays)
	ents, err := q.UsageDailyEntities(ctx, d.pool, dbsqlc.UsageDailyEntitiesParams{
		OrgID: req.OrgID, FromDay: date(from), ToDay: date(day), AfterType: p.AfterType, AfterID: p.AfterID, Max: int32(d.PageSize),
	})
	if err != nil || len(ents) == 0 {
		return c, last, false, err
	}
	rows, err := q.UsageDailySeries(ctx, d.pool, dbsqlc.UsageDailySeriesParams{
		OrgID: req.OrgID, FromDay: date(from), ToDay: date(day),
		FirstType: ents[0].EntityType, FirstID: ents[0].EntityID, LastType: ents[len(ents)-1].EntityType, LastID: ents[len(ents)-1].EntityID,
	})
	if err != nil {
		return c, last, false, err
	}
	last = [2]string{ents[len(ents)-1].EntityType, ents[len(ents)-1].EntityID}
	more := len(ents) == d.PageSize
	type found struct {
		entityType, entityID string
		f                    Finding
	}
	var finds []found
	n := cfg.LookbackDays + 1
	for i := 0; i < len(rows); {
		j := i
		for j < len(rows) && rows[j].EntityType == rows[i].EntityType && rows[j].EntityID == rows[i].EntityID {
			j++
		}
		if rows[i].EntityID != "" {
			s := Series{Days: make([]Day, n), Present: make([]bool, n)}
			for _, r := range rows[i:j] {
				k := int(math.Round(r.Day.Time.Sub(date(from).Time).Hours() / 24))
				if k < 0 || k >= n {
					continue
				}
				s.Days[k] = Day{CostMicros: r.CostMicros, Tokens: r.Tokens, Runs: r.Runs, Failed: r.Failed, LatencySumMs: r.LatencySumMs, LatencyCount: r.LatencyCount}
				s.Present[k] = true
			}
			c.series += int64(len(cfg.Metrics))
			for _, f := range DetectSeries(s, cfg) {
				finds = append(finds, found{rows[i].EntityType, rows[i].EntityID, f})
			}
		}
		i = j
	}
	err = pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		c2 := counts{series: c.series}
		for _, fd := range finds {
			created, inc, alerted, err := d.recordSpike(ctx, tx, req, p.RunID, fd.entityType, fd.entityID, day, loc, fd.f, by)
			if err != nil {
				return err
			}
			c2.found++
			if created {
				c2.created++
			}
			if inc {
				c2.incidents++
			}
			if alerted {
				c2.alert++
			}
		}
		c = c2
		return q.AnomalyRunAdd(ctx, tx, dbsqlc.AnomalyRunAddParams{ID: p.RunID, SeriesEvaluated: c.series, AnomaliesFound: int32(c.found),
			AnomaliesCreated: int32(c.created), IncidentsLinked: int32(c.incidents), AlertsRaised: int32(c.alert)})
	})
	return c, last, more, err
}

var metricWords = map[string]string{MetricCost: "Cost", MetricTokens: "Tokens", MetricErrorRate: "Error rate", MetricLatency: "Latency"}

// Format renders a metric's value for people.
func Format(metric string, v float64) string {
	switch metric {
	case MetricCost:
		return alerts.Money(int64(math.Round(v)))
	case MetricTokens:
		return fmt.Sprintf("%.0f tokens", v)
	case MetricErrorRate:
		return fmt.Sprintf("%.1f%%", v*100)
	case MetricLatency:
		return fmt.Sprintf("%.0f ms", v)
	}
	return fmt.Sprintf("%g", v)
}

func entityWords(entityType, entityID string) string {
	switch entityType {
	case "organization":
		return "the organization"
	case "api_key":
		return "API key " + entityID
	}
	return strings.ReplaceAll(entityType, "_", " ") + " " + entityID
}

// recordSpike writes one finding: the anomaly (unless found before), and for a new one
// its incident (high and critical) and its alert (warning and above).
func (d *Detector) recordSpike(ctx context.Context, tx pgx.Tx, req Request, runID, entityType, entityID string, day time.Time, loc *time.Location, f Finding, by actor.Actor) (created, incident, alerted bool, err error) {
	q := dbsqlc.New()
	// A spike of the organization, an API key or a model that an agent's spike of the same
	// metric and day explains (for sums: at least half the excess) is the same problem:
	// it joins that anomaly's incident and alert instead of raising its own.
	var cause *dbsqlc.Anomaly
	if entityType != "agent" {
		minExcess := (f.Observed - f.Baseline) / 2
		if f.Metric == MetricErrorRate || f.Metric == MetricLatency {
			minExcess = -math.MaxFloat64
		}
		c, err := q.AnomalyExplaining(ctx, tx, dbsqlc.AnomalyExplainingParams{OrgID: req.OrgID, Metric: f.Metric, Day: date(day), MinExcess: minExcess})
		switch {
		case err == nil:
			cause = &c
			f.Context["explained_by"] = c.ID
		case !errors.Is(err, pgx.ErrNoRows):
			return false, false, false, err
		}
	}
	ctxJSON, err := json.Marshal(f.Context)
	if err != nil {
		return false, false, false, err
	}
	dayName := day.Format(DayLayout)
	a, err := q.AnomalyInsert(ctx, tx, dbsqlc.AnomalyInsertParams{
		OrgID: req.OrgID, ID: ids.New(ids.Anomaly), DedupeKey: fmt.Sprintf("spike/%s/%s/%s/%s", entityType, entityID, f.Metric, dayName),
		Type: TypeMetricSpike, EntityType: entityType, EntityID: entityID, Metric: f.Metric, Method: f.Method, Severity: f.Severity,
		Day: date(day), WindowStart: day, WindowEnd: limits.WindowEnd(limits.WindowDay, day, loc), Baseline: f.Baseline,
		Observed: f.Observed, Deviation: f.Deviation, Score: int32(f.Score), Confidence: f.Confidence, Context: ctxJSON, RunID: &runID,
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, false, nil // found by an earlier run
	}
	if err != nil {
		return false, false, false, err
	}
	title := fmt.Sprintf("%s of %s on %s: %s, %.1fσ above its usual %s", metricWords[f.Metric], entityWords(entityType, entityID), dayName,
		Format(f.Metric, f.Observed), f.Deviation, Format(f.Metric, f.Baseline))
	related := []events.Ref{{Type: entityType, ID: entityID}}
	if entityType == "organization" || entityType == "model" {
		related = nil
	}
	if err := change.On(tx, change.Scope{OrgID: req.OrgID, Actor: by}).Record(ctx, "anomaly.detect", nil, anomalyState(a), events.Event{
		Domain: events.DomainAnomalies, Type: "anomaly_detected", Entity: events.Ref{Type: "anomaly", ID: a.ID},
		Related: related, CorrelationID: a.ID, Summary: fmt.Sprintf("Anomaly (%s, %s): %s", a.Severity, a.Method, title),
		Data: map[string]any{"type": a.Type, "metric": a.Metric, "method": a.Method, "severity": a.Severity, "score": a.Score,
			"confidence": a.Confidence, "entity_type": entityType, "entity_id": entityID, "day": dayName},
	}); err != nil {
		return true, false, false, err
	}
	if cause != nil {
		if cause.IncidentID != nil || cause.AlertID != nil {
			if _, err := q.AnomalyLink(ctx, tx, dbsqlc.AnomalyLinkParams{ID: a.ID, IncidentID: cause.IncidentID, AlertID: cause.AlertID}); err != nil {
				return true, false, false, err
			}
		}
		return true, cause.IncidentID != nil, false, nil
	}
	var incidentID, alertID *string
	if SeverityRank(f.Severity) >= SeverityRank(SeverityHigh) {
		o := incidents.Occurrence{
			OrgID: req.OrgID, Category: incidents.CostAnomaly, Key: []string{entityType, entityID, f.Metric},
			Title: title, Severity: f.Severity, Source: events.Ref{Type: "anomaly", ID: a.ID},
			Data: map[string]any{"anomaly_id": a.ID, "metric": f.Metric, "day": dayName, "observed": f.Observed, "baseline": f.Baseline,
				"deviation": f.Deviation, "method": f.Method},
		}
		if entityType == "agent" {
			o.AgentID = entityID
		}
		if f.Metric == MetricCost && f.Observed > f.Baseline {
			o.CostMicros = int64(f.Observed - f.Baseline)
		}
		rec, err := incidents.Record(ctx, tx, o, by)
		if err != nil {
			return true, false, false, fmt.Errorf("record incident: %w", err)
		}
		incidentID = &rec.Incident.ID
		related = append(related, events.Ref{Type: "incident", ID: rec.Incident.ID})
	}
	if SeverityRank(f.Severity) >= SeverityRank(SeverityWarning) {
		id, _, err := alerts.Raise(ctx, tx, alerts.Trigger{
			OrgID: req.OrgID, Kind: alerts.KindAnomaly, Severity: f.Severity, DedupeKey: "anomaly/" + a.ID, Title: title,
			Body: fmt.Sprintf("Detected by %s (score %d/100, confidence %.0f%%) against the %d days before.", methodWords[f.Method], f.Score,
				f.Confidence*100, f.Context["points"]),
			Entity: events.Ref{Type: "anomaly", ID: a.ID}, Related: related,
			Data: map[string]any{"anomaly_id": a.ID, "metric": f.Metric, "method": f.Method, "day": dayName, "observed": f.Observed,
				"baseline": f.Baseline, "deviation": f.Deviation, "score": f.Score, "entity_type": entityType, "entity_id": entityID},
		})
		if err != nil {
			return true, incidentID != nil, false, fmt.Errorf("raise alert: %w", err)
		}
		alertID = &id
	}
	if incidentID != nil || alertID != nil {
		if _, err := q.AnomalyLink(ctx, tx, dbsqlc.AnomalyLinkParams{ID: a.ID, IncidentID: incidentID, AlertID: alertID}); err != nil {
			return true, incidentID != nil, alertID != nil, err
		}
	}
	return true, incidentID != nil, alertID != nil, nil
}

var methodWords = map[string]string{MethodZScore: "z-score", MethodIQR: "IQR", MethodBudget: "budget"}

// budgets records a BUDGET_EXCEEDED anomaly for every cost budget whose usage went past
// its amount in a window that started within the lookback (or the last 35 days, so the
// previous month is always covered). Each opens (or joins) an incident and raises the
// budget-exceeded alert, unless the settlement that went over raised it already.
func (d *Detector) budgets(ctx context.Context, req Request, runID string, cfg Config, loc *time.Location, now time.Time, by actor.Actor) (counts, error) {
	q := dbsqlc.New()
	var c counts
	since := now.AddDate(0, 0, -max(cfg.LookbackDays, 35))
	breaches, err := q.BudgetBreaches(ctx, d.pool, dbsqlc.BudgetBreachesParams{OrgID: req.OrgID, Since: since})
	if err != nil || len(breaches) == 0 {
		return c, err
	}
	err = pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		c = counts{}
		for _, b := range breaches {
			created, inc, alerted, err := d.recordBreach(ctx, tx, req, runID, b, loc, by)
			if err != nil {
				return err
			}
			c.found++
			if created {
				c.created++
			}
			if inc {
				c.incidents++
			}
			if alerted {
				c.alert++
			}
		}
		return q.AnomalyRunAdd(ctx, tx, dbsqlc.AnomalyRunAddParams{ID: runID, AnomaliesFound: int32(c.found),
			AnomaliesCreated: int32(c.created), IncidentsLinked: int32(c.incidents), AlertsRaised: int32(c.alert)})
	})
	return c, err
}

func (d *Detector) recordBreach(ctx context.Context, tx pgx.Tx, req Request, runID string, b dbsqlc.BudgetBreachesRow, loc *time.Location, by actor.Actor) (created, incident, alerted bool, err error) {
	q := dbsqlc.New()
	over := float64(b.Used-b.Amount) / float64(b.Amount) * 100
	end := limits.WindowEnd(b.WindowKind, b.WindowStart, loc)
	entityType, entityID := b.ScopeType, b.ScopeID
	sev := SeverityHigh
	if b.Used >= 2*b.Amount {
		sev = SeverityCritical
	}
	score := min(100, 50+int(math.Round(over)))
	ctxJSON, _ := json.Marshal(map[string]any{"limit_id": b.LimitID, "limit_name": b.Name, "window": b.WindowKind, "amount": b.Amount,
		"used": b.Used, "model": b.Model, "feature": b.Feature})
	ws := b.WindowStart.In(loc)
	a, err := q.AnomalyInsert(ctx, tx, dbsqlc.AnomalyInsertParams{
		OrgID: req.OrgID, ID: ids.New(ids.Anomaly), DedupeKey: "budget/" + b.LimitID + "/" + b.WindowStart.UTC().Format(time.RFC3339),
		Type: TypeBudgetExceeded, EntityType: entityType, EntityID: entityID, Metric: MetricCost, Method: MethodBudget, Severity: sev,
		Day: date(ws), WindowStart: b.WindowStart, WindowEnd: end, Baseline: float64(b.Amount), Observed: float64(b.Used),
		Deviation: math.Round(over*100) / 100, Score: int32(score), Confidence: 1, Context: ctxJSON, LimitID: &b.LimitID, RunID: &runID,
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, false, nil
	}
	if err != nil {
		return false, false, false, err
	}
	name := b.Name
	if name == "" {
		name = b.WindowKind + " cost budget " + b.LimitID
	}
	title := fmt.Sprintf("Budget exceeded: %s at %s of %s (%.0f%% over)", name, alerts.Money(b.Used), alerts.Money(b.Amount), over)
	related := []events.Ref{{Type: "limit", ID: b.LimitID}}
	if entityType != limits.ScopeOrganization {
		related = append(related, events.Ref{Type: entityType, ID: entityID})
	}
	if err := change.On(tx, change.Scope{OrgID: req.OrgID, Actor: by}).Record(ctx, "anomaly.detect", nil, anomalyState(a), events.Event{
		Domain: events.DomainAnomalies, Type: "anomaly_detected", Entity: events.Ref{Type: "anomaly", ID: a.ID},
		Related: related, CorrelationID: a.ID, Summary: "Anomaly (BUDGET_EXCEEDED, " + sev + "): " + title,
		Data: map[string]any{"type": a.Type, "limit_id": b.LimitID, "used": b.Used, "amount": b.Amount, "window_start": b.WindowStart},
	}); err != nil {
		return true, false, false, err
	}
	o := incidents.Occurrence{
		OrgID: req.OrgID, Category: incidents.BudgetExceeded, Key: []string{b.LimitID, b.WindowStart.UTC().Format(time.RFC3339)},
		Title: title, Severity: sev, CostMicros: b.Used - b.Amount, Source: events.Ref{Type: "anomaly", ID: a.ID},
		Data: map[string]any{"anomaly_id": a.ID, "limit_id": b.LimitID, "used": b.Used, "amount": b.Amount, "window_start": b.WindowStart},
	}
	switch entityType {
	case limits.ScopeAgent:
		o.AgentID = entityID
	case limits.ScopeProject:
		o.ProjectID = entityID
	}
	rec, err := incidents.Record(ctx, tx, o, by)
	if err != nil {
		return true, false, false, fmt.Errorf("record incident: %w", err)
	}
	l, err := q.LimitsByIDs(ctx, tx, []string{b.LimitID})
	if err != nil || len(l) == 0 {
		return true, true, false, err
	}
	t := alerts.LimitTrigger(l[0], b.WindowStart, b.Used, alerts.Crossing{Exceeded: true}, "")
	t.Severity = sev
	t.Related = append(t.Related, events.Ref{Type: "incident", ID: rec.Incident.ID}, events.Ref{Type: "anomaly", ID: a.ID})
	t.Data["anomaly_id"] = a.ID
	t.Data["incident_id"] = rec.Incident.ID
	alertID, _, err := alerts.Raise(ctx, tx, t)
	if err != nil {
		return true, true, false, fmt.Errorf("raise alert: %w", err)
	}
	if _, err := q.AnomalyLink(ctx, tx, dbsqlc.AnomalyLinkParams{ID: a.ID, IncidentID: &rec.Incident.ID, AlertID: &alertID}); err != nil {
		return true, true, true, err
	}
	return true, true, true, nil
}

// Orgs pages through organizations for scheduled batches.
func Orgs(ctx context.Context, db dbsqlc.DBTX, after string, max int32) ([]string, error) {
	rows, err := dbsqlc.New().AnomalyOrgsPage(ctx, db, dbsqlc.AnomalyOrgsPageParams{AfterID: after, Max: max})
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.ID)
	}
	return out, nil
}

// Fail marks a run failed (after its workflow gave up on it).
func Fail(ctx context.Context, db dbsqlc.DBTX, orgID, runID, workflowID, msg string) error {
	q := dbsqlc.New()
	if runID == "" {
		run, err := q.AnomalyRunForWorkflow(ctx, db, dbsqlc.AnomalyRunForWorkflowParams{OrgID: orgID, ID: ids.New(ids.AnomalyRun), WorkflowID: workflowID})
		if err != nil {
			return err
		}
		runID = run.ID
	}
	if _, err := q.AnomalyRunFinish(ctx, db, dbsqlc.AnomalyRunFinishParams{ID: runID, Status: "failed", Error: clip(msg, 2000)}); err != nil {
		return err
	}
	return recordFailed(ctx, db, orgID, runID, workflowID, msg)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// MetricNames lists the metrics a config may name.
func ValidMetric(m string) bool { return slices.Contains(AllMetrics, m) }

// anomalyState is what the ledger keeps of an anomaly the system recorded: what was found,
// against what, for which entity and day.
func anomalyState(a dbsqlc.Anomaly) map[string]any {
	return map[string]any{"id": a.ID, "type": a.Type, "entity_type": a.EntityType, "entity_id": a.EntityID, "metric": a.Metric,
		"method": a.Method, "severity": a.Severity, "day": a.WindowStart, "baseline": a.Baseline, "observed": a.Observed,
		"deviation": a.Deviation, "score": a.Score, "confidence": a.Confidence, "limit_id": a.LimitID}
}
