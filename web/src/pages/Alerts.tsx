import { useQuery } from "@connectrpc/connect-query";
import { createColumnHelper } from "@tanstack/react-table";
import { useState, type FormEvent } from "react";
import { ActionButton, ActionError, useAction } from "../components/Action";
import { Badge, EntityLink, PageHeader, Secret, Tabs } from "../components/Bits";
import { Select, TextInput } from "../components/Form";
import { Drawer, Modal } from "../components/Overlay";
import { Empty, QueryView } from "../components/State";
import { DataTable, Pager } from "../components/Table";
import { Time, ZoneNote } from "../components/Time";
import {
  AlertKind,
  AlertService,
  AlertSeverity,
  AttemptOutcome,
  ChannelType,
  DeliveryStatus,
  type Alert,
  type Channel,
  type Delivery,
  type Route,
} from "../gen/governor/v1/alerts_pb";
import { count, enumLabel } from "../lib/format";
import { useCan } from "../lib/session";
import { usePager, useUrlState } from "../lib/url";
import { TemporalLink } from "./Activity";

export default function Alerts() {
  const [params] = useUrlState();
  const tab = params.get("tab") ?? "channels";
  return (
    <>
      <PageHeader title="Alerts" question="Who hears about what, and did it reach them?">
        <ZoneNote />
      </PageHeader>
      <Tabs
        label="Alert sections"
        current={tab}
        tabs={[
          ["channels", "Channels"],
          ["routes", "Routes"],
          ["deliveries", "Deliveries"],
          ["alerts", "Alerts"],
        ]}
      />
      {tab === "channels" ? <Channels /> : tab === "routes" ? <Routes /> : tab === "deliveries" ? <Deliveries /> : <AlertList />}
    </>
  );
}

function useChannels() {
  const q = useQuery(AlertService.method.listChannels, { pageSize: 500 });
  const byId = new Map((q.data?.channels ?? []).map((c) => [c.id, c]));
  return { q, name: (id: string) => byId.get(id)?.name ?? id, list: q.data?.channels ?? [] };
}

function Channels() {
  const can = useCan();
  const { q } = useChannels();
  const [creating, setCreating] = useState(false);
  const [secret, setSecret] = useState<{ name: string; secret: string } | null>(null);
  const col = createColumnHelper<Channel>();
  const columns = [
    col.accessor("name", { header: "Channel", cell: (c) => <strong>{c.getValue()}</strong> }),
    col.accessor("type", { header: "Type", cell: (c) => enumLabel(ChannelType, c.getValue()) }),
    col.display({ id: "to", header: "Sends to", cell: (c) => c.row.original.url || c.row.original.emailTo.join(", ") || "the console" }),
    col.accessor("enabled", {
      header: "State",
      cell: (c) => (
        <>
          <Badge>{c.getValue() ? "active" : "disabled"}</Badge> {c.row.original.disabledReason}
        </>
      ),
    }),
    col.accessor("failingSince", { header: "Failing since", cell: (c) => <Time ts={c.getValue()} /> }),
    col.accessor("lastSuccessTime", { header: "Last success", cell: (c) => <Time ts={c.getValue()} /> }),
    ...(can.administer
      ? [
          col.display({
            id: "actions",
            header: "Actions",
            cell: (c) => {
              const ch = c.row.original;
              return (
                <span className="row-actions">
                  <ActionButton method={AlertService.method.testChannel} input={{ id: ch.id }} label="Send test" />
                  {ch.type !== ChannelType.IN_APP ? (
                    <>
                      <ActionButton method={AlertService.method.updateChannel} input={{ id: ch.id, enabled: !ch.enabled }} label={ch.enabled ? "Disable" : "Enable"} />
                      <ActionButton method={AlertService.method.deleteChannel} input={{ id: ch.id }} label="Delete" confirm={`Delete ${ch.name}?`} danger />
                    </>
                  ) : null}
                </span>
              );
            },
          }),
        ]
      : []),
  ];
  return (
    <section aria-label="Channels">
      {can.administer ? (
        <div className="toolbar">
          <button type="button" className="primary" onClick={() => setCreating(true)}>
            Create channel
          </button>
        </div>
      ) : null}
      <QueryView query={q} what="channels">
        {(d) => <DataTable caption="Alert channels" columns={columns} rows={d.channels} rowId={(c) => c.id} empty="No channels." />}
      </QueryView>
      {creating ? (
        <CreateChannel
          onClose={() => setCreating(false)}
          onCreated={(name, s) => {
            setCreating(false);
            if (s) setSecret({ name, secret: s });
          }}
        />
      ) : null}
      {secret ? (
        <Modal title={`Signing secret of ${secret.name}`} onClose={() => setSecret(null)}>
          <Secret value={secret.secret} what="signing secret" />
          <button type="button" onClick={() => setSecret(null)}>
            Done
          </button>
        </Modal>
      ) : null}
    </section>
  );
}

