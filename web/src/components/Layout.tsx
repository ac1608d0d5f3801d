import { useMutation } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import type { ReactNode } from "react";
import { Link, useLocation } from "wouter";
import { Role } from "../gen/governor/v1/common_pb";
import { SessionService } from "../gen/governor/v1/session_pb";
import { enumLabel } from "../lib/format";
import { useIdentity } from "../lib/session";
import { ActionError } from "./Action";
import { Bell } from "./Bell";

const sections: [string, string][] = [
  ["/overview", "Overview"],
  ["/activity", "Activity"],
  ["/incidents", "Incidents"],
  ["/policies", "Policies"],
  ["/logs", "Logs"],
  ["/analytics", "Analytics"],
  ["/connectivity", "Connectivity"],
  ["/alerts", "Alerts"],
  ["/accounts", "Accounts"],
];

export function Layout({ children }: { children: ReactNode }) {
  const id = useIdentity();
  const [path] = useLocation();
  const qc = useQueryClient();
  const signOut = useMutation(SessionService.method.signOut, { onSuccess: () => qc.resetQueries() });
  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link href="/activity" className="brand">
          Governor
        </Link>
        <span className="org" title={`Organization ${id.organization?.id}`}>
          {id.organization?.name} <span className="muted">· {id.organization?.timeZone}</span>
        </span>
        <span className="spacer" />
        <Bell />
        <span className="who">
          {id.user?.email ?? id.apiKeyName} <span className="badge info">{enumLabel(Role, id.role)}</span>
        </span>
        <button type="button" className="ghost" onClick={() => signOut.mutate({})} disabled={signOut.isPending}>
          Sign out
        </button>
        <ActionError error={signOut.error} />
      </header>
      <nav className="sidebar" aria-label="Main">
        <ul>
          {sections.map(([href, label]) => (
            <li key={href}>
              <Link href={href} aria-current={path === href ? "page" : undefined}>
                {label}
              </Link>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main" className="page">
        {children}
      </main>
    </div>
  );
}
