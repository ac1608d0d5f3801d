import { useQuery } from "@connectrpc/connect-query";
import { createColumnHelper } from "@tanstack/react-table";
import { useState, type FormEvent } from "react";
import { ActionButton, ActionError, useAction } from "../components/Action";
import { Badge, EntityLink, PageHeader, Tabs } from "../components/Bits";
import { Select, TextInput } from "../components/Form";
import { Modal } from "../components/Overlay";
import { matchText, ProposalById, ProposalPanel } from "../components/Proposal";
import { Empty, QueryView } from "../components/State";
import { DataTable } from "../components/Table";
import { Time, ZoneNote } from "../components/Time";
import {
  LimitEnforcement,
  LimitInheritance,
  LimitMetric,
  LimitScope,
  LimitService,
  LimitWindow,
  type Limit,
  type LimitResolution,
} from "../gen/governor/v1/limits_pb";
import { PolicyRuleStatus, PolicyService, ProposalStatus, type PolicyRule } from "../gen/governor/v1/policies_pb";
import { errorMessage } from "../lib/api";
import { count, enumLabel, money, parseDollars } from "../lib/format";
import { useNames } from "../lib/names";
import { useCan } from "../lib/session";
import { useUrlState } from "../lib/url";

export default function Policies() {
  const [params] = useUrlState();
  const tab = params.get("tab") ?? "rules";
  return (
    <>
      <PageHeader title="Policies" question="How is behaviour defined?">
        <ZoneNote />
      </PageHeader>
      <Tabs
        label="Policy sections"
        current={tab}
        tabs={[
          ["rules", "Rules"],
          ["proposals", "Proposals"],
          ["limits", "Limits and budgets"],
          ["effective", "Effective limits"],
        ]}
      />
      {tab === "rules" ? <Rules /> : tab === "proposals" ? <Proposals /> : tab === "limits" ? <Limits /> : <Effective />}
    </>
  );
}

function Effectiveness({ id }: { id: string }) {
  const q = useQuery(PolicyService.method.getPolicyEffectiveness, { id });
  if (q.error) return <span className="action-error">{errorMessage(q.error)}</span>;
  if (!q.data) return <span className="muted">…</span>;
  return (
    <span data-testid={`effectiveness-${id}`}>
      {count(q.data.runsPrevented)} prevented · {money(q.data.estimatedCostSavedMicros)} saved · {count(q.data.failuresSinceActivation)} failures since
    </span>
  );
}

function Rules() {
  const names = useNames();
  const can = useCan();
  const [params] = useUrlState();
  const [creating, setCreating] = useState(false);
  const rules = useQuery(PolicyService.method.listPolicyRules, { pageSize: 500 });
  const col = createColumnHelper<PolicyRule>();
  const columns = [
    col.accessor("name", { header: "Rule", cell: (c) => <strong>{c.getValue()}</strong> }),
    col.accessor("status", { header: "Status", cell: (c) => <Badge>{enumLabel(PolicyRuleStatus, c.getValue())}</Badge> }),
    col.display({ id: "match", header: "Blocks", cell: (c) => matchText(c.row.original.match, names.name) }),
    col.display({ id: "eff", header: "Effectiveness", cell: (c) => <Effectiveness id={c.row.original.id} /> }),
    col.accessor("sourceIncidentId", { header: "From incident", cell: (c) => <EntityLink type="incident" id={c.getValue()} /> }),
    col.accessor("activateTime", { header: "Active since", cell: (c) => <Time ts={c.getValue()} /> }),
    ...(can.administer
      ? [
          col.display({
            id: "actions",
            header: "Actions",
            cell: (c) =>
              c.row.original.status === PolicyRuleStatus.ACTIVE ? (
                <ActionButton
                  method={PolicyService.method.disablePolicyRule}
                  input={{ id: c.row.original.id }}
                  label="Disable"
                  confirm={`Disable ${c.row.original.name}?`}
                  danger
                />
              ) : null,
          }),
        ]
      : []),
  ];
  return (
    <section aria-label="Rules">
      {can.administer ? (
        <div className="toolbar">
          <button type="button" className="primary" onClick={() => setCreating(true)}>
            Create rule
          </button>
        </div>
      ) : null}
      <QueryView query={rules} what="policy rules">
        {(d) => (
          <DataTable
            caption="Policy rules"
            columns={columns}
            rows={d.rules}
            rowId={(r) => r.id}
            selected={params.get("rule") ?? undefined}
            empty={
              <Empty title="No policy rules">
                <p>Approved proposals become rules; administrators can also write one.</p>
              </Empty>
            }
          />
        )}
      </QueryView>
      {creating ? <CreateRule onClose={() => setCreating(false)} /> : null}
    </section>
  );
}

