import { useQuery } from "@connectrpc/connect-query";
import { createColumnHelper } from "@tanstack/react-table";
import { useState } from "react";
import { Link } from "wouter";
import { ActionButton } from "../components/Action";
import { Badge, EntityLink, PageHeader, Stat } from "../components/Bits";
import { Drawer } from "../components/Overlay";
import { ProposalById } from "../components/Proposal";
import { Empty, QueryView } from "../components/State";
import { DataTable, Pager } from "../components/Table";
import { Time, ZoneNote } from "../components/Time";
import { TimelineList } from "../components/Timeline";
import { IncidentCategory, IncidentSeverity, IncidentStatus, type Incident } from "../gen/governor/v1/incident_model_pb";
import { IncidentService } from "../gen/governor/v1/incidents_pb";
import { RunStatus } from "../gen/governor/v1/runs_pb";
import { count, enumLabel, money } from "../lib/format";
import { useNames } from "../lib/names";
import { useCan } from "../lib/session";
import { usePager, useUrlState } from "../lib/url";
import { TemporalLink } from "./Activity";

const SEVERITIES = [IncidentSeverity.CRITICAL, IncidentSeverity.HIGH, IncidentSeverity.MEDIUM, IncidentSeverity.LOW];
const STATUSES = [IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.RESOLVED];

function Checks<T extends number>({ legend, param, values, e }: { legend: string; param: string; values: T[]; e: Record<number, string> }) {
  const [params, set] = useUrlState();
  const on = params.getAll(param);
  return (
    <fieldset className="checks">
      <legend>{legend}</legend>
      {values.map((v) => {
        const k = e[v].toLowerCase();
        const checked = on.includes(k);
        return (
          <label key={k}>
            <input type="checkbox" checked={checked} onChange={() => set({ [param]: checked ? on.filter((x) => x !== k) : [...on, k], page: null })} />{" "}
            {enumLabel(e, v)}
          </label>
        );
      })}
    </fieldset>
  );
}

function fromParam<T extends number>(params: URLSearchParams, param: string, values: T[], e: Record<number, string>): T[] {
  return params
    .getAll(param)
    .map((s) => values.find((v) => e[v].toLowerCase() === s))
    .filter((v): v is T => v !== undefined);
}

export default function Incidents() {
  const names = useNames();
  const [params, set] = useUrlState();
  const pager = usePager();
  const severities = fromParam(params, "severity", SEVERITIES, IncidentSeverity);
  const statuses = fromParam(params, "status", STATUSES, IncidentStatus);
  const list = useQuery(IncidentService.method.listIncidents, {
    severities,
    statuses,
    agentId: params.get("agent") ?? "",
    pageSize: 50,
    pageToken: pager.token,
  });
  const selected = params.get("incident") ?? "";

  const col = createColumnHelper<Incident>();
  const columns = [
    col.accessor("title", {
      header: "Incident",
      cell: (c) => (
        <button type="button" className="link" onClick={() => set({ incident: c.row.original.id }, { push: true })}>
          {c.getValue() || c.row.original.id}
        </button>
      ),
    }),
    col.accessor("severity", { header: "Severity", cell: (c) => <Badge>{enumLabel(IncidentSeverity, c.getValue())}</Badge> }),
    col.accessor("status", { header: "Status", cell: (c) => <Badge>{enumLabel(IncidentStatus, c.getValue())}</Badge> }),
    col.accessor("category", { header: "Category", cell: (c) => enumLabel(IncidentCategory, c.getValue()) }),
    col.accessor("agentId", { header: "Agent", cell: (c) => names.name(c.getValue()) }),
    col.accessor("runsAffected", { header: "Runs", meta: { className: "num" }, cell: (c) => count(c.getValue()) }),
    col.accessor("costMicros", { header: "Cost", meta: { className: "num" }, cell: (c) => money(c.getValue()) }),
    col.accessor("lastSeenTime", { header: "Last seen", cell: (c) => <Time ts={c.getValue()} /> }),
  ];

  return (
    <>
      <PageHeader title="Incidents" question="What went wrong?">
        <ZoneNote />
      </PageHeader>
      <section className="filters" aria-label="Filters">
        <Checks legend="Severity" param="severity" values={SEVERITIES} e={IncidentSeverity} />
        <Checks legend="Status" param="status" values={STATUSES} e={IncidentStatus} />
        {params.size > 0 ? (
          <Link href="/incidents" className="clear">
            Clear filters
          </Link>
        ) : null}
      </section>
      <QueryView query={list} what="incidents">
        {(data) => (
          <>
            <DataTable
              caption="Incidents, newest first"
              columns={columns}
              rows={data.incidents}
              rowId={(i) => i.id}
              selected={selected}
              empty={
                <Empty title={severities.length || statuses.length ? "No incident matches these filters" : "No incidents"}>
                  <p>Failed runs, budget breaches and cost anomalies open incidents here.</p>
                </Empty>
              }
            />
            <Pager label="Incidents" number={pager.number} hasNext={data.nextPageToken !== ""} onNext={() => pager.next(data.nextPageToken)} onPrev={pager.prev} />
          </>
        )}
      </QueryView>
      {selected ? <IncidentDrawer id={selected} onClose={() => set({ incident: null }, { push: true })} /> : null}
    </>
  );
}