function CreateChannel({ onClose, onCreated }: { onClose: () => void; onCreated: (name: string, secret: string) => void }) {
  const [name, setName] = useState("");
  const [type, setType] = useState(String(ChannelType.WEBHOOK));
  const [url, setUrl] = useState("");
  const [to, setTo] = useState("");
  const create = useAction(AlertService.method.createChannel, (r) => onCreated(r.channel?.name ?? name, r.secret));
  const email = Number(type) === ChannelType.EMAIL;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate({
      name,
      type: Number(type),
      url: email ? "" : url,
      emailTo: email
        ? to
            .split(/[,\s]+/)
            .map((s) => s.trim())
            .filter(Boolean)
        : [],
    });
  };
  return (
    <Modal title="Create a channel" onClose={onClose}>
      <form onSubmit={submit} className="stack">
        <TextInput label="Name" value={name} onChange={setName} required />
        <Select
          label="Type"
          value={type}
          onChange={setType}
          options={[
            [String(ChannelType.WEBHOOK), "Webhook (signed, Standard Webhooks)"],
            [String(ChannelType.SLACK), "Slack incoming webhook"],
            [String(ChannelType.EMAIL), "Email"],
          ]}
        />
        {email ? <TextInput label="Recipients" value={to} onChange={setTo} hint="Comma-separated addresses" required /> : <TextInput label="URL" value={url} onChange={setUrl} type="url" required />}
        <button type="submit" className="primary" disabled={create.isPending}>
          Create channel
        </button>
        <ActionError error={create.error} />
      </form>
    </Modal>
  );
}

const KINDS = [
  AlertKind.LIMIT_THRESHOLD,
  AlertKind.BUDGET_EXCEEDED,
  AlertKind.ANOMALY,
  AlertKind.INCIDENT,
  AlertKind.PROPOSAL_PENDING,
  AlertKind.CHANNEL_DISABLED,
];
const SEVERITIES = [AlertSeverity.INFO, AlertSeverity.WARNING, AlertSeverity.HIGH, AlertSeverity.CRITICAL];

function Routes() {
  const can = useCan();
  const channels = useChannels();
  const routes = useQuery(AlertService.method.listRoutes, { pageSize: 500 });
  const [creating, setCreating] = useState(false);
  const col = createColumnHelper<Route>();
  const columns = [
    col.accessor("name", { header: "Route", cell: (c) => <strong>{c.getValue() || c.row.original.id}</strong> }),
    col.accessor("kinds", { header: "Alerts", cell: (c) => (c.getValue().length ? c.getValue().map((k) => enumLabel(AlertKind, k)).join(", ") : "every kind") }),
    col.accessor("minSeverity", { header: "From severity", cell: (c) => enumLabel(AlertSeverity, c.getValue()) }),
    col.accessor("channelIds", { header: "To", cell: (c) => c.getValue().map(channels.name).join(", ") }),
    col.accessor("enabled", { header: "State", cell: (c) => <Badge>{c.getValue() ? "active" : "disabled"}</Badge> }),
    ...(can.administer
      ? [
          col.display({
            id: "actions",
            header: "Actions",
            cell: (c) => {
              const r = c.row.original;
              return (
                <span className="row-actions">
                  <ActionButton method={AlertService.method.updateRoute} input={{ id: r.id, enabled: !r.enabled }} label={r.enabled ? "Disable" : "Enable"} />
                  <ActionButton method={AlertService.method.deleteRoute} input={{ id: r.id }} label="Delete" confirm={`Delete ${r.name || r.id}?`} danger />
                </span>
              );
            },
          }),
        ]
      : []),
  ];
  return (
    <section aria-label="Routes">
      {can.administer ? (
        <div className="toolbar">
          <button type="button" className="primary" onClick={() => setCreating(true)}>
            Create route
          </button>
        </div>
      ) : null}
      <QueryView query={routes} what="routes">
        {(d) => (
          <DataTable
            caption="Alert routes"
            columns={columns}
            rows={d.routes}
            rowId={(r) => r.id}
            empty={
              <Empty title="No routes">
                <p>Without routes every alert goes in-app, and high and critical ones also to every enabled external channel.</p>
              </Empty>
            }
          />
        )}
      </QueryView>
      {creating ? <CreateRoute channels={channels.list} onClose={() => setCreating(false)} /> : null}
    </section>
  );
}

