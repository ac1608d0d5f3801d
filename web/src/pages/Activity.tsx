import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { useQuery } from "@connectrpc/connect-query";
import { createColumnHelper } from "@tanstack/react-table";
import { useMemo, useState, type FormEvent } from "react";
import { Link } from "wouter";
import { Badge, EntityLink, PageHeader, Stat } from "../components/Bits";
import { Field, Select } from "../components/Form";
import { Drawer } from "../components/Overlay";
import { Empty, ErrorView, Loading, QueryView } from "../components/State";
import { DataTable, Pager } from "../components/Table";
import { Time, ZoneNote } from "../components/Time";
import { TimelineList } from "../components/Timeline";
import { RunService, RunStatus, type Run } from "../gen/governor/v1/runs_pb";
import { CheckVerdict, LimitMetric } from "../gen/governor/v1/limits_pb";
import { count, enumLabel, instantToZoned, money, RANGES, zonedToInstant } from "../lib/format";
import { useNames } from "../lib/names";
import { useIdentity, useZone } from "../lib/session";
import { usePager, useUrlState } from "../lib/url";

const STATUSES: RunStatus[] = [
  RunStatus.ADMITTED,
  RunStatus.SETTLING,
  RunStatus.SUCCEEDED,
  RunStatus.FAILED,
  RunStatus.CANCELLED,
  RunStatus.EXPIRED,
  RunStatus.BLOCKED,
];
const statusKey = (s: RunStatus) => RunStatus[s].toLowerCase();

/** The time range of the URL (?range=24h, or ?from=…&to=… wall-clock times in the org's zone). */
export function useRange(zone: string) {
  const [params] = useUrlState();
  const range = params.get("range") ?? "";
  const from = params.get("from") ?? "";
  const to = params.get("to") ?? "";
  // A relative range is pinned when chosen (not every render), so the query stays put.
  return useMemo(() => {
    const r = RANGES[range];
    if (r) return { start: new Date(Date.now() - r.ms), end: undefined, range, from, to };
    return { start: from ? zonedToInstant(from, zone) : undefined, end: to ? zonedToInstant(to, zone) : undefined, range, from, to };
  }, [range, from, to, zone]);
}

export function RangeFilter() {
  const zone = useZone();
  const [, set] = useUrlState();
  const r = useRange(zone);
  const mode = r.range || (r.from || r.to ? "custom" : "");
  return (
    <>
      <Select
        label="Time"
        value={mode}
        onChange={(v) =>
          set(
            v === "custom"
              ? { range: null, from: instantToZoned(new Date(Date.now() - 86_400_000), zone), to: null, page: null }
              : { range: v, from: null, to: null, page: null },
          )
        }
        options={[["", "Any time"], ...Object.entries(RANGES).map(([k, v]) => [k, v.label] as [string, string]), ["custom", "Between…"]]}
      />
      {mode === "custom" ? (
        <>
          <Field label={`From (${zone})`}>
            {(id) => <input id={id} type="datetime-local" value={r.from} onChange={(e) => set({ from: e.target.value, page: null })} />}
          </Field>
          <Field label={`To (${zone})`}>
            {(id) => <input id={id} type="datetime-local" value={r.to} onChange={(e) => set({ to: e.target.value, page: null })} />}
          </Field>
        </>
      ) : null}
    </>
  );
}

export function runCost(r: Run): { micros: bigint; settled: boolean } {
  if (r.settleTime) return { micros: r.actual?.costMicros ?? 0n, settled: true };
  return { micros: r.estimate?.costMicros ?? 0n, settled: false };
}

