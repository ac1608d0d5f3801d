package llmcalls_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/governor-hq/governor/api"
	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/authz"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/llmcalls"
	"github.com/governor-hq/governor/internal/pricing"
	"github.com/governor-hq/governor/internal/runs"
	"github.com/governor-hq/governor/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// bundle is an organization with one agent and an ingest principal bound to it.
type bundle struct {
	org, project, agent string
	caller              authz.Principal
}

func setup(t testing.TB) bundle {
	t.Helper()
	ctx := context.Background()
	pool := testenv.DB(t)
	res, err := api.Bootstrap(ctx, pool, "test", api.BootstrapInput{OrgName: "calls " + ids.New("t"), AdminEmail: "a@example.com"})
	require.NoError(t, err)
	q := dbsqlc.New()
	org := res.Organization.Id
	prj, err := q.ProjectCreate(ctx, pool, dbsqlc.ProjectCreateParams{OrgID: org, ID: ids.New(ids.Project), Name: "p"})
	require.NoError(t, err)
	ag, err := q.AgentCreate(ctx, pool, dbsqlc.AgentCreateParams{OrgID: org, ID: ids.New(ids.Agent), ProjectID: prj.ID, Name: "a"})
	require.NoError(t, err)
	return bundle{org: org, project: prj.ID, agent: ag.ID,
		caller: authz.Principal{OrgID: org, APIKeyID: res.APIKey.Id, KeyKind: "ingest", Role: authz.RoleIngest, AgentID: ag.ID, ProjectID: prj.ID}}
}

// Calls without a run (the OpenTelemetry road) are attributed to the key's agent, or to
// the agent each call names; they are never late.
func TestCallsWithoutARunAreAttributedToTheAgent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.DB(t)
	b := setup(t)
	res, err := llmcalls.Record(ctx, pool, b.caller, llmcalls.SourceOTLP, []llmcalls.Call{
		{CallID: "span-1", Model: "gpt-4o", Tokens: pricing.Tokens{Input: 1_000_000}, TraceID: strings.Repeat("ab", 16), SpanID: strings.Repeat("cd", 8)},
		{CallID: "span-2", AgentID: b.agent, Model: "unknown-model", Tokens: pricing.Tokens{Output: 5}},
	})
	require.NoError(t, err)
	require.Equal(t, llmcalls.Result{Recorded: 2, CostMicros: 2_500_000}, res)
	got, more, err := llmcalls.List(ctx, pool, b.org, llmcalls.Filter{AgentID: b.agent}, false, nil, 10)
	require.NoError(t, err)
	require.False(t, more)
	require.Len(t, got, 2)
	for _, c := range got {
		require.Equal(t, b.project, c.ProjectID)
		require.Equal(t, llmcalls.SourceOTLP, c.Source)
		require.Empty(t, c.RunID)
		require.False(t, c.Late)
	}
	require.Equal(t, llmcalls.CostUnpriced, got[1].CostSource, "no price, no cost given: recorded at 0, unpriced")

	// A key bound to no agent must name one; a key bound to another agent may not.
	orgWide := b.caller
	orgWide.AgentID, orgWide.ProjectID = "", ""
	_, err = llmcalls.Record(ctx, pool, orgWide, llmcalls.SourceOTLP, []llmcalls.Call{{CallID: "x"}})
	var fe *runs.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "calls[0].agent_id", fe.Field)
	other := setup(t)
	_, err = llmcalls.Record(ctx, pool, b.caller, llmcalls.SourceOTLP, []llmcalls.Call{{CallID: "y", AgentID: other.agent}})
	require.ErrorIs(t, err, runs.ErrAgentNotFound, "another organization's agent does not exist")
	_, err = llmcalls.Record(ctx, pool, b.caller, llmcalls.SourceOTLP, []llmcalls.Call{{CallID: "y", RunID: ids.New(ids.Run)}})
	require.ErrorIs(t, err, runs.ErrRunNotFound)
}

// Concurrent, overlapping retries of the same batches record every call exactly once, and
// between them report every call once as recorded and otherwise as already recorded.
func TestConcurrentRetriesRecordEachCallOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.DB(t)
	b := setup(t)
	const batches, copies, size = 5, 4, 50
	var mu sync.Mutex
	var errs []error
	recorded, already := 0, 0
	var wg sync.WaitGroup
	for i := range batches {
		for range copies {
			wg.Go(func() {
				calls := make([]llmcalls.Call, size)
				for j := range calls {
					calls[j] = llmcalls.Call{CallID: fmt.Sprintf("b%d-c%d", i, j), CostMicros: ptr(int64(j))}
				}
				res, err := llmcalls.Record(ctx, pool, b.caller, llmcalls.SourceOTLP, calls)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				recorded += res.Recorded
				already += res.AlreadyRecorded
			})
		}
	}
	wg.Wait()
	require.Empty(t, errs)
	require.Equal(t, batches*size, recorded)
	require.Equal(t, batches*size*(copies-1), already)
	got, _, err := llmcalls.List(ctx, pool, b.org, llmcalls.Filter{}, false, nil, 500)
	require.NoError(t, err)
	require.Len(t, got, batches*size)
}