function CreateRoute({ channels, onClose }: { channels: Channel[]; onClose: () => void }) {
  const [name, setName] = useState("");
  const [kinds, setKinds] = useState<AlertKind[]>([]);
  const [min, setMin] = useState(String(AlertSeverity.WARNING));
  const [to, setTo] = useState<string[]>([]);
  const create = useAction(AlertService.method.createRoute, onClose);
  const toggle = <T,>(list: T[], v: T) => (list.includes(v) ? list.filter((x) => x !== v) : [...list, v]);
  return (
    <Modal title="Create a route" onClose={onClose}>
      <form
        className="stack"
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate({ name, kinds, minSeverity: Number(min), channelIds: to });
        }}
      >
        <TextInput label="Name" value={name} onChange={setName} />
        <fieldset className="checks">
          <legend>Alert kinds (none: every kind)</legend>
          {KINDS.map((k) => (
            <label key={k}>
              <input type="checkbox" checked={kinds.includes(k)} onChange={() => setKinds(toggle(kinds, k))} /> {enumLabel(AlertKind, k)}
            </label>
          ))}
        </fieldset>
        <Select label="From severity" value={min} onChange={setMin} options={SEVERITIES.map((s) => [String(s), enumLabel(AlertSeverity, s)] as [string, string])} />
        <fieldset className="checks">
          <legend>Channels</legend>
          {channels.map((c) => (
            <label key={c.id}>
              <input type="checkbox" checked={to.includes(c.id)} onChange={() => setTo(toggle(to, c.id))} /> {c.name}
            </label>
          ))}
        </fieldset>
        <button type="submit" className="primary" disabled={create.isPending || to.length === 0}>
          Create route
        </button>
        <ActionError error={create.error} />
      </form>
    </Modal>
  );
}

function Deliveries() {
  const can = useCan();
  const channels = useChannels();
  const [params, set] = useUrlState();
  const pager = usePager();
  const status = params.get("status") ?? "";
  const [open, setOpen] = useState<Delivery | null>(null);
  const list = useQuery(AlertService.method.listDeliveries, {
    statuses: status ? [DeliveryStatus[status.toUpperCase() as keyof typeof DeliveryStatus]] : [],
    alertId: params.get("alert") ?? "",
    pageSize: 50,
    pageToken: pager.token,
  });
  const col = createColumnHelper<Delivery>();
  const columns = [
    col.accessor("alertId", { header: "Alert", cell: (c) => <EntityLink type="alert" id={c.getValue()} /> }),
    col.accessor("channelId", { header: "Channel", cell: (c) => channels.name(c.getValue()) }),
    col.accessor("status", { header: "Status", cell: (c) => <Badge>{enumLabel(DeliveryStatus, c.getValue())}</Badge> }),
    col.accessor("attemptCount", {
      header: "Attempts",
      meta: { className: "num" },
      cell: (c) => (
        <button type="button" className="link" onClick={() => setOpen(c.row.original)}>
          {count(c.getValue())} attempt{c.getValue() === 1 ? "" : "s"}
          <span className="visually-hidden"> of the delivery to {channels.name(c.row.original.channelId)}</span>
        </button>
      ),
    }),
    col.display({
      id: "last",
      header: "Last result",
      cell: (c) => [c.row.original.lastStatusCode ? `HTTP ${c.row.original.lastStatusCode}` : "", c.row.original.lastError].filter(Boolean).join(": ") || "—",
    }),
    col.accessor("lastAttemptTime", { header: "Last attempt", cell: (c) => <Time ts={c.getValue()} /> }),
    col.accessor("nextAttemptTime", { header: "Next attempt", cell: (c) => <Time ts={c.getValue()} /> }),
    ...(can.administer
      ? [
          col.display({
            id: "actions",
            header: "Actions",
            cell: (c) =>
              c.row.original.status === DeliveryStatus.FAILED ? (
                <ActionButton method={AlertService.method.redeliverAlert} input={{ alertId: c.row.original.alertId, channelId: c.row.original.channelId }} label="Redeliver" />
              ) : null,
          }),
        ]
      : []),
  ];
  return (
    <section aria-label="Deliveries">
      <div className="filters">
        <Select
          label="Status"
          value={status}
          onChange={(v) => set({ status: v, ...pager.reset })}
          options={[["", "Every status"], ...[DeliveryStatus.PENDING, DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.DIGESTED].map((s) => [DeliveryStatus[s].toLowerCase(), enumLabel(DeliveryStatus, s)] as [string, string])]}
        />
      </div>
      <QueryView query={list} what="deliveries">
        {(d) => (
          <>
            <DataTable caption="Deliveries, newest first" columns={columns} rows={d.deliveries} rowId={(x) => x.id} empty={status ? `No ${status} deliveries.` : "No deliveries yet."} />
            <Pager label="Deliveries" number={pager.number} hasNext={d.nextPageToken !== ""} onNext={() => pager.next(d.nextPageToken)} onPrev={pager.prev} />
          </>
        )}
      </QueryView>
      {open ? <AttemptsDrawer d={open} channel={channels.name(open.channelId)} onClose={() => setOpen(null)} /> : null}
    </section>
  );
}