function IncidentDrawer({ id, onClose }: { id: string; onClose: () => void }) {
  const names = useNames();
  const can = useCan();
  const [note, setNote] = useState("");
  const inc = useQuery(IncidentService.method.getIncident, { id });
  const source = useQuery(IncidentService.method.getIncidentSourceRun, { id });
  const runs = useQuery(IncidentService.method.listIncidentRuns, { id, pageSize: 20 });
  const impact = useQuery(IncidentService.method.getIncidentCostImpact, { id });
  return (
    <Drawer title={inc.data?.incident?.title || `Incident ${id}`} onClose={onClose}>
      <QueryView query={inc} what="the incident">
        {({ incident: i }) =>
          i ? (
            <>
              <dl className="facts">
                <dt>Severity</dt>
                <dd>
                  <Badge>{enumLabel(IncidentSeverity, i.severity)}</Badge>
                </dd>
                <dt>Status</dt>
                <dd>
                  <Badge>{enumLabel(IncidentStatus, i.status)}</Badge>
                </dd>
                <dt>Category</dt>
                <dd>{enumLabel(IncidentCategory, i.category)}</dd>
                <dt>Agent</dt>
                <dd>{names.name(i.agentId)}</dd>
                {i.errorCode ? (
                  <>
                    <dt>Error</dt>
                    <dd>
                      <code>{i.errorCode}</code> {i.errorSignature}
                    </dd>
                  </>
                ) : null}
                <dt>Occurrences</dt>
                <dd>{count(i.occurrences)}</dd>
                <dt>First seen</dt>
                <dd>
                  <Time ts={i.firstSeenTime} />
                </dd>
                <dt>Last seen</dt>
                <dd>
                  <Time ts={i.lastSeenTime} />
                </dd>
                {i.acknowledgeTime ? (
                  <>
                    <dt>Acknowledged</dt>
                    <dd>
                      <Time ts={i.acknowledgeTime} /> by {names.name(i.acknowledgedBy)}
                    </dd>
                  </>
                ) : null}
                {i.resolveTime ? (
                  <>
                    <dt>Resolved</dt>
                    <dd>
                      <Time ts={i.resolveTime} /> by {names.name(i.resolvedBy)} {i.resolutionNote ? `· “${i.resolutionNote}”` : ""}
                    </dd>
                  </>
                ) : null}
                <dt>Workflow</dt>
                <dd>
                  <TemporalLink workflowId={i.workflowId} />
                </dd>
              </dl>
              {can.approve && i.status !== IncidentStatus.RESOLVED ? (
                <div className="decide">
                  <div className="field">
                    <label htmlFor="incident-note">Note (optional)</label>
                    <input id="incident-note" value={note} onChange={(e) => setNote(e.target.value)} />
                  </div>
                  {i.status === IncidentStatus.OPEN ? (
                    <ActionButton method={IncidentService.method.acknowledgeIncident} input={{ id, note }} label="Acknowledge" />
                  ) : null}
                  <ActionButton method={IncidentService.method.resolveIncident} input={{ id, note }} label="Resolve" confirm="Resolve this incident?" />
                </div>
              ) : null}
              <h3>Source run</h3>
              <QueryView query={source} what="the source run">
                {({ run }) =>
                  run ? (
                    <p>
                      <EntityLink type="run" id={run.id} /> · {enumLabel(RunStatus, run.status)} · {money(run.actual?.costMicros)}
                    </p>
                  ) : (
                    <p className="muted">Not opened by a run ({i.sourceType || "other"} {i.sourceId}).</p>
                  )
                }
              </QueryView>
              <h3>Cost impact</h3>
              <QueryView query={impact} what="the cost impact">
                {(c) => (
                  <div className="stats">
                    <Stat label="Cost of affected runs" value={<span data-testid="impact-cost">{money(c.totalCostMicros)}</span>} />
                    <Stat label="Runs affected" value={count(c.runsAffected)} />
                    <Stat label="Repeats' cost" value={money(c.retryCostMicros)} hint="affected runs after the first" />
                    <Stat label="Runs prevented" value={count(c.runsPrevented)} hint={money(c.preventedCostMicros)} />
                    <Stat label="Estimated saving" value={money(c.estimatedSavingMicros)} />
                  </div>
                )}
              </QueryView>
              <h3>Affected runs</h3>
              <QueryView query={runs} what="affected runs">
                {({ runs: list, nextPageToken }) => (
                  <>
                    <ul>
                      {list.map((r) => (
                        <li key={r.id}>
                          <EntityLink type="run" id={r.id} /> · <Time ts={r.admitTime} /> · {money(r.actual?.costMicros)}
                        </li>
                      ))}
                    </ul>
                    {nextPageToken ? (
                      <p className="muted">
                        The 20 newest of {count(i.runsAffected)}; <Link href={`/activity?agent=${i.agentId}&status=failed`}>all of the agent's failed runs</Link>.
                      </p>
                    ) : null}
                  </>
                )}
              </QueryView>
              <h3>Policy proposal</h3>
              {i.proposalId ? <ProposalById id={i.proposalId} /> : <p className="muted">No proposal (only high and critical incidents propose a policy).</p>}
              <h3>Timeline</h3>
              <TimelineList entity={{ type: "incident", id }} />
            </>
          ) : (
            <Empty title="No such incident" />
          )
        }
      </QueryView>
    </Drawer>
  );
}
