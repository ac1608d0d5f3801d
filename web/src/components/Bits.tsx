import { useState, type ReactNode } from "react";
import { Link, useLocation } from "wouter";
import { applyPatch } from "../lib/url";

/** Where an entity of any domain is shown, so every id on screen can be followed. */
export function entityHref(type: string, id: string): string | undefined {
  switch (type) {
    case "run":
      return `/activity?run=${encodeURIComponent(id)}`;
    case "incident":
      return `/incidents?incident=${encodeURIComponent(id)}`;
    case "proposal":
    case "policy_proposal":
      return `/policies?tab=proposals&proposal=${encodeURIComponent(id)}`;
    case "policy_rule":
      return `/policies?tab=rules&rule=${encodeURIComponent(id)}`;
    case "limit":
      return `/policies?tab=limits&limit=${encodeURIComponent(id)}`;
    case "api_key":
      return `/connectivity?key=${encodeURIComponent(id)}`;
    case "alert":
      return `/alerts?tab=alerts&alert=${encodeURIComponent(id)}`;
    case "channel":
    case "alert_channel":
      return `/alerts?tab=channels`;
    case "route":
    case "alert_route":
      return `/alerts?tab=routes`;
    case "project":
      return `/accounts?tab=projects`;
    case "agent":
      return `/accounts?tab=agents`;
    case "user":
      return `/accounts?tab=users`;
    case "organization":
      return `/accounts`;
    case "anomaly":
      return undefined;
  }
  return undefined;
}

export function EntityLink({ type, id, children }: { type: string; id: string; children?: ReactNode }) {
  if (!id) return <span className="muted">—</span>;
  const href = entityHref(type, id);
  const text = children ?? <code>{id}</code>;
  return href ? <Link href={href}>{text}</Link> : <>{text}</>;
}

const tones: Record<string, string> = {
  failed: "bad",
  blocked: "bad",
  critical: "bad",
  high: "warn",
  expired: "muted",
  cancelled: "muted",
  open: "warn",
  pending: "warn",
  acknowledged: "info",
  succeeded: "good",
  delivered: "good",
  resolved: "good",
  approved: "good",
  active: "good",
  admitted: "info",
  frozen: "warn",
  revoked: "muted",
  rejected: "muted",
  disabled: "muted",
  applies: "good",
  "does not apply": "muted",
};

export function Badge({ children }: { children: string }) {
  return <span className={`badge ${tones[children] ?? ""}`}>{children}</span>;
}

/** Section links kept in the URL (?tab=…), so a link opens the same section. */
export function Tabs({ tabs, current, label }: { tabs: [string, string][]; current: string; label: string }) {
  const [path] = useLocation();
  return (
    <nav className="tabs" aria-label={label}>
      {tabs.map(([key, text]) => (
        // A new section starts without the previous one's selection and pages.
        <Link key={key} href={path + applyPatch("", { tab: key })} aria-current={current === key ? "page" : undefined}>
          {text}
        </Link>
      ))}
    </nav>
  );
}

/** A secret shown once: readable, selectable and copyable, never stored. */
export function Secret({ value, what }: { value: string; what: string }) {
  const [copied, setCopied] = useState<"" | "copied" | "failed">("");
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value);
      setCopied("copied");
    } catch {
      setCopied("failed");
    }
  };
  return (
    <div className="secret">
      <p>
        <strong>Copy the {what} now.</strong> It is shown this once; Governor keeps only its hash.
      </p>
      <div className="secret-row">
        <label className="visually-hidden" htmlFor="new-secret">
          New {what}
        </label>
        <input id="new-secret" className="secret-value" readOnly value={value} onFocus={(e) => e.target.select()} spellCheck={false} />
        <button type="button" className="primary" onClick={copy}>
          Copy {what}
        </button>
      </div>
      <p role="status" className="muted">
        {copied === "copied" ? "Copied to the clipboard." : copied === "failed" ? "The browser refused the clipboard: select the text and copy it." : ""}
      </p>
    </div>
  );
}

export function Stat({ label, value, hint }: { label: string; value: ReactNode; hint?: string }) {
  return (
    <div className="stat">
      <div className="stat-label">{label}</div>
      <div className="stat-value">{value}</div>
      {hint ? <div className="stat-hint">{hint}</div> : null}
    </div>
  );
}

export function PageHeader({ title, question, children }: { title: string; question: string; children?: ReactNode }) {
  return (
    <header className="page-head">
      <div>
        <h1>{title}</h1>
        <p className="question">{question}</p>
      </div>
      <div className="page-actions">{children}</div>
    </header>
  );
}