function AttemptsDrawer({ d, channel, onClose }: { d: Delivery; channel: string; onClose: () => void }) {
  return (
    <Drawer title={`Delivery to ${channel}`} onClose={onClose}>
      <dl className="facts">
        <dt>Status</dt>
        <dd>
          <Badge>{enumLabel(DeliveryStatus, d.status)}</Badge>
        </dd>
        <dt>Message id</dt>
        <dd>
          <code>{d.messageId}</code>
        </dd>
        <dt>Retries until</dt>
        <dd>
          <Time ts={d.retryUntil} />
        </dd>
        <dt>Workflow</dt>
        <dd>
          <TemporalLink workflowId={d.workflowId} />
        </dd>
      </dl>
      <ol className="attempts" aria-label="Attempts">
        {d.attempts.map((a) => (
          <li key={a.number}>
            #{a.number} <Badge>{enumLabel(AttemptOutcome, a.outcome)}</Badge> <Time ts={a.startTime} />
            {a.statusCode ? ` · HTTP ${a.statusCode}` : ""} · {count(a.latencyMs)} ms
            {a.error && a.error !== `HTTP ${a.statusCode}` ? ` · ${a.error}` : ""}
          </li>
        ))}
      </ol>
    </Drawer>
  );
}

function AlertList() {
  const [params, set] = useUrlState();
  const pager = usePager();
  const list = useQuery(AlertService.method.listAlerts, { pageSize: 50, pageToken: pager.token });
  const selected = params.get("alert") ?? "";
  const col = createColumnHelper<Alert>();
  const columns = [
    col.accessor("title", {
      header: "Alert",
      cell: (c) => (
        <button type="button" className="link" onClick={() => set({ alert: c.row.original.id }, { push: true })}>
          {c.getValue()}
        </button>
      ),
    }),
    col.accessor("kind", { header: "Kind", cell: (c) => enumLabel(AlertKind, c.getValue()) }),
    col.accessor("severity", { header: "Severity", cell: (c) => <Badge>{enumLabel(AlertSeverity, c.getValue())}</Badge> }),
    col.display({ id: "about", header: "About", cell: (c) => (c.row.original.entity ? <EntityLink type={c.row.original.entity.type} id={c.row.original.entity.id} /> : "—") }),
    col.accessor("createTime", { header: "Raised", cell: (c) => <Time ts={c.getValue()} /> }),
  ];
  return (
    <section aria-label="Alerts">
      <QueryView query={list} what="alerts">
        {(d) => (
          <>
            <DataTable caption="Alerts, newest first" columns={columns} rows={d.alerts} rowId={(a) => a.id} selected={selected} empty="No alerts yet." />
            <Pager label="Alerts" number={pager.number} hasNext={d.nextPageToken !== ""} onNext={() => pager.next(d.nextPageToken)} onPrev={pager.prev} />
          </>
        )}
      </QueryView>
      {selected ? <AlertDrawer id={selected} onClose={() => set({ alert: null }, { push: true })} /> : null}
    </section>
  );
}

function AlertDrawer({ id, onClose }: { id: string; onClose: () => void }) {
  const q = useQuery(AlertService.method.getAlert, { id });
  const channels = useChannels();
  return (
    <Drawer title={q.data?.alert?.title ?? `Alert ${id}`} onClose={onClose}>
      <QueryView query={q} what="the alert">
        {({ alert, deliveries }) => (
          <>
            <p>{alert?.body}</p>
            <h3>Deliveries</h3>
            {deliveries.length === 0 ? (
              <p className="muted">None.</p>
            ) : (
              <ul>
                {deliveries.map((d) => (
                  <li key={d.id}>
                    {channels.name(d.channelId)}: <Badge>{enumLabel(DeliveryStatus, d.status)}</Badge> after {count(d.attemptCount)} attempt{d.attemptCount === 1 ? "" : "s"}
                  </li>
                ))}
              </ul>
            )}
          </>
        )}
      </QueryView>
    </Drawer>
  );
}