function CreateRule({ onClose }: { onClose: () => void }) {
  const names = useNames();
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [agentId, setAgent] = useState("");
  const [model, setModel] = useState("");
  const [feature, setFeature] = useState("");
  const create = useAction(PolicyService.method.createPolicyRule, onClose);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate({ name, description, match: { agentId, model, feature } });
  };
  return (
    <Modal title="Create a policy rule" onClose={onClose}>
      <form onSubmit={submit} className="stack">
        <TextInput label="Name" value={name} onChange={setName} required />
        <TextInput label="Description" value={description} onChange={setDescription} />
        <Select label="Agent" value={agentId} onChange={setAgent} options={[["", "Any agent"], ...names.agents.map((a) => [a.id, a.name] as [string, string])]} />
        <TextInput label="Model" value={model} onChange={setModel} placeholder="any" />
        <TextInput label="Feature" value={feature} onChange={setFeature} placeholder="any" />
        <p className="muted small">Runs matching every field given are blocked at admission.</p>
        <button type="submit" className="primary" disabled={create.isPending}>
          Create rule
        </button>
        <ActionError error={create.error} />
      </form>
    </Modal>
  );
}

function Proposals() {
  const [params, set] = useUrlState();
  const only = params.get("proposal");
  const status = params.get("status") ?? "pending";
  const statuses = status === "all" ? [] : [ProposalStatus[status.toUpperCase() as keyof typeof ProposalStatus] as ProposalStatus];
  const list = useQuery(PolicyService.method.listProposals, { statuses, pageSize: 50 }, { enabled: !only });
  if (only) {
    return (
      <section aria-label="Proposal">
        <button type="button" className="link" onClick={() => set({ proposal: null })}>
          All proposals
        </button>
        <ProposalById id={only} level={2} />
      </section>
    );
  }
  return (
    <section aria-label="Proposals">
      <div className="filters">
        <Select
          label="Status"
          value={status}
          onChange={(v) => set({ status: v })}
          options={[
            ["pending", "Pending"],
            ["approved", "Approved"],
            ["rejected", "Rejected"],
            ["expired", "Expired"],
            ["all", "All"],
          ]}
        />
      </div>
      <QueryView query={list} what="proposals">
        {(d) =>
          d.proposals.length === 0 ? (
            <Empty title={`No ${status === "all" ? "" : status + " "}proposals`}>
              <p>High and critical incidents propose a rule that blocks runs like the failing ones.</p>
            </Empty>
          ) : (
            <div className="cards">
              {d.proposals.map((p) => (
                <ProposalPanel key={p.id} p={p} level={2} />
              ))}
            </div>
          )
        }
      </QueryView>
    </section>
  );
}

export function limitAmount(metric: LimitMetric, amount: bigint): string {
  return metric === LimitMetric.COST ? money(amount) : count(amount);
}

const METRICS = [LimitMetric.COST, LimitMetric.TOKENS, LimitMetric.RUNS, LimitMetric.REQUESTS];
const WINDOWS = [LimitWindow.MINUTE, LimitWindow.HOUR, LimitWindow.DAY, LimitWindow.WEEK, LimitWindow.MONTH];
const opts = <T extends number>(e: Record<number, string>, vs: T[]) => vs.map((v) => [String(v), enumLabel(e, v)] as [string, string]);

