// Package incidents records what went wrong: occurrences (failed runs, budget breaches,
// cost anomalies, …) become incidents, deduplicated by fingerprint while one is open,
// with a severity from the organization's rules. Recording happens inside the
// transaction of whatever observed the occurrence (a run's settlement, an anomaly batch),
// and wakes the incident's workflow through the outbox.
package incidents

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/actor"
	"github.com/governor-hq/governor/internal/alerts"
	"github.com/governor-hq/governor/internal/change"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/lifecycle"
)

// Categories.
const (
	RunFailure      = "RUN_FAILURE"
	BudgetExceeded  = "BUDGET_EXCEEDED"
	CostAnomaly     = "COST_ANOMALY"
	RateLimit       = "RATE_LIMIT"
	PolicyViolation = "POLICY_VIOLATION"
)

// Severities, in increasing order.
var severities = []string{"low", "medium", "high", "critical"}

// SeverityRank orders severities ("" is below low).
func SeverityRank(s string) int { return slices.Index(severities, s) }

// Occurrence is one observation of something going wrong.
type Occurrence struct {
	OrgID    string
	Category string
	// Key names what makes two occurrences the same incident (e.g. agent, error code,
	// normalized message). The fingerprint is derived from the category and the key.
	Key []string
	// Title of the incident if this occurrence opens one.
	Title string
	// Severity is the observer's assessment; the organization's rules may raise it.
	Severity  string
	ProjectID string
	AgentID   string
	Model     string
	Feature   string
	ErrorCode string
	// ErrorSignature is the normalized error message.
	ErrorSignature string
	// RunID is the run that failed, if any; CostMicros its cost (or the breach's amount).
	RunID      string
	CostMicros int64
	// Source is what observed it, e.g. {anomaly, anm_…} or {limit, lim_…}.
	Source events.Ref
	Data   map[string]any
}

// Fingerprint is the dedup key of an occurrence, readable in the Temporal UI:
// "<category>-<16 hex>".
func Fingerprint(orgID, category string, key []string) string {
	h := sha256.New()
	h.Write([]byte(orgID))
	for _, k := range append([]string{category}, key...) {
		h.Write([]byte{0})
		h.Write([]byte(k))
	}
	return strings.ToLower(strings.ReplaceAll(category, "_", "-")) + "-" + hex.EncodeToString(h.Sum(nil))[:16]
}

var (
	uuidRe   = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)
	idRe     = regexp.MustCompile(`\b[a-z]{3}_[0-9a-z]{26}\b`)
	hexRe    = regexp.MustCompile(`\b0x[0-9a-fA-F]+\b|\b[0-9a-fA-F]{12,}\b`)
	numberRe = regexp.MustCompile(`\d+(\.\d+)?`)
	quotedRe = regexp.MustCompile(`"[^"]*"|'[^']*'`)
	spaceRe  = regexp.MustCompile(`\s+`)
)

