package limits

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

func TestWindowsFollowTheOrganizationsCalendar(t *testing.T) {
	t.Parallel()
	berlin := mustLoc(t, "Europe/Berlin")
	kolkata := mustLoc(t, "Asia/Kolkata")
	// 2026-03-29 01:30 UTC is 03:30 in Berlin, the day clocks go forward (a 23-hour day).
	at := time.Date(2026, 3, 29, 1, 30, 15, 0, time.UTC)
	cases := []struct {
		kind      string
		loc       *time.Location
		start     string
		end       string
		lengthHrs float64
	}{
		{WindowMinute, berlin, "2026-03-29T03:30:00+02:00", "2026-03-29T03:31:00+02:00", 1.0 / 60},
		{WindowHour, berlin, "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00", 1},
		{WindowDay, berlin, "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00", 23},
		{WindowWeek, berlin, "2026-03-23T00:00:00+01:00", "2026-03-30T00:00:00+02:00", 167},
		{WindowMonth, berlin, "2026-03-01T00:00:00+01:00", "2026-04-01T00:00:00+02:00", 743},
		{WindowHour, kolkata, "2026-03-29T07:00:00+05:30", "2026-03-29T08:00:00+05:30", 1},
		{WindowDay, time.UTC, "2026-03-29T00:00:00Z", "2026-03-30T00:00:00Z", 24},
	}
	for _, c := range cases {
		start, err := WindowStart(c.kind, at, c.loc)
		require.NoError(t, err)
		end := WindowEnd(c.kind, start, c.loc)
		require.Equal(t, c.start, start.Format(time.RFC3339), "%s in %s", c.kind, c.loc)
		require.Equal(t, c.end, end.Format(time.RFC3339), "%s in %s", c.kind, c.loc)
		require.InDelta(t, c.lengthHrs, end.Sub(start).Hours(), 1e-9)
		require.False(t, at.Before(start))
		require.True(t, at.Before(end))
	}
	_, err := WindowStart("fortnight", at, time.UTC)
	require.Error(t, err)
}

// In the hour repeated when clocks go back, the window is the hour the instant is in.
func TestHourWindowInRepeatedHour(t *testing.T) {
	t.Parallel()
	berlin := mustLoc(t, "Europe/Berlin")
	// 2026-10-25: 02:00–03:00 happens twice; 01:30 UTC is the second 02:30 (CET).
	second := time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC)
	start, err := WindowStart(WindowHour, second, berlin)
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 10, 25, 1, 0, 0, 0, time.UTC), start.UTC())
	day, err := WindowStart(WindowDay, second, berlin)
	require.NoError(t, err)
	require.Equal(t, 25.0, WindowEnd(WindowDay, day, berlin).Sub(day).Hours())
}

func lim(id, scope, scopeID, inheritance string, priority int32, amount int64) Limit {
	return Limit{ID: id, ScopeType: scope, ScopeID: scopeID, Metric: MetricCost, Window: WindowDay,
		Amount: amount, Enforcement: Block, Inheritance: inheritance, Priority: priority}
}

func ids(ls []Limit) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.ID)
	}
	return out
}

func TestResolveHierarchy(t *testing.T) {
	t.Parallel()
	s := Subject{OrgID: "o", ProjectID: "p", AgentID: "a", APIKeyID: "k", Model: "gpt-4o", Feature: "chat"}
	org := lim("l_org", ScopeOrganization, "o", Merge, 0, 1000)
	prj := lim("l_prj", ScopeProject, "p", Merge, 0, 500)
	other := lim("l_other_agent", ScopeAgent, "a2", Merge, 0, 1)

	eff, _ := Resolve([]Limit{org, prj, other}, s)
	require.Equal(t, []string{"l_org", "l_prj"}, ids(eff), "merge: both apply; another agent's limit does not")

	ovr := lim("l_agent_override", ScopeAgent, "a", Override, 0, 5000)
	eff, res := Resolve([]Limit{org, prj, ovr}, s)
	require.Equal(t, []string{"l_agent_override"}, ids(eff), "override replaces the broader limits")
	for _, r := range res {
		if r.Limit.ID == "l_org" {
			require.False(t, r.Effective)
			require.Contains(t, r.Reason, "overridden by l_agent_override")
		}
	}

	hard := lim("l_org_hard_cap", ScopeOrganization, "o", Merge, 10, 2000)
	eff, _ = Resolve([]Limit{hard, prj, ovr}, s)
	require.Equal(t, []string{"l_org_hard_cap", "l_agent_override"}, ids(eff), "a higher priority survives an override")

	inh := lim("l_agent_inherit", ScopeAgent, "a", Inherit, 0, 1)
	eff, res = Resolve([]Limit{org, inh}, s)
	require.Equal(t, []string{"l_org"}, ids(eff), "inherit: the parent applies")
	require.Contains(t, res[1].Reason+res[0].Reason, "inherits")
	eff, _ = Resolve([]Limit{inh}, s)
	require.Equal(t, []string{"l_agent_inherit"}, ids(eff), "inherit with nothing to inherit applies itself")

	// Different dimensions never interact: a token quota and a monthly budget stay.
	tok := lim("l_tokens", ScopeAgent, "a", Override, 0, 100)
	tok.Metric = MetricTokens
	month := lim("l_month", ScopeOrganization, "o", Merge, 0, 9)
	month.Window = WindowMonth
	eff, _ = Resolve([]Limit{org, tok, month}, s)
	require.ElementsMatch(t, []string{"l_org", "l_tokens", "l_month"}, ids(eff))
	require.Equal(t, []string{"l_org", "l_month", "l_tokens"}, ids(eff), "check order: broader scope, then shorter window")

	// Model and feature narrowing.
	m := lim("l_model", ScopeOrganization, "o", Merge, 0, 9)
	m.Model = "claude-opus"
	f := lim("l_feature", ScopeOrganization, "o", Merge, 0, 9)
	f.Feature = "chat"
	eff, _ = Resolve([]Limit{m, f}, s)
	require.Equal(t, []string{"l_feature"}, ids(eff))
}

func TestDecideFirstBlockingWins(t *testing.T) {
	t.Parallel()
	a := lim("a", ScopeOrganization, "o", Merge, 0, 10_000_000)
	w := lim("w", ScopeProject, "p", Merge, 0, 100)
	w.Enforcement = Warn
	b := lim("b", ScopeAgent, "a", Merge, 0, 1_000_000)
	d := Decide([]Check{
		{Limit: a, Used: 8_000_000, Requested: 5_000_000},
		{Limit: w, Used: 200, Requested: 1},
		{Limit: b, Used: 999_999, Requested: 5_000_000},
	})
	require.False(t, d.Admitted())
	require.Equal(t, "a", d.Blocking.Limit.ID)
	require.Equal(t, Blocked, d.Checks[2].Verdict)
	require.Len(t, d.Warnings, 1)
	require.Equal(t, int64(2_000_000), d.Checks[0].Remaining())

	ok := Decide([]Check{{Limit: a, Used: 8_000_000, Reserved: 1_000_000, Requested: 1_000_000}})
	require.True(t, ok.Admitted(), "exactly reaching the limit is allowed")
	require.True(t, Exceeds(10, 6, 4, 0), "a run without an estimate is refused once the limit is used up")
	require.False(t, Exceeds(10, 6, 3, 0))
}