function scopeText(l: Limit, name: (id: string) => string): string {
  const t = l.scope?.type ?? LimitScope.UNSPECIFIED;
  return t === LimitScope.ORGANIZATION ? "organization" : `${enumLabel(LimitScope, t)} ${name(l.scope?.id ?? "")}`;
}

function Limits() {
  const names = useNames();
  const can = useCan();
  const [params] = useUrlState();
  const [editing, setEditing] = useState<Limit | "new" | null>(null);
  const limits = useQuery(LimitService.method.listLimits, { pageSize: 500 });
  const col = createColumnHelper<Limit>();
  const columns = [
    col.accessor("name", { header: "Limit", cell: (c) => <strong>{c.getValue() || c.row.original.id}</strong> }),
    col.display({ id: "scope", header: "Scope", cell: (c) => scopeText(c.row.original, names.name) }),
    col.accessor("metric", { header: "Metric", cell: (c) => enumLabel(LimitMetric, c.getValue()) }),
    col.accessor("window", { header: "Window", cell: (c) => enumLabel(LimitWindow, c.getValue()) }),
    col.accessor("amount", { header: "Amount", meta: { className: "num" }, cell: (c) => limitAmount(c.row.original.metric, c.getValue()) }),
    col.accessor("enforcement", { header: "Enforcement", cell: (c) => enumLabel(LimitEnforcement, c.getValue()) }),
    col.display({
      id: "combine",
      header: "Combines",
      cell: (c) => `${enumLabel(LimitInheritance, c.row.original.inheritance)}, priority ${c.row.original.priority}`,
    }),
    col.display({
      id: "narrow",
      header: "Only",
      cell: (c) => [c.row.original.model && `model ${c.row.original.model}`, c.row.original.feature && `feature ${c.row.original.feature}`].filter(Boolean).join(", ") || "—",
    }),
    col.accessor("enabled", { header: "State", cell: (c) => <Badge>{c.getValue() ? "active" : "disabled"}</Badge> }),
    ...(can.administer
      ? [
          col.display({
            id: "actions",
            header: "Actions",
            cell: (c) => {
              const l = c.row.original;
              return (
                <span className="row-actions">
                  <button type="button" onClick={() => setEditing(l)}>
                    Edit
                  </button>
                  <ActionButton method={LimitService.method.updateLimit} input={{ id: l.id, enabled: !l.enabled }} label={l.enabled ? "Disable" : "Enable"} />
                  <ActionButton method={LimitService.method.deleteLimit} input={{ id: l.id }} label="Delete" confirm={`Delete ${l.name || l.id}?`} danger />
                </span>
              );
            },
          }),
        ]
      : []),
  ];
  return (
    <section aria-label="Limits and budgets">
      {can.administer ? (
        <div className="toolbar">
          <button type="button" className="primary" onClick={() => setEditing("new")}>
            Create limit
          </button>
        </div>
      ) : null}
      <QueryView query={limits} what="limits">
        {(d) => (
          <DataTable
            caption="Limits and budgets"
            columns={columns}
            rows={d.limits}
            rowId={(l) => l.id}
            selected={params.get("limit") ?? undefined}
            empty={
              <Empty title="No limits">
                <p>Cost budgets, token and run quotas and rate limits, on the organization, a project, an agent or a key.</p>
              </Empty>
            }
          />
        )}
      </QueryView>
      {editing ? <LimitForm limit={editing === "new" ? undefined : editing} onClose={() => setEditing(null)} /> : null}
    </section>
  );
}

function amountText(metric: LimitMetric, amount: bigint): string {
  if (metric !== LimitMetric.COST) return amount.toString();
  return money(amount).replace(/[$,]/g, "");
}