export default function Activity() {
  const zone = useZone();
  const names = useNames();
  const [params, set] = useUrlState();
  const pager = usePager();
  const range = useRange(zone);
  const statuses = params
    .getAll("status")
    .map((s) => STATUSES.find((x) => statusKey(x) === s))
    .filter((s): s is RunStatus => s !== undefined);
  const filter = {
    agentId: params.get("agent") ?? "",
    apiKeyId: params.get("key") ?? "",
    model: params.get("model") ?? "",
    feature: params.get("feature") ?? "",
    startTime: range.start ? timestampFromDate(range.start) : undefined,
    endTime: range.end ? timestampFromDate(range.end) : undefined,
  };
  const pageSize = Number(params.get("size") ?? 25);
  const runs = useQuery(RunService.method.listRuns, { ...filter, statuses, pageSize, pageToken: pager.token });
  const totals = useQuery(RunService.method.listCostRecords, { ...filter, pageSize: 1 });
  const selected = params.get("run") ?? "";

  const [model, setModel] = useState(filter.model);
  const [feature, setFeature] = useState(filter.feature);
  const applyText = (e: FormEvent) => {
    e.preventDefault();
    set({ model: model.trim(), feature: feature.trim(), ...pager.reset });
  };

  const col = createColumnHelper<Run>();
  const columns = [
    col.accessor("id", {
      header: "Run",
      cell: (c) => (
        <button type="button" className="link" onClick={() => set({ run: c.getValue() }, { push: true })} aria-label={`Open run ${c.getValue()}`}>
          <code>{c.getValue()}</code>
        </button>
      ),
    }),
    col.accessor("status", { header: "Status", cell: (c) => <Badge>{enumLabel(RunStatus, c.getValue())}</Badge> }),
    col.accessor("agentId", { header: "Agent", cell: (c) => names.name(c.getValue()) }),
    col.accessor("apiKeyId", { header: "Key", cell: (c) => names.name(c.getValue()) }),
    col.accessor("model", { header: "Model", cell: (c) => c.getValue() || <span className="muted">—</span> }),
    col.accessor("feature", { header: "Feature", cell: (c) => c.getValue() || <span className="muted">—</span> }),
    col.display({
      id: "cost",
      header: "Cost",
      meta: { className: "num" },
      cell: (c) => {
        const { micros, settled } = runCost(c.row.original);
        return settled ? money(micros) : <span className="muted">{money(micros)} est.</span>;
      },
    }),
    col.accessor("admitTime", { header: "Admitted", cell: (c) => <Time ts={c.getValue()} /> }),
  ];

  return (
    <>
      <PageHeader title="Activity" question="What ran, and what is running?">
        <ZoneNote />
      </PageHeader>
      <section className="filters" aria-label="Filters">
        <fieldset className="checks">
          <legend>Status</legend>
          {STATUSES.map((s) => {
            const k = statusKey(s);
            const on = statuses.includes(s);
            return (
              <label key={k}>
                <input
                  type="checkbox"
                  checked={on}
                  onChange={() =>
                    set({ status: on ? params.getAll("status").filter((x) => x !== k) : [...params.getAll("status"), k], ...pager.reset })
                  }
                />{" "}
                {enumLabel(RunStatus, s)}
              </label>
            );
          })}
        </fieldset>
        <Select
          label="Agent"
          value={filter.agentId}
          onChange={(v) => set({ agent: v, ...pager.reset })}
          options={[["", "Any agent"], ...names.agents.map((a) => [a.id, a.name] as [string, string])]}
        />
        <Select
          label="API key"
          value={filter.apiKeyId}
          onChange={(v) => set({ key: v, ...pager.reset })}
          options={[["", "Any key"], ...names.keys.map((k) => [k.id, `${k.name} (${k.prefix})`] as [string, string])]}
        />
        <RangeFilter />
        <form className="inline" onSubmit={applyText}>
          <Field label="Model">{(id) => <input id={id} value={model} onChange={(e) => setModel(e.target.value)} placeholder="any" />}</Field>
          <Field label="Feature">
            {(id) => <input id={id} value={feature} onChange={(e) => setFeature(e.target.value)} placeholder="any" />}
          </Field>
          <button type="submit">Apply</button>
        </form>
        {params.size > 0 ? (
          <Link href="/activity" className="clear">
            Clear filters
          </Link>
        ) : null}
      </section>

      <section className="stats" aria-label="Totals">
        {totals.error ? (
          <ErrorView error={totals.error} what="totals" />
        ) : totals.data ? (
          <>
            <Stat
              label="Settled cost"
              value={<span data-testid="total-cost">{money(totals.data.totalCostMicros)}</span>}
              hint={statuses.length ? "every status: cost records are settled runs" : "settled runs matching the filters"}
            />
            <Stat label="Settled runs" value={<span data-testid="total-runs">{count(totals.data.recordCount)}</span>} />
            <Stat label="Tokens" value={count(totals.data.totalInputTokens + totals.data.totalOutputTokens)} hint="input + output" />
          </>
        ) : (
          <Loading what="totals" />
        )}
      </section>

      <QueryView query={runs} what="runs">
        {(data) => (
          <>
            <DataTable
              caption="Runs, newest first"
              columns={columns}
              rows={data.runs}
              rowId={(r) => r.id}
              selected={selected}
              empty={
                <Empty title={params.size ? "No run matches these filters" : "No runs yet"}>
                  {params.size ? (
                    <Link href="/activity">Clear filters</Link>
                  ) : (
                    <p>Agents call RunService.AdmitRun before each run; the runs show here.</p>
                  )}
                </Empty>
              }
            />
            <Pager label="Runs" number={pager.number} hasNext={data.nextPageToken !== ""} onNext={() => pager.next(data.nextPageToken)} onPrev={pager.prev} />
          </>
        )}
      </QueryView>
      {selected ? <RunDrawer id={selected} onClose={() => set({ run: null }, { push: true })} /> : null}
    </>
  );
}

/** The Temporal Web UI's page of a workflow, when the server knows where the UI is. */
export function TemporalLink({ workflowId }: { workflowId: string }) {
  const c = useIdentity().console;
  if (!workflowId) return <span className="muted">—</span>;
  if (!c?.temporalUiUrl) return <span className="muted">{workflowId} (set GOVERNOR_TEMPORAL_UI_URL for a link)</span>;
  const href = `${c.temporalUiUrl}/namespaces/${encodeURIComponent(c.temporalNamespace || "default")}/workflows/${encodeURIComponent(workflowId)}`;
  return (
    <a href={href} target="_blank" rel="noreferrer">
      {workflowId} in the Temporal UI
    </a>
  );
}

