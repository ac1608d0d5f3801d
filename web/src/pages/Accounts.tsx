import { useQuery } from "@connectrpc/connect-query";
import { createColumnHelper } from "@tanstack/react-table";
import { useState, type FormEvent } from "react";
import { ActionButton, ActionError, useAction } from "../components/Action";
import { Badge, PageHeader, Tabs } from "../components/Bits";
import { Select, TextInput } from "../components/Form";
import { Modal } from "../components/Overlay";
import { QueryView } from "../components/State";
import { DataTable } from "../components/Table";
import { Time, ZoneNote } from "../components/Time";
import { AccountService, type Agent, type Project, type User } from "../gen/governor/v1/account_pb";
import { Role } from "../gen/governor/v1/common_pb";
import { enumLabel } from "../lib/format";
import { useNames } from "../lib/names";
import { useCan, useIdentity } from "../lib/session";
import { useUrlState } from "../lib/url";

const ROLES: [string, string][] = [
  [String(Role.ADMIN), "admin"],
  [String(Role.APPROVER), "approver"],
  [String(Role.VIEWER), "viewer"],
];

export default function Accounts() {
  const [params] = useUrlState();
  const tab = params.get("tab") ?? "organization";
  return (
    <>
      <PageHeader title="Accounts" question="Who is here, and how is the organization set up?">
        <ZoneNote />
      </PageHeader>
      <Tabs
        label="Account sections"
        current={tab}
        tabs={[
          ["organization", "Organization"],
          ["projects", "Projects"],
          ["agents", "Agents"],
          ["users", "Users and roles"],
        ]}
      />
      {tab === "organization" ? <Organization /> : tab === "projects" ? <Projects /> : tab === "agents" ? <Agents /> : <Users />}
    </>
  );
}

const zones = (() => {
  try {
    return (Intl as unknown as { supportedValuesOf(k: string): string[] }).supportedValuesOf("timeZone");
  } catch {
    return [];
  }
})();

function Organization() {
  const can = useCan();
  const org = useQuery(AccountService.method.getOrganization, {});
  return (
    <QueryView query={org} what="the organization">
      {({ organization: o }) => (o ? <OrgForm key={o.updateTime?.seconds.toString()} name={o.name} zone={o.timeZone} id={o.id} editable={can.administer} created={o.createTime} /> : null)}
    </QueryView>
  );
}

function OrgForm({ id, name: n0, zone: z0, editable, created }: { id: string; name: string; zone: string; editable: boolean; created: Parameters<typeof Time>[0]["ts"] }) {
  const [name, setName] = useState(n0);
  const [zone, setZone] = useState(z0);
  const save = useAction(AccountService.method.updateOrganization);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    save.mutate({ name: name !== n0 ? name : undefined, timeZone: zone !== z0 ? zone : undefined });
  };
  if (!editable) {
    return (
      <dl className="facts card">
        <dt>Name</dt>
        <dd>{n0}</dd>
        <dt>Time zone</dt>
        <dd>{z0}</dd>
        <dt>Id</dt>
        <dd>
          <code>{id}</code>
        </dd>
        <dt>Created</dt>
        <dd>
          <Time ts={created} />
        </dd>
      </dl>
    );
  }
  return (
    <form className="stack card" onSubmit={submit} aria-label="Organization settings">
      <TextInput label="Name" value={name} onChange={setName} required />
      <div className="field">
        <label htmlFor="org-zone">Time zone</label>
        <input id="org-zone" list="zones" value={zone} onChange={(e) => setZone(e.target.value)} required />
        <datalist id="zones">
          {zones.map((z) => (
            <option key={z} value={z} />
          ))}
        </datalist>
        <small className="hint">Days, weeks and months of limits, and every time in this console, follow it.</small>
      </div>
      <button type="submit" className="primary" disabled={save.isPending || (name === n0 && zone === z0)}>
        Save organization
      </button>
      <ActionError error={save.error} />
      {save.isSuccess ? <p role="status">Saved.</p> : null}
    </form>
  );
}