function parseAmount(metric: LimitMetric, text: string): bigint | undefined {
  if (metric === LimitMetric.COST) return parseDollars(text);
  return /^\d{1,18}$/.test(text.trim()) ? BigInt(text.trim()) : undefined;
}

function LimitForm({ limit, onClose }: { limit?: Limit; onClose: () => void }) {
  const names = useNames();
  const [name, setName] = useState(limit?.name ?? "");
  const [scopeType, setScopeType] = useState(String(limit?.scope?.type ?? LimitScope.ORGANIZATION));
  const [scopeId, setScopeId] = useState(limit?.scope?.id ?? "");
  const [metric, setMetric] = useState(String(limit?.metric ?? LimitMetric.COST));
  const [window, setWindow] = useState(String(limit?.window ?? LimitWindow.MONTH));
  const [amount, setAmount] = useState(limit ? amountText(limit.metric, limit.amount) : "");
  const [enforcement, setEnforcement] = useState(String(limit?.enforcement ?? LimitEnforcement.BLOCK));
  const [inheritance, setInheritance] = useState(String(limit?.inheritance ?? LimitInheritance.MERGE));
  const [priority, setPriority] = useState(String(limit?.priority ?? 0));
  const [model, setModel] = useState(limit?.model ?? "");
  const [feature, setFeature] = useState(limit?.feature ?? "");
  const [problem, setProblem] = useState("");
  const create = useAction(LimitService.method.createLimit, onClose);
  const update = useAction(LimitService.method.updateLimit, onClose);
  const m = Number(metric) as LimitMetric;
  const scopeOptions: [string, string][] =
    Number(scopeType) === LimitScope.PROJECT
      ? names.projects.map((p) => [p.id, p.name])
      : Number(scopeType) === LimitScope.AGENT
        ? names.agents.map((a) => [a.id, a.name])
        : Number(scopeType) === LimitScope.API_KEY
          ? names.keys.map((k) => [k.id, `${k.name} (${k.prefix})`])
          : [];
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const a = parseAmount(m, amount);
    const p = Number(priority);
    if (a === undefined || a <= 0n) return setProblem(m === LimitMetric.COST ? "Amount: dollars, up to 6 decimals, above zero" : "Amount: a whole number above zero");
    if (!Number.isInteger(p) || p < -1000 || p > 1000) return setProblem("Priority: a whole number from -1000 to 1000");
    setProblem("");
    if (limit) {
      update.mutate({ id: limit.id, name, amount: a, enforcement: Number(enforcement), inheritance: Number(inheritance), priority: p });
    } else {
      create.mutate({
        name,
        scope: { type: Number(scopeType), id: Number(scopeType) === LimitScope.ORGANIZATION ? "" : scopeId || scopeOptions[0]?.[0] || "" },
        metric: m,
        window: Number(window),
        amount: a,
        enforcement: Number(enforcement),
        inheritance: Number(inheritance),
        priority: p,
        model,
        feature,
      });
    }
  };
  return (
    <Modal title={limit ? `Edit ${limit.name || limit.id}` : "Create a limit"} onClose={onClose}>
      <form onSubmit={submit} className="stack">
        <TextInput label="Name" value={name} onChange={setName} />
        {limit ? null : (
          <>
            <Select
              label="Scope"
              value={scopeType}
              onChange={(v) => {
                setScopeType(v);
                setScopeId("");
              }}
              options={opts(LimitScope, [LimitScope.ORGANIZATION, LimitScope.PROJECT, LimitScope.AGENT, LimitScope.API_KEY])}
            />
            {scopeOptions.length ? <Select label="Applies to" value={scopeId || scopeOptions[0][0]} onChange={setScopeId} options={scopeOptions} /> : null}
            <Select label="Metric" value={metric} onChange={setMetric} options={opts(LimitMetric, METRICS)} />
            <Select label="Window" value={window} onChange={setWindow} options={opts(LimitWindow, WINDOWS)} hint="Days, weeks and months follow the organization's time zone." />
            <TextInput label="Only model" value={model} onChange={setModel} placeholder="any" />
            <TextInput label="Only feature" value={feature} onChange={setFeature} placeholder="any" />
          </>
        )}
        <TextInput label={m === LimitMetric.COST ? "Amount (US dollars)" : "Amount"} value={amount} onChange={setAmount} required />
        <Select label="Enforcement" value={enforcement} onChange={setEnforcement} options={opts(LimitEnforcement, [LimitEnforcement.BLOCK, LimitEnforcement.WARN])} />
        <Select
          label="Combines with broader limits"
          value={inheritance}
          onChange={setInheritance}
          options={opts(LimitInheritance, [LimitInheritance.MERGE, LimitInheritance.OVERRIDE, LimitInheritance.INHERIT])}
        />
        <TextInput label="Priority" value={priority} onChange={setPriority} type="number" />
        <button type="submit" className="primary" disabled={create.isPending || update.isPending}>
          {limit ? "Save limit" : "Create limit"}
        </button>
        {problem ? (
          <p className="action-error" role="alert">
            {problem}
          </p>
        ) : null}
        <ActionError error={create.error ?? update.error} />
      </form>
    </Modal>
  );
}

