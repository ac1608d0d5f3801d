import { useQuery } from "@connectrpc/connect-query";
import { createColumnHelper } from "@tanstack/react-table";
import { useState, type FormEvent } from "react";
import { ActionError, useAction } from "../components/Action";
import { EntityLink, PageHeader, Tabs } from "../components/Bits";
import { Field, Select } from "../components/Form";
import { Drawer } from "../components/Overlay";
import { Empty, QueryView } from "../components/State";
import { DataTable, Pager } from "../components/Table";
import { Time, ZoneNote } from "../components/Time";
import { AuditService, type AuditEntry, type VerifyAuditChainResponse } from "../gen/governor/v1/audit_pb";
import { ActorKind, type Actor } from "../gen/governor/v1/common_pb";
import { TimelineService, type Event } from "../gen/governor/v1/timeline_pb";
import { count } from "../lib/format";
import { useNames } from "../lib/names";
import { usePager, useUrlState } from "../lib/url";

export default function Logs() {
  const [params] = useUrlState();
  const tab = params.get("tab") ?? "audit";
  return (
    <>
      <PageHeader title="Logs" question="What is the raw truth?">
        <ZoneNote />
      </PageHeader>
      <Tabs
        label="Log sections"
        current={tab}
        tabs={[
          ["audit", "Audit ledger"],
          ["timeline", "Timeline"],
          ["llm", "LLM calls"],
          ["system", "System records"],
        ]}
      />
      {tab === "audit" ? (
        <Audit />
      ) : tab === "timeline" ? (
        <Timeline />
      ) : (
        <Empty title={tab === "llm" ? "LLM calls arrive with the analytics API" : "System records arrive with the analytics API"}>
          <p>
            {tab === "llm"
              ? "Each call an agent made to a model (tokens, latency, cost), linked to its run, comes from the analytics API's logs, which the server does not offer yet."
              : "Governor's own records (settlements, relays, batches) come with the analytics API's logs, which the server does not offer yet."}{" "}
            The audit ledger and the timeline are complete today.
          </p>
        </Empty>
      )}
    </>
  );
}

function ActorText({ actor }: { actor: Actor | undefined }) {
  const names = useNames();
  if (!actor) return <>—</>;
  if (actor.kind === ActorKind.SYSTEM) return <span className="muted">{actor.system}</span>;
  return <>{actor.userId ? names.name(actor.userId) : names.name(actor.apiKeyId)}</>;
}

function ChainResult({ r }: { r: VerifyAuditChainResponse }) {
  return r.intact ? (
    <p className="callout good" role="status" data-testid="chain-result">
      Chain intact: {count(r.entriesChecked)} entries checked; head #{count(r.headSequence)} <code>{r.headHash.slice(0, 16)}…</code>
    </p>
  ) : (
    <p className="callout bad" role="alert" data-testid="chain-result">
      Chain broken at #{count(r.firstBreak?.sequence)} ({r.firstBreak?.entryId || "missing entry"}): {r.firstBreak?.reason}. {count(r.entriesChecked)} entries checked.
    </p>
  );
}

