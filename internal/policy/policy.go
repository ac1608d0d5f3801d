// Package policy decides whether a policy rule matches a prospective run. It is pure:
// admission loads the active rules inside its transaction and asks here.
package policy

import (
	"encoding/json"
	"sort"

	"github.com/governor-hq/governor/db/dbsqlc"
)

// Run is what a rule can match on.
type Run struct {
	ProjectID string
	AgentID   string
	Model     string
	Feature   string
	Tags      map[string]string
}

// Rule is an active rule, ready to match.
type Rule struct {
	ID               string
	Name             string
	ProjectID        string
	AgentID          string
	Model            string
	Feature          string
	Tags             map[string]string
	SourceIncidentID string
	Fingerprint      string
}

// FromRow prepares a stored rule.
func FromRow(r dbsqlc.PolicyRule) Rule {
	out := Rule{ID: r.ID, Name: r.Name, ProjectID: r.MatchProjectID, AgentID: r.MatchAgentID, Model: r.MatchModel,
		Feature: r.MatchFeature, Fingerprint: r.Fingerprint}
	if r.SourceIncidentID != nil {
		out.SourceIncidentID = *r.SourceIncidentID
	}
	_ = json.Unmarshal(r.MatchTags, &out.Tags)
	return out
}

// Matches reports whether the rule applies to the run: every field the rule sets must be
// equal, and every tag it names must be present with that value.
func (r Rule) Matches(run Run) bool {
	eq := func(want, got string) bool { return want == "" || want == got }
	if !eq(r.ProjectID, run.ProjectID) || !eq(r.AgentID, run.AgentID) || !eq(r.Model, run.Model) || !eq(r.Feature, run.Feature) {
		return false
	}
	for k, v := range r.Tags {
		if got, ok := run.Tags[k]; !ok || got != v {
			return false
		}
	}
	return r.ProjectID != "" || r.AgentID != "" || r.Model != "" || r.Feature != "" || len(r.Tags) > 0
}

// First returns the first matching rule (rules ordered by id, i.e. by creation), or nil.
func First(rules []Rule, run Run) *Rule {
	sort.Slice(rules, func(i, j int) bool { return rules[i].ID < rules[j].ID })
	for i := range rules {
		if rules[i].Matches(run) {
			return &rules[i]
		}
	}
	return nil
}