function Projects() {
  const can = useCan();
  const list = useQuery(AccountService.method.listProjects, { pageSize: 500 });
  const [editing, setEditing] = useState<Project | "new" | null>(null);
  const col = createColumnHelper<Project>();
  const columns = [
    col.accessor("name", { header: "Project", cell: (c) => <strong>{c.getValue()}</strong> }),
    col.accessor("description", { header: "Description" }),
    col.accessor("id", { header: "Id", cell: (c) => <code>{c.getValue()}</code> }),
    col.accessor("createTime", { header: "Created", cell: (c) => <Time ts={c.getValue()} /> }),
    ...(can.administer
      ? [
          col.display({
            id: "actions",
            header: "Actions",
            cell: (c) => (
              <button type="button" onClick={() => setEditing(c.row.original)}>
                Edit
              </button>
            ),
          }),
        ]
      : []),
  ];
  return (
    <section aria-label="Projects">
      {can.administer ? (
        <div className="toolbar">
          <button type="button" className="primary" onClick={() => setEditing("new")}>
            Create project
          </button>
        </div>
      ) : null}
      <QueryView query={list} what="projects">
        {(d) => <DataTable caption="Projects" columns={columns} rows={d.projects} rowId={(p) => p.id} empty="No projects." />}
      </QueryView>
      {editing ? <ProjectForm p={editing === "new" ? undefined : editing} onClose={() => setEditing(null)} /> : null}
    </section>
  );
}

function ProjectForm({ p, onClose }: { p?: Project; onClose: () => void }) {
  const [name, setName] = useState(p?.name ?? "");
  const [description, setDescription] = useState(p?.description ?? "");
  const create = useAction(AccountService.method.createProject, onClose);
  const update = useAction(AccountService.method.updateProject, onClose);
  return (
    <Modal title={p ? `Edit ${p.name}` : "Create a project"} onClose={onClose}>
      <form
        className="stack"
        onSubmit={(e) => {
          e.preventDefault();
          if (p) update.mutate({ id: p.id, name, description });
          else create.mutate({ name, description });
        }}
      >
        <TextInput label="Name" value={name} onChange={setName} required />
        <TextInput label="Description" value={description} onChange={setDescription} />
        <button type="submit" className="primary">
          {p ? "Save project" : "Create project"}
        </button>
        <ActionError error={create.error ?? update.error} />
      </form>
    </Modal>
  );
}

function Agents() {
  const can = useCan();
  const names = useNames();
  const list = useQuery(AccountService.method.listAgents, { pageSize: 500 });
  const [creating, setCreating] = useState(false);
  const col = createColumnHelper<Agent>();
  const columns = [
    col.accessor("name", { header: "Agent", cell: (c) => <strong>{c.getValue()}</strong> }),
    col.accessor("projectId", { header: "Project", cell: (c) => names.name(c.getValue()) }),
    col.accessor("description", { header: "Description" }),
    col.accessor("id", { header: "Id", cell: (c) => <code>{c.getValue()}</code> }),
    col.accessor("createTime", { header: "Created", cell: (c) => <Time ts={c.getValue()} /> }),
  ];
  return (
    <section aria-label="Agents">
      {can.administer ? (
        <div className="toolbar">
          <button type="button" className="primary" onClick={() => setCreating(true)} disabled={names.projects.length === 0}>
            Create agent
          </button>
        </div>
      ) : null}
      <QueryView query={list} what="agents">
        {(d) => <DataTable caption="Agents" columns={columns} rows={d.agents} rowId={(a) => a.id} empty="No agents." />}
      </QueryView>
      {creating ? <CreateAgent onClose={() => setCreating(false)} /> : null}
    </section>
  );
}