function Audit() {
  const [params, set] = useUrlState();
  const pager = usePager();
  const [entityType, setEntityType] = useState(params.get("entity_type") ?? "");
  const [action, setActionText] = useState(params.get("action") ?? "");
  const oldest = params.get("order") === "oldest";
  const list = useQuery(AuditService.method.listAuditEntries, {
    entityType: params.get("entity_type") ?? "",
    entityId: params.get("entity_id") ?? "",
    action: params.get("action") ?? "",
    newestFirst: !oldest,
    pageSize: 50,
    pageToken: pager.token,
  });
  const verify = useAction(AuditService.method.verifyAuditChain);
  const [open, setOpen] = useState<AuditEntry | null>(null);
  const apply = (e: FormEvent) => {
    e.preventDefault();
    set({ entity_type: entityType.trim(), action: action.trim(), ...pager.reset });
  };
  const col = createColumnHelper<AuditEntry>();
  const columns = [
    col.accessor("sequence", { header: "#", meta: { className: "num" }, cell: (c) => count(c.getValue()) }),
    col.accessor("createTime", { header: "When", cell: (c) => <Time ts={c.getValue()} /> }),
    col.accessor("actor", { header: "Who", cell: (c) => <ActorText actor={c.getValue()} /> }),
    col.accessor("action", { header: "Action", cell: (c) => <code>{c.getValue()}</code> }),
    col.display({ id: "entity", header: "Entity", cell: (c) => <EntityLink type={c.row.original.entityType} id={c.row.original.entityId} /> }),
    col.display({
      id: "details",
      header: "Change",
      cell: (c) => (
        <button type="button" className="link" onClick={() => setOpen(c.row.original)} aria-label={`Details of entry ${c.row.original.sequence}`}>
          Details
        </button>
      ),
    }),
  ];
  return (
    <section aria-label="Audit ledger">
      <div className="filters">
        <form className="inline" onSubmit={apply}>
          <Field label="Entity type">{(id) => <input id={id} value={entityType} onChange={(e) => setEntityType(e.target.value)} placeholder="e.g. api_key" />}</Field>
          <Field label="Action">{(id) => <input id={id} value={action} onChange={(e) => setActionText(e.target.value)} placeholder="e.g. api_key.freeze" />}</Field>
          <button type="submit">Apply</button>
        </form>
        <Select label="Order" value={oldest ? "oldest" : ""} onChange={(v) => set({ order: v, ...pager.reset })} options={[["", "Newest first"], ["oldest", "Oldest first"]]} />
        <div className="toolbar">
          <button type="button" onClick={() => verify.mutate({})} disabled={verify.isPending}>
            {verify.isPending ? "Verifying…" : "Verify chain"}
          </button>
        </div>
      </div>
      {verify.data ? <ChainResult r={verify.data} /> : null}
      <ActionError error={verify.error} />
      <QueryView query={list} what="the audit ledger">
        {(d) => (
          <>
            <DataTable caption="Audit entries" columns={columns} rows={d.entries} rowId={(e) => e.id} empty="No audit entries match." />
            <Pager label="Audit entries" number={pager.number} hasNext={d.nextPageToken !== ""} onNext={() => pager.next(d.nextPageToken)} onPrev={pager.prev} />
          </>
        )}
      </QueryView>
      {open ? (
        <Drawer title={`Entry #${open.sequence}: ${open.action}`} onClose={() => setOpen(null)}>
          <dl className="facts">
            <dt>Entity</dt>
            <dd>
              {open.entityType} <EntityLink type={open.entityType} id={open.entityId} />
            </dd>
            <dt>Request</dt>
            <dd>
              <code>{open.requestId || "—"}</code>
            </dd>
            <dt>Hash</dt>
            <dd>
              <code className="wrap">{open.hash}</code>
            </dd>
            <dt>Previous</dt>
            <dd>
              <code className="wrap">{open.previousHash}</code>
            </dd>
          </dl>
          <h3>Before</h3>
          <pre className="json">{pretty(open.beforeJson)}</pre>
          <h3>After</h3>
          <pre className="json">{pretty(open.afterJson)}</pre>
        </Drawer>
      ) : null}
    </section>
  );
}

function pretty(json: string): string {
  if (!json) return "—";
  try {
    return JSON.stringify(JSON.parse(json), null, 2);
  } catch {
    return json;
  }
}

const DOMAINS = ["accounts", "keys", "runs", "limits", "incidents", "policies", "anomalies", "alerts"];

function Timeline() {
  const [params, set] = useUrlState();
  const pager = usePager();
  const domain = params.get("domain") ?? "";
  const list = useQuery(TimelineService.method.listEvents, {
    filter: { domains: domain ? [domain] : [] },
    newestFirst: true,
    pageSize: 50,
    pageToken: pager.token,
  });
  const col = createColumnHelper<Event>();
  const columns = [
    col.accessor("occurTime", { header: "When", cell: (c) => <Time ts={c.getValue()} /> }),
    col.accessor("domain", { header: "Domain" }),
    col.accessor("type", { header: "Event", cell: (c) => <code>{c.getValue()}</code> }),
    col.accessor("summary", { header: "Summary" }),
    col.display({
      id: "entity",
      header: "About",
      cell: (c) => (c.row.original.entity ? <EntityLink type={c.row.original.entity.type} id={c.row.original.entity.id} /> : "—"),
    }),
  ];
  return (
    <section aria-label="Timeline">
      <div className="filters">
        <Select label="Domain" value={domain} onChange={(v) => set({ domain: v, ...pager.reset })} options={[["", "Every domain"], ...DOMAINS.map((d) => [d, d] as [string, string])]} />
      </div>
      <QueryView query={list} what="the timeline">
        {(d) => (
          <>
            <DataTable caption="Events, newest first" columns={columns} rows={d.events} rowId={(e) => e.id} empty="No events." />
            <Pager label="Events" number={pager.number} hasNext={d.nextPageToken !== ""} onNext={() => pager.next(d.nextPageToken)} onPrev={pager.prev} />
          </>
        )}
      </QueryView>
    </section>
  );
}
