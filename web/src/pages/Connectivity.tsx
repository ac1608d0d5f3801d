import { useQuery } from "@connectrpc/connect-query";
import { createColumnHelper } from "@tanstack/react-table";
import { lazy, Suspense, useState, type FormEvent } from "react";
import { ActionButton, ActionError, useAction } from "../components/Action";
import { Badge, PageHeader, Secret, Stat } from "../components/Bits";
import { Select, TextInput } from "../components/Form";
import { Modal } from "../components/Overlay";
import { Empty, Loading, QueryView } from "../components/State";
import { DataTable } from "../components/Table";
import { Time, ZoneNote } from "../components/Time";
import { Role } from "../gen/governor/v1/common_pb";
import { ApiKeyKind, ApiKeyService, ApiKeyStatus, type ApiKey } from "../gen/governor/v1/apikey_pb";
import { count, enumLabel, money } from "../lib/format";
import { useNames } from "../lib/names";
import { useCan, useZone } from "../lib/session";
import { useUrlState } from "../lib/url";

const SpendChart = lazy(() => import("../components/SpendChart"));

export default function Connectivity() {
  const names = useNames();
  const can = useCan();
  const zone = useZone();
  const [params, set] = useUrlState();
  const status = params.get("status") ?? "";
  const [creating, setCreating] = useState(false);
  const [rotating, setRotating] = useState<ApiKey | null>(null);
  const [secret, setSecret] = useState<{ key: ApiKey; secret: string } | null>(null);
  const keys = useQuery(ApiKeyService.method.listApiKeys, {
    pageSize: 500,
    status: status ? ApiKeyStatus[status.toUpperCase() as keyof typeof ApiKeyStatus] : ApiKeyStatus.UNSPECIFIED,
  });
  const col = createColumnHelper<ApiKey>();
  const columns = [
    col.accessor("name", { header: "Key", cell: (c) => <strong>{c.getValue()}</strong> }),
    col.accessor("prefix", { header: "Starts with", cell: (c) => <code>{c.getValue()}</code> }),
    col.accessor("kind", { header: "Kind", cell: (c) => enumLabel(ApiKeyKind, c.getValue()) }),
    col.display({
      id: "owner",
      header: "For",
      cell: (c) => {
        const k = c.row.original;
        if (k.kind === ApiKeyKind.USER) return `${names.name(k.userId)} (${enumLabel(Role, k.role)})`;
        return k.agentId ? `agent ${names.name(k.agentId)}` : k.projectId ? `project ${names.name(k.projectId)}` : "any agent";
      },
    }),
    col.accessor("status", { header: "Status", cell: (c) => <Badge>{enumLabel(ApiKeyStatus, c.getValue())}</Badge> }),
    col.accessor("spendThisMonthMicros", {
      header: "Spend this month",
      meta: { className: "num" },
      cell: (c) => <span data-testid={`spend-${c.row.original.id}`}>{money(c.getValue())}</span>,
    }),
    col.accessor("lastUsedTime", { header: "Last used", cell: (c) => <Time ts={c.getValue()} /> }),
    ...(can.administer
      ? [
          col.display({
            id: "actions",
            header: "Actions",
            cell: (c) => {
              const k = c.row.original;
              if (k.status === ApiKeyStatus.REVOKED) return <span className="muted">revoked</span>;
              return (
                <span className="row-actions">
                  {k.status === ApiKeyStatus.FROZEN ? (
                    <ActionButton method={ApiKeyService.method.unfreezeApiKey} input={{ id: k.id }} label="Unfreeze" />
                  ) : (
                    <ActionButton method={ApiKeyService.method.freezeApiKey} input={{ id: k.id }} label="Freeze" confirm={`Freeze ${k.name}?`} />
                  )}
                  <button type="button" onClick={() => setRotating(k)}>
                    Rotate
                  </button>
                  <ActionButton method={ApiKeyService.method.revokeApiKey} input={{ id: k.id }} label="Revoke" confirm={`Revoke ${k.name} for good?`} danger />
                </span>
              );
            },
          }),
        ]
      : []),
  ];
  return (
    <>
      <PageHeader title="Connectivity" question="Who can reach Governor, and what did each key spend?">
        <ZoneNote />
      </PageHeader>
      <div className="filters">
        <Select
          label="Status"
          value={status}
          onChange={(v) => set({ status: v })}
          options={[
            ["", "Every status"],
            ["active", "Active"],
            ["frozen", "Frozen"],
            ["revoked", "Revoked"],
          ]}
        />
        {can.administer ? (
          <div className="toolbar">
            <button type="button" className="primary" onClick={() => setCreating(true)}>
              Create key
            </button>
          </div>
        ) : null}
      </div>
      <QueryView query={keys} what="API keys">
        {(d) => {
          const total = d.apiKeys.reduce((s, k) => s + k.spendThisMonthMicros, 0n);
          const spenders = d.apiKeys.filter((k) => k.spendThisMonthMicros > 0n).sort((a, b) => Number(b.spendThisMonthMicros - a.spendThisMonthMicros));
          return (
            <>
              <section className="stats" aria-label="Spend">
                <Stat label="Spend this month, every key" value={<span data-testid="keys-total">{money(total)}</span>} hint={`calendar month in ${zone}`} />
                <Stat label="Keys" value={count(d.apiKeys.length)} />
              </section>
              <DataTable
                caption="API keys"
                columns={columns}
                rows={d.apiKeys}
                rowId={(k) => k.id}
                selected={params.get("key") ?? undefined}
                empty={<Empty title={status ? `No ${status} keys` : "No API keys"} />}
              />
              {spenders.length ? (
                <Suspense fallback={<Loading what="the chart" />}>
                  <SpendChart title="Spend this month per key" rows={spenders.map((k) => ({ id: k.id, label: k.name, micros: k.spendThisMonthMicros }))} />
                </Suspense>
              ) : null}
            </>
          );
        }}
      </QueryView>
      <section className="card">
        <h2>Connect an agent</h2>
        <p>
          An agent asks before each run and reports when it ends, with an ingest key (<code>Authorization: Bearer gvk_…</code>), over Connect, gRPC or
          gRPC-Web:
        </p>
        <pre className="json">{`curl -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \\
  -d '{"agentId":"agt_…","model":"gpt-4o","estimate":{"costMicros":"500000"}}' \\
  ${window.location.origin}/governor.v1.RunService/AdmitRun
curl -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \\
  -d '{"runId":"run_…","status":"RUN_STATUS_SUCCEEDED","inputTokens":"1200","outputTokens":"300"}' \\
  ${window.location.origin}/governor.v1.RunService/CompleteRun`}</pre>
        <p className="muted small">OpenTelemetry ingestion of LLM calls arrives with the analytics API.</p>
      </section>
      {creating ? (
        <CreateKey
          onClose={() => setCreating(false)}
          onCreated={(key, s) => {
            setCreating(false);
            setSecret({ key, secret: s });
          }}
        />
      ) : null}
      {rotating ? (
        <RotateKey
          k={rotating}
          onClose={() => setRotating(null)}
          onRotated={(key, s) => {
            setRotating(null);
            setSecret({ key, secret: s });
          }}
        />
      ) : null}
      {secret ? (
        <Modal title={`Secret of ${secret.key.name}`} onClose={() => setSecret(null)}>
          <Secret value={secret.secret} what="secret" />
          <button type="button" onClick={() => setSecret(null)}>
            Done
          </button>
        </Modal>
      ) : null}
    </>
  );
}