function Effective() {
  const names = useNames();
  const [params, set] = useUrlState();
  const agentId = params.get("agent") ?? names.agents[0]?.id ?? "";
  const apiKeyId = params.get("key") ?? "";
  const q = useQuery(LimitService.method.getEffectiveLimits, { agentId, apiKeyId, model: params.get("model") ?? "", feature: params.get("feature") ?? "" }, { enabled: agentId !== "" });
  const col = createColumnHelper<LimitResolution>();
  const columns = [
    col.display({ id: "name", header: "Limit", cell: (c) => <EntityLink type="limit" id={c.row.original.limit?.id ?? ""}>{c.row.original.limit?.name || c.row.original.limit?.id}</EntityLink> }),
    col.display({ id: "scope", header: "Set on", cell: (c) => (c.row.original.limit ? scopeText(c.row.original.limit, names.name) : "—") }),
    col.display({
      id: "what",
      header: "Limit",
      cell: (c) => {
        const l = c.row.original.limit;
        return l ? `${limitAmount(l.metric, l.amount)} ${enumLabel(LimitMetric, l.metric)} per ${enumLabel(LimitWindow, l.window)}` : "—";
      },
    }),
    col.accessor("effective", { header: "Applies", cell: (c) => <Badge>{c.getValue() ? "applies" : "does not apply"}</Badge> }),
    col.accessor("reason", { header: "Why" }),
  ];
  return (
    <section aria-label="Effective limits">
      <div className="filters">
        <Select label="Agent" value={agentId} onChange={(v) => set({ agent: v })} options={names.agents.map((a) => [a.id, a.name] as [string, string])} />
        <Select
          label="API key"
          value={apiKeyId}
          onChange={(v) => set({ key: v })}
          options={[["", "Any key"], ...names.keys.map((k) => [k.id, `${k.name} (${k.prefix})`] as [string, string])]}
        />
      </div>
      {agentId === "" ? (
        <Empty title="No agents yet">
          <p>Effective limits are resolved for an agent.</p>
        </Empty>
      ) : (
        <QueryView query={q} what="effective limits">
          {(d) => (
            <>
              <p>
                A run of <strong>{names.name(agentId)}</strong> is checked against {d.effective.length} limit{d.effective.length === 1 ? "" : "s"}, in this order:{" "}
                {d.effective.map((l) => l.name || l.id).join(" → ") || "none"}.
              </p>
              <DataTable caption="Every limit considered, with where it comes from" columns={columns} rows={d.resolutions} rowId={(r) => r.limit?.id ?? r.reason} empty="No limit applies to this agent." />
            </>
          )}
        </QueryView>
      )}
    </section>
  );
}