function RunDrawer({ id, onClose }: { id: string; onClose: () => void }) {
  const names = useNames();
  const run = useQuery(RunService.method.getRun, { id });
  const cost = useQuery(RunService.method.getRunCost, { runId: id });
  const incidents = useQuery(RunService.method.listRunIncidents, { runId: id });
  return (
    <Drawer title={`Run ${id}`} onClose={onClose}>
      <QueryView query={run} what="the run">
        {({ run: r }) =>
          r ? (
            <>
              <dl className="facts">
                <dt>Status</dt>
                <dd>
                  <Badge>{enumLabel(RunStatus, r.status)}</Badge>
                </dd>
                <dt>Agent</dt>
                <dd>{names.name(r.agentId)}</dd>
                <dt>Project</dt>
                <dd>{names.name(r.projectId)}</dd>
                <dt>API key</dt>
                <dd>
                  <EntityLink type="api_key" id={r.apiKeyId}>
                    {names.name(r.apiKeyId)}
                  </EntityLink>
                </dd>
                <dt>Model</dt>
                <dd>{r.model || "—"}</dd>
                <dt>Feature</dt>
                <dd>{r.feature || "—"}</dd>
                <dt>Admitted</dt>
                <dd>
                  <Time ts={r.admitTime} />
                </dd>
                <dt>Completed</dt>
                <dd>
                  <Time ts={r.completeTime} />
                </dd>
                <dt>Settled</dt>
                <dd>
                  <Time ts={r.settleTime} />
                </dd>
                <dt>Estimate</dt>
                <dd>{money(r.estimate?.costMicros)}</dd>
                {r.latencyMs ? (
                  <>
                    <dt>Latency</dt>
                    <dd>{count(r.latencyMs)} ms</dd>
                  </>
                ) : null}
                {r.errorCode || r.errorMessage ? (
                  <>
                    <dt>Error</dt>
                    <dd>
                      <code>{r.errorCode}</code> {r.errorMessage}
                    </dd>
                  </>
                ) : null}
                <dt>Workflow</dt>
                <dd>
                  <TemporalLink workflowId={r.workflowId} />
                </dd>
              </dl>
              {r.blockedByPolicyRuleId ? (
                <p className="callout">
                  Blocked by policy rule <EntityLink type="policy_rule" id={r.blockedByPolicyRuleId} />.
                </p>
              ) : null}
              {r.blockedBy.length ? (
                <div className="callout">
                  <h3>Blocked by</h3>
                  <ul>
                    {r.blockedBy.map((b) => (
                      <li key={b.limitId}>
                        <EntityLink type="limit" id={b.limitId}>
                          {b.limitName || b.limitId}
                        </EntityLink>{" "}
                        ({enumLabel(LimitMetric, b.metric)}): used {b.metric === LimitMetric.COST ? money(b.used) : count(b.used)} of{" "}
                        {b.metric === LimitMetric.COST ? money(b.limit) : count(b.limit)}, {enumLabel(CheckVerdict, b.verdict)}
                      </li>
                    ))}
                  </ul>
                </div>
              ) : null}
            </>
          ) : (
            <Empty title="No such run" />
          )
        }
      </QueryView>
      <h3>Cost</h3>
      <QueryView query={cost} what="the cost">
        {(c) =>
          c.settled && c.cost ? (
            <dl className="facts">
              <dt>Cost</dt>
              <dd data-testid="run-cost">{money(c.cost.costMicros)}</dd>
              <dt>Tokens</dt>
              <dd>
                {count(c.cost.inputTokens)} in, {count(c.cost.outputTokens)} out
              </dd>
              <dt>Recorded</dt>
              <dd>
                <Time ts={c.cost.recordTime} />
              </dd>
            </dl>
          ) : (
            <p className="muted">Not settled yet: the cost is recorded when the run's workflow settles it.</p>
          )
        }
      </QueryView>
      <h3>Incidents</h3>
      <QueryView query={incidents} what="incidents">
        {({ incidents: list }) =>
          list.length === 0 ? (
            <p className="muted">This run generated no incident.</p>
          ) : (
            <>
              <p>
                This run generated {list.length} incident{list.length === 1 ? "" : "s"}:
              </p>
              <ul>
                {list.map((i) => (
                  <li key={i.id}>
                    <EntityLink type="incident" id={i.id}>
                      {i.title || i.id}
                    </EntityLink>
                  </li>
                ))}
              </ul>
            </>
          )
        }
      </QueryView>
      <h3>LLM calls</h3>
      <p className="muted">LLM calls of a run arrive with the analytics API.</p>
      <h3>Events</h3>
      <TimelineList entity={{ type: "run", id }} />
    </Drawer>
  );
}