func ptr[T any](v T) *T { return &v }

// Every bound a client could break is checked by the package itself (calls also arrive by
// roads without protovalidate), naming the call and field.
func TestRecordRefusesHostileCalls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.DB(t)
	b := setup(t)
	// A million dollars per million tokens, the most a price may be.
	_, err := dbsqlc.New().ModelPriceUpsert(ctx, pool, dbsqlc.ModelPriceUpsertParams{OrgID: b.org, Model: "pricey",
		InputMicrosPerMtok: 1_000_000_000_000, OutputMicrosPerMtok: 1_000_000_000_000})
	require.NoError(t, err)
	long := strings.Repeat("x", 129)
	cases := []struct {
		name  string
		calls []llmcalls.Call
		field string
	}{
		{"empty batch", nil, "calls"},
		{"no call id", []llmcalls.Call{{}}, "calls[0].call_id"},
		{"call id too long", []llmcalls.Call{{CallID: long}}, "calls[0].call_id"},
		{"model too long", []llmcalls.Call{{CallID: "a", Model: long}}, "calls[0].model"},
		{"invalid UTF-8", []llmcalls.Call{{CallID: "a", Provider: "\xff"}}, "calls[0].provider"},
		{"repeated call id", []llmcalls.Call{{CallID: "a"}, {CallID: "a"}}, "calls[1].call_id"},
		{"negative tokens", []llmcalls.Call{{CallID: "a", Tokens: pricing.Tokens{Reasoning: -1}}}, "calls[0].reasoning_tokens"},
		{"too many tokens", []llmcalls.Call{{CallID: "a", Tokens: pricing.Tokens{CacheWrite: 1_000_000_000_001}}}, "calls[0].cache_write_tokens"},
		{"cost above the bound", []llmcalls.Call{{CallID: "a", CostMicros: ptr(int64(1_000_000_000_000_001))}}, "calls[0].cost_micros"},
		{"negative latency", []llmcalls.Call{{CallID: "a", LatencyMs: ptr(int64(-1))}}, "calls[0].latency_ms"},
		{"latency past 31 days", []llmcalls.Call{{CallID: "a", LatencyMs: ptr(llmcalls.MaxLatencyMs + 1)}}, "calls[0].latency_ms"},
		{"unknown status", []llmcalls.Call{{CallID: "a", Status: "maybe"}}, "calls[0].status"},
		{"started in the last century", []llmcalls.Call{{CallID: "a", StartedAt: time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)}}, "calls[0].start_time"},
		{"started next week", []llmcalls.Call{{CallID: "a", StartedAt: time.Now().Add(7 * 24 * time.Hour)}}, "calls[0].start_time"},
		{"bad trace id", []llmcalls.Call{{CallID: "a", TraceID: "XYZ"}}, "calls[0].trace_id"},
		{"bad span id", []llmcalls.Call{{CallID: "a", SpanID: strings.Repeat("A", 16)}}, "calls[0].span_id"},
		{"bad run id", []llmcalls.Call{{CallID: "a", RunID: "run_x"}}, "calls[0].run_id"},
		{"tokens priced past the bound", []llmcalls.Call{{CallID: "a", Model: "pricey",
			Tokens: pricing.Tokens{Output: 1, CacheRead: 1_000_000_000_000}}}, "calls[0].cache_read_tokens"},
	}
	tooMany := make([]llmcalls.Call, llmcalls.MaxBatch+1)
	for i := range tooMany {
		tooMany[i].CallID = fmt.Sprint(i)
	}
	cases = append(cases, struct {
		name  string
		calls []llmcalls.Call
		field string
	}{"a batch too big", tooMany, "calls"})
	attrs := map[string]string{}
	for i := range llmcalls.MaxAttributes + 1 {
		attrs[fmt.Sprint(i)] = "v"
	}
	cases = append(cases, struct {
		name  string
		calls []llmcalls.Call
		field string
	}{"too many attributes", []llmcalls.Call{{CallID: "a", Attributes: attrs}}, "calls[0].attributes"})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := llmcalls.Record(ctx, pool, b.caller, llmcalls.SourceAPI, c.calls)
			var fe *runs.FieldError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, c.field, fe.Field, fe.Msg)
		})
	}
	got, _, err := llmcalls.List(ctx, pool, b.org, llmcalls.Filter{}, false, nil, 10)
	require.NoError(t, err)
	require.Empty(t, got, "nothing refused was recorded")
}

func BenchmarkRecord1000(b *testing.B) {
	ctx := context.Background()
	pool := testenv.DB(b)
	bd := setup(b)
	n := 0
	b.ResetTimer()
	for b.Loop() {
		calls := make([]llmcalls.Call, 1000)
		for i := range calls {
			calls[i] = llmcalls.Call{CallID: fmt.Sprintf("bench-%d-%d", n, i), Model: "gpt-4o", Provider: "openai", Operation: "chat",
				Tokens: pricing.Tokens{Input: 1000, Output: 200, CacheRead: 500}}
		}
		n++
		if _, err := llmcalls.Record(ctx, pool, bd.caller, llmcalls.SourceOTLP, calls); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "calls/s")
}