function CreateAgent({ onClose }: { onClose: () => void }) {
  const names = useNames();
  const [projectId, setProject] = useState(names.projects[0]?.id ?? "");
  const [name, setName] = useState("");
  const create = useAction(AccountService.method.createAgent, onClose);
  return (
    <Modal title="Create an agent" onClose={onClose}>
      <form
        className="stack"
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate({ projectId, name });
        }}
      >
        <Select label="Project" value={projectId} onChange={setProject} options={names.projects.map((p) => [p.id, p.name] as [string, string])} />
        <TextInput label="Name" value={name} onChange={setName} required />
        <button type="submit" className="primary">
          Create agent
        </button>
        <ActionError error={create.error} />
      </form>
    </Modal>
  );
}

function Users() {
  const can = useCan();
  const me = useIdentity();
  const list = useQuery(AccountService.method.listUsers, { pageSize: 500 });
  const [creating, setCreating] = useState(false);
  const col = createColumnHelper<User>();
  const columns = [
    col.accessor("email", { header: "User", cell: (c) => <strong>{c.getValue()}</strong> }),
    col.accessor("displayName", { header: "Name" }),
    col.accessor("role", {
      header: "Role",
      cell: (c) => (can.administer && c.row.original.id !== me.user?.id ? <RoleSelect u={c.row.original} /> : <Badge>{enumLabel(Role, c.getValue())}</Badge>),
    }),
    col.accessor("deactivated", { header: "State", cell: (c) => <Badge>{c.getValue() ? "disabled" : "active"}</Badge> }),
    col.accessor("createTime", { header: "Since", cell: (c) => <Time ts={c.getValue()} /> }),
    ...(can.administer
      ? [
          col.display({
            id: "actions",
            header: "Actions",
            cell: (c) =>
              c.row.original.id === me.user?.id ? (
                <span className="muted">you</span>
              ) : (
                <ActionButton
                  method={AccountService.method.updateUser}
                  input={{ id: c.row.original.id, deactivated: !c.row.original.deactivated }}
                  label={c.row.original.deactivated ? "Reactivate" : "Deactivate"}
                  confirm={c.row.original.deactivated ? undefined : `Deactivate ${c.row.original.email}? Their keys stop working at once.`}
                  danger={!c.row.original.deactivated}
                />
              ),
          }),
        ]
      : []),
  ];
  return (
    <section aria-label="Users">
      {can.administer ? (
        <div className="toolbar">
          <button type="button" className="primary" onClick={() => setCreating(true)}>
            Create user
          </button>
        </div>
      ) : null}
      <QueryView query={list} what="users">
        {(d) => <DataTable caption="Users" columns={columns} rows={d.users} rowId={(u) => u.id} empty="No users." />}
      </QueryView>
      {creating ? <CreateUser onClose={() => setCreating(false)} /> : null}
    </section>
  );
}

function RoleSelect({ u }: { u: User }) {
  const save = useAction(AccountService.method.updateUser);
  return (
    <span>
      <label className="visually-hidden" htmlFor={`role-${u.id}`}>
        Role of {u.email}
      </label>
      <select id={`role-${u.id}`} value={String(u.role)} disabled={save.isPending} onChange={(e) => save.mutate({ id: u.id, role: Number(e.target.value) })}>
        {ROLES.map(([v, l]) => (
          <option key={v} value={v}>
            {l}
          </option>
        ))}
      </select>
      <ActionError error={save.error} />
    </span>
  );
}

function CreateUser({ onClose }: { onClose: () => void }) {
  const [email, setEmail] = useState("");
  const [displayName, setName] = useState("");
  const [role, setRole] = useState(String(Role.VIEWER));
  const create = useAction(AccountService.method.createUser, onClose);
  return (
    <Modal title="Create a user" onClose={onClose}>
      <form
        className="stack"
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate({ email, displayName, role: Number(role) });
        }}
      >
        <TextInput label="Email" value={email} onChange={setEmail} type="email" required />
        <TextInput label="Name" value={displayName} onChange={setName} />
        <Select label="Role" value={role} onChange={setRole} options={ROLES} />
        <p className="muted small">A user signs in with a user key: create one under Connectivity.</p>
        <button type="submit" className="primary">
          Create user
        </button>
        <ActionError error={create.error} />
      </form>
    </Modal>
  );
}