function CreateKey({ onClose, onCreated }: { onClose: () => void; onCreated: (k: ApiKey, secret: string) => void }) {
  const names = useNames();
  const [name, setName] = useState("");
  const [kind, setKind] = useState(String(ApiKeyKind.INGEST));
  const [userId, setUser] = useState("");
  const [agentId, setAgent] = useState("");
  const [rpm, setRpm] = useState("0");
  const create = useAction(ApiKeyService.method.createApiKey, (r) => r.apiKey && onCreated(r.apiKey, r.secret));
  const user = Number(kind) === ApiKeyKind.USER;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate({
      name,
      kind: Number(kind),
      userId: user ? userId || names.users[0]?.id || "" : "",
      agentId: user ? "" : agentId,
      requestsPerMinute: Number(rpm) || 0,
    });
  };
  return (
    <Modal title="Create an API key" onClose={onClose}>
      <form onSubmit={submit} className="stack">
        <TextInput label="Name" value={name} onChange={setName} required />
        <Select
          label="Kind"
          value={kind}
          onChange={setKind}
          options={[
            [String(ApiKeyKind.INGEST), "Ingest (an agent)"],
            [String(ApiKeyKind.USER), "User (a person, with their role)"],
          ]}
        />
        {user ? (
          <Select label="User" value={userId || names.users[0]?.id || ""} onChange={setUser} options={names.users.map((u) => [u.id, `${u.email} (${enumLabel(Role, u.role)})`] as [string, string])} />
        ) : (
          <Select label="Agent" value={agentId} onChange={setAgent} options={[["", "Any agent of the organization"], ...names.agents.map((a) => [a.id, a.name] as [string, string])]} />
        )}
        <TextInput label="Requests per minute (0: unlimited)" value={rpm} onChange={setRpm} type="number" />
        <button type="submit" className="primary" disabled={create.isPending}>
          Create key
        </button>
        <ActionError error={create.error} />
      </form>
    </Modal>
  );
}

function RotateKey({ k, onClose, onRotated }: { k: ApiKey; onClose: () => void; onRotated: (k: ApiKey, secret: string) => void }) {
  const [grace, setGrace] = useState("3600");
  const rotate = useAction(ApiKeyService.method.rotateApiKey, (r) => r.apiKey && onRotated(r.apiKey, r.secret));
  return (
    <Modal title={`Rotate ${k.name}`} onClose={onClose}>
      <form
        className="stack"
        onSubmit={(e) => {
          e.preventDefault();
          rotate.mutate({ id: k.id, gracePeriod: { seconds: BigInt(grace) } });
        }}
      >
        <Select
          label="The old secret keeps working for"
          value={grace}
          onChange={setGrace}
          options={[
            ["0", "No time: it stops now"],
            ["3600", "1 hour"],
            ["86400", "24 hours"],
            ["604800", "7 days"],
          ]}
        />
        <p className="muted small">Console sessions opened with the old secret end when it does.</p>
        <button type="submit" className="primary" disabled={rotate.isPending}>
          Rotate key
        </button>
        <ActionError error={rotate.error} />
      </form>
    </Modal>
  );
}