// NormalizeError turns an error message into a signature that does not change with ids,
// numbers, quoted values or spacing: "Timeout after 30s calling 'search' (req 8f3a…)" and
// "timeout after 45s calling 'fetch' (req 1b2c…)" normalize alike.
func NormalizeError(msg string) string {
	s := strings.ToLower(msg)
	s = uuidRe.ReplaceAllString(s, "<id>")
	s = idRe.ReplaceAllString(s, "<id>")
	s = hexRe.ReplaceAllString(s, "<hex>")
	s = quotedRe.ReplaceAllString(s, "<str>")
	s = numberRe.ReplaceAllString(s, "<n>")
	s = strings.TrimSpace(spaceRe.ReplaceAllString(s, " "))
	if len(s) > maxSignature {
		// Cut on a character boundary (the signature is stored as text), and without the
		// space the cut may leave, so normalizing a signature again changes nothing.
		cut := maxSignature
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = strings.TrimSpace(s[:cut])
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// maxSignature is the longest error signature, in bytes.
const maxSignature = 200

// Recorded is the incident an occurrence landed on.
type Recorded struct {
	Incident dbsqlc.Incident
	// Opened is true when this occurrence opened the incident.
	Opened bool
	// Escalated is true when this occurrence raised its severity.
	Escalated bool
	Previous  string // severity before, when escalated
}

// Record records an occurrence in tx: it opens the fingerprint's incident or attaches to
// the open one, applies the severity rules, links the run (and its cost record), writes
// the events and asks the incident's workflow (through the outbox) to take note.
func Record(ctx context.Context, tx pgx.Tx, o Occurrence, by actor.Actor) (Recorded, error) {
	q := dbsqlc.New()
	if SeverityRank(o.Severity) < 0 {
		o.Severity = "low"
	}
	fp := Fingerprint(o.OrgID, o.Category, o.Key)
	runs := int32(0)
	if o.RunID != "" {
		runs = 1
	}
	row, err := q.IncidentRecordOccurrence(ctx, tx, dbsqlc.IncidentRecordOccurrenceParams{
		OrgID: o.OrgID, ID: ids.New(ids.Incident), Fingerprint: fp, Category: o.Category, Severity: o.Severity,
		Title: o.Title, ProjectID: strp(o.ProjectID), AgentID: strp(o.AgentID), Model: o.Model, Feature: o.Feature,
		ErrorCode: o.ErrorCode, ErrorSignature: o.ErrorSignature, RunsAffected: runs, CostMicros: o.CostMicros,
		SourceType: o.Source.Type, SourceID: o.Source.ID, SourceRunID: strp(o.RunID),
	})
	if err != nil {
		return Recorded{}, fmt.Errorf("record incident occurrence: %w", err)
	}
	inc := incidentOf(row)
	out := Recorded{Incident: inc, Opened: row.Opened}
	if o.RunID != "" {
		if _, err := q.IncidentRunAttach(ctx, tx, dbsqlc.IncidentRunAttachParams{IncidentID: inc.ID, RunID: o.RunID, CostMicros: o.CostMicros}); err != nil {
			return out, err
		}
		if err := q.CostRecordLinkIncident(ctx, tx, dbsqlc.CostRecordLinkIncidentParams{IncidentID: &inc.ID, RunID: o.RunID}); err != nil {
			return out, err
		}
	}
	sev, err := severityFor(ctx, tx, inc, o)
	if err != nil {
		return out, err
	}
	if SeverityRank(sev) > SeverityRank(inc.Severity) {
		out.Escalated, out.Previous = !out.Opened, inc.Severity
		if inc, err = q.IncidentSetSeverity(ctx, tx, dbsqlc.IncidentSetSeverityParams{ID: inc.ID, Severity: sev}); err != nil {
			return out, err
		}
		out.Incident = inc
	}

	related := []events.Ref{}
	if o.RunID != "" {
		related = append(related, events.Ref{Type: "run", ID: o.RunID})
	}
	if o.AgentID != "" {
		related = append(related, events.Ref{Type: "agent", ID: o.AgentID})
	}
	if o.Source.ID != "" && o.Source.Type != "run" {
		related = append(related, o.Source)
	}
	correlation := o.RunID
	if correlation == "" {
		correlation = inc.ID
	}
	switch {
	case out.Opened:
		_, err = events.Emit(ctx, tx, events.Event{
			OrgID: o.OrgID, Domain: events.DomainIncidents, Type: "incident_opened", Entity: events.Ref{Type: "incident", ID: inc.ID},
			Related: related, CorrelationID: correlation, Actor: by,
			Summary: fmt.Sprintf("Incident opened (%s, %s): %s", inc.Category, inc.Severity, inc.Title),
			Data:    map[string]any{"fingerprint": fp, "category": inc.Category, "severity": inc.Severity, "error_code": o.ErrorCode, "error_signature": o.ErrorSignature, "details": o.Data},
		})
	default:
		_, err = events.Emit(ctx, tx, events.Event{
			OrgID: o.OrgID, Domain: events.DomainIncidents, Type: "incident_occurrence", Entity: events.Ref{Type: "incident", ID: inc.ID},
			Related: related, CorrelationID: correlation, Actor: by,
			Summary: fmt.Sprintf("Incident %s occurred again (%d occurrences)", inc.ID, inc.Occurrences),
			Data:    map[string]any{"occurrences": inc.Occurrences, "severity": inc.Severity, "details": o.Data},
		})
	}
	if err != nil {
		return out, err
	}
	// Opening an incident and raising its severity are governance changes the system
	// makes (they set off proposals and alerts): on the ledger, in this transaction.
	// Further occurrences only count; they are events, not changes.
	c := change.On(tx, change.Scope{OrgID: o.OrgID, Actor: by})
	switch {
	case out.Opened:
		err = c.Audit(ctx, "incident.open", "incident", inc.ID, nil, IncidentView(inc, ""))
	case out.Escalated:
		err = c.Audit(ctx, "incident.escalate", "incident", inc.ID, map[string]any{"severity": out.Previous}, IncidentView(inc, ""))
	}
	if err != nil {
		return out, err
	}
	if out.Escalated {
		if _, err := events.Emit(ctx, tx, events.Event{
			OrgID: o.OrgID, Domain: events.DomainIncidents, Type: "incident_escalated", Entity: events.Ref{Type: "incident", ID: inc.ID},
			Related: related, CorrelationID: correlation, Actor: by,
			Summary: fmt.Sprintf("Incident %s escalated from %s to %s", inc.ID, out.Previous, inc.Severity),
			Data:    map[string]any{"from": out.Previous, "to": inc.Severity},
		}); err != nil {
			return out, err
		}
	}
	// High and critical incidents alert people: once when opened (or escalated into
	// high/critical), once more on reaching critical.
	if SeverityRank(inc.Severity) >= SeverityRank("high") && (out.Opened || out.Escalated) {
		transition := "opened"
		if !out.Opened {
			transition = "escalated-" + inc.Severity
		}
		if _, _, err := alerts.Raise(ctx, tx, alerts.Trigger{
			OrgID: inc.OrgID, Kind: alerts.KindIncident, Severity: inc.Severity,
			DedupeKey: "incident/" + inc.ID + "/" + transition,
			Title:     fmt.Sprintf("%s incident: %s", strings.ToUpper(inc.Severity), inc.Title),
			Body: fmt.Sprintf("Incident %s (%s) has %d occurrence(s) affecting %d run(s), costing %s so far.",
				inc.ID, inc.Category, inc.Occurrences, inc.RunsAffected, dollars(inc.CostMicros)),
			Entity: events.Ref{Type: "incident", ID: inc.ID}, Related: related,
			Data: map[string]any{"fingerprint": fp, "category": inc.Category, "transition": transition},
		}); err != nil {
			return out, fmt.Errorf("raise incident alert: %w", err)
		}
	}
	payload, _ := json.Marshal(lifecycle.IncidentInput{OrgID: inc.OrgID, IncidentID: inc.ID, Fingerprint: fp, AgentID: deref(inc.AgentID), Severity: inc.Severity})
	err = q.OutboxAdd(ctx, tx, dbsqlc.OutboxAddParams{
		OrgID: inc.OrgID, Kind: "signal_with_start", WorkflowType: lifecycle.IncidentWorkflowType,
		WorkflowID: lifecycle.IncidentWorkflowID(fp), SignalName: lifecycle.SignalIncidentOccurrence, SignalArg: inc.ID, Payload: payload,
	})
	return out, err
}

// severityFor applies the organization's severity rules (defaults when it has none):
// error codes that are always high or critical, occurrences within a window, and the cost
// of the affected runs. Severity only ever goes up.
func severityFor(ctx context.Context, tx pgx.Tx, inc dbsqlc.Incident, o Occurrence) (string, error) {
	q := dbsqlc.New()
	s, err := q.IncidentSettingsGet(ctx, tx, inc.OrgID)
	if errors.Is(err, pgx.ErrNoRows) {
		s = DefaultSettings(inc.OrgID)
	} else if err != nil {
		return "", err
	}
	sev := inc.Severity
	raise := func(to string) {
		if SeverityRank(to) > SeverityRank(sev) {
			sev = to
		}
	}
	raise(o.Severity)
	if slices.Contains(s.HighErrorCodes, inc.ErrorCode) && inc.ErrorCode != "" {
		raise("high")
	}
	if slices.Contains(s.CriticalErrorCodes, inc.ErrorCode) && inc.ErrorCode != "" {
		raise("critical")
	}
	if inc.Category == RunFailure {
		recent, err := q.IncidentRecentRuns(ctx, tx, dbsqlc.IncidentRecentRunsParams{IncidentID: inc.ID, Minutes: s.OccurrenceWindowMinutes})
		if err != nil {
			return "", err
		}
		switch {
		case recent >= int64(s.CriticalOccurrences):
			raise("critical")
		case recent >= int64(s.HighOccurrences):
			raise("high")
		case recent >= 2:
			raise("medium")
		}
	}
	switch {
	case inc.CostMicros >= s.CriticalCostMicros:
		raise("critical")
	case inc.CostMicros >= s.HighCostMicros:
		raise("high")
	}
	return sev, nil
}

// DefaultSettings are the severity and proposal rules of an organization that set none.
func DefaultSettings(orgID string) dbsqlc.IncidentSetting {
	return dbsqlc.IncidentSetting{
		OrgID: orgID, HighOccurrences: 3, CriticalOccurrences: 10, OccurrenceWindowMinutes: 60,
		HighCostMicros: 50_000_000, CriticalCostMicros: 500_000_000, HighErrorCodes: []string{}, CriticalErrorCodes: []string{},
		ProposalRemindAfterMinutes: 1440, ProposalExpireAfterMinutes: 10080, ProposalRequiredApprovals: 1,
	}
}

func incidentOf(r dbsqlc.IncidentRecordOccurrenceRow) dbsqlc.Incident {
	return dbsqlc.Incident{
		OrgID: r.OrgID, ID: r.ID, Fingerprint: r.Fingerprint, Category: r.Category, Severity: r.Severity, Status: r.Status,
		Title: r.Title, ProjectID: r.ProjectID, AgentID: r.AgentID, Model: r.Model, Feature: r.Feature, ErrorCode: r.ErrorCode,
		ErrorSignature: r.ErrorSignature, Occurrences: r.Occurrences, RunsAffected: r.RunsAffected, CostMicros: r.CostMicros,
		SourceType: r.SourceType, SourceID: r.SourceID, SourceRunID: r.SourceRunID, FirstSeenAt: r.FirstSeenAt,
		LastSeenAt: r.LastSeenAt, AcknowledgedAt: r.AcknowledgedAt, AcknowledgedBy: r.AcknowledgedBy, ResolvedAt: r.ResolvedAt,
		ResolvedBy: r.ResolvedBy, ResolutionNote: r.ResolutionNote, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

func strp(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
