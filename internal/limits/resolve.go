package limits

import (
	"fmt"
	"slices"
	"sort"
)

// Scopes, from the broadest to the narrowest.
const (
	ScopeOrganization = "organization"
	ScopeProject      = "project"
	ScopeAgent        = "agent"
	ScopeAPIKey       = "api_key"
)

var scopeLevel = map[string]int{ScopeOrganization: 0, ScopeProject: 1, ScopeAgent: 2, ScopeAPIKey: 3}

// Metrics.
const (
	MetricCost     = "cost"
	MetricTokens   = "tokens"
	MetricRuns     = "runs"
	MetricRequests = "requests"
)

// Inheritance modes and enforcements.
const (
	Inherit  = "inherit"
	Override = "override"
	Merge    = "merge"

	Block = "block"
	Warn  = "warn"
)

// Limit is what resolution and decisions need of a limit row.
type Limit struct {
	ID          string
	Name        string
	ScopeType   string
	ScopeID     string
	Model       string // "" = any
	Feature     string // "" = any
	Metric      string
	Window      string
	Amount      int64
	Enforcement string
	Thresholds  []int32
	Inheritance string
	Priority    int32
}

// Subject is the run being admitted (or checked).
type Subject struct {
	OrgID     string
	ProjectID string
	AgentID   string
	APIKeyID  string
	Model     string
	Feature   string
}

// Governs reports whether l is set on one of the subject's scopes and its model and
// feature narrowing (if any) match.
func Governs(l Limit, s Subject) bool {
	switch l.ScopeType {
	case ScopeOrganization:
		if l.ScopeID != s.OrgID {
			return false
		}
	case ScopeProject:
		if l.ScopeID != s.ProjectID {
			return false
		}
	case ScopeAgent:
		if l.ScopeID != s.AgentID {
			return false
		}
	case ScopeAPIKey:
		if l.ScopeID != s.APIKeyID {
			return false
		}
	default:
		return false
	}
	return (l.Model == "" || l.Model == s.Model) && (l.Feature == "" || l.Feature == s.Feature)
}

// Resolution is one considered limit and what became of it.
type Resolution struct {
	Limit     Limit
	Effective bool
	Reason    string
}

// Resolve picks the limits that govern a run of s from the candidates (limits set on its
// scopes), following seed 001's rules per dimension (metric, window, model, feature):
//
//   - walk the scopes from the broadest (organization) to the narrowest (API key);
//   - merge: the limit applies together with the broader ones (the strictest decides);
//   - override: the limit replaces the broader ones of its dimension whose priority is not
//     higher than its own (higher priority wins in conflicts: an organization can protect
//     a hard cap with a higher priority);
//   - inherit: the limit is ignored while a broader one exists: the broader limits apply;
//     with nothing to inherit from it applies itself.
//
// It returns the effective limits in the order admission checks them (see Order) and a
// resolution for every candidate.
func Resolve(candidates []Limit, s Subject) ([]Limit, []Resolution) {
	type dim struct{ metric, window, model, feature string }
	groups := map[dim][]Limit{}
	var resolutions []Resolution
	for _, l := range candidates {
		if !Governs(l, s) {
			continue
		}
		d := dim{l.Metric, l.Window, l.Model, l.Feature}
		groups[d] = append(groups[d], l)
	}
	var effective []Limit
	for _, ls := range groups {
		sort.SliceStable(ls, func(i, j int) bool {
			if scopeLevel[ls[i].ScopeType] != scopeLevel[ls[j].ScopeType] {
				return scopeLevel[ls[i].ScopeType] < scopeLevel[ls[j].ScopeType]
			}
			if ls[i].Priority != ls[j].Priority {
				return ls[i].Priority > ls[j].Priority
			}
			return ls[i].ID < ls[j].ID
		})
		reason := map[string]string{}
		var set []Limit
		for level := 0; level <= 3; level++ {
			var here []Limit
			for _, l := range ls {
				if scopeLevel[l.ScopeType] == level {
					here = append(here, l)
				}
			}
			parents := len(set) > 0
			for _, l := range here {
				if l.Inheritance == Override {
					kept := set[:0:0]
					for _, p := range set {
						if p.Priority > l.Priority {
							kept = append(kept, p)
							continue
						}
						reason[p.ID] = fmt.Sprintf("overridden by %s (%s scope, priority %d)", l.ID, l.ScopeType, l.Priority)
					}
					set = kept
				}
			}
			for _, l := range here {
				switch {
				case l.Inheritance == Inherit && parents:
					reason[l.ID] = "inherits: the broader limits of the same metric and window apply instead"
				case l.Inheritance == Inherit:
					set = append(set, l)
					reason[l.ID] = "applies: set to inherit, but no broader limit of the same metric and window exists"
				case l.Inheritance == Override:
					set = append(set, l)
					reason[l.ID] = "applies: overrides the broader limits of the same metric and window"
				default:
					set = append(set, l)
					if parents {
						reason[l.ID] = "applies: merged with the broader limits of the same metric and window (the strictest decides)"
					} else {
						reason[l.ID] = "applies"
					}
				}
			}
		}
		effective = append(effective, set...)
		for _, l := range ls {
			resolutions = append(resolutions, Resolution{Limit: l, Effective: slices.ContainsFunc(set, func(e Limit) bool { return e.ID == l.ID }), Reason: reason[l.ID]})
		}
	}
	Order(effective)
	sort.SliceStable(resolutions, func(i, j int) bool { return less(resolutions[i].Limit, resolutions[j].Limit) })
	return effective, resolutions
}

// Order sorts limits in the order admission checks them, so "the first limit hit" is
// well defined: higher priority first, then broader scope, then shorter window, then id.
func Order(ls []Limit) {
	sort.SliceStable(ls, func(i, j int) bool { return less(ls[i], ls[j]) })
}

func less(a, b Limit) bool {
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	if scopeLevel[a.ScopeType] != scopeLevel[b.ScopeType] {
		return scopeLevel[a.ScopeType] < scopeLevel[b.ScopeType]
	}
	if windowOrder[a.Window] != windowOrder[b.Window] {
		return windowOrder[a.Window] < windowOrder[b.Window]
	}
	return a.ID < b.ID
}
