import { useQuery } from "@connectrpc/connect-query";
import { useState } from "react";
import { PolicyService, ProposalStatus, type PolicyMatch, type PolicyProposal } from "../gen/governor/v1/policies_pb";
import { enumLabel } from "../lib/format";
import { useNames } from "../lib/names";
import { useCan } from "../lib/session";
import { ActionButton } from "./Action";
import { Badge, EntityLink } from "./Bits";
import { QueryView } from "./State";
import { Time } from "./Time";

export function matchText(m: PolicyMatch | undefined, name: (id: string) => string): string {
  if (!m) return "any run";
  const parts = [
    m.projectId && `project ${name(m.projectId)}`,
    m.agentId && `agent ${name(m.agentId)}`,
    m.model && `model ${m.model}`,
    m.feature && `feature ${m.feature}`,
    ...Object.entries(m.tags).map(([k, v]) => `tag ${k}=${v}`),
  ].filter(Boolean);
  return parts.length ? parts.join(", ") : "any run";
}

export function approvals(p: PolicyProposal): number {
  return p.decisions.filter((d) => d.decision === "approve").length;
}

export function ProposalById({ id, level = 3 }: { id: string; level?: 2 | 3 }) {
  const q = useQuery(PolicyService.method.getProposal, { id });
  return <QueryView query={q} what="the proposal">{(r) => (r.proposal ? <ProposalPanel p={r.proposal} level={level} /> : null)}</QueryView>;
}

/** A policy proposal with its quorum so far, and approve / reject for approvers. */
export function ProposalPanel({ p, level = 3 }: { p: PolicyProposal; level?: 2 | 3 }) {
  const can = useCan();
  const names = useNames();
  const [comment, setComment] = useState("");
  const pending = p.status === ProposalStatus.PENDING;
  const H = level === 2 ? "h2" : "h3";
  return (
    <section className="proposal card" aria-label={`Proposal ${p.title}`}>
      <H className="proposal-title">
        {p.title} <Badge>{enumLabel(ProposalStatus, p.status)}</Badge>
      </H>
      <p>{p.rationale}</p>
      <dl className="facts">
        <dt>Blocks</dt>
        <dd>{matchText(p.match, names.name)}</dd>
        {p.errorSignature ? (
          <>
            <dt>Failure</dt>
            <dd>
              <code>{p.errorSignature}</code>
            </dd>
          </>
        ) : null}
        <dt>Quorum</dt>
        <dd data-testid="quorum">
          {approvals(p)} of {p.requiredApprovals} approval{p.requiredApprovals === 1 ? "" : "s"}
        </dd>
        <dt>Proposed</dt>
        <dd>
          <Time ts={p.createTime} />
        </dd>
        {pending ? (
          <>
            <dt>Expires</dt>
            <dd>
              <Time ts={p.expireTime} />
            </dd>
          </>
        ) : (
          <>
            <dt>Decided</dt>
            <dd>
              <Time ts={p.decideTime} />
            </dd>
          </>
        )}
        {p.policyRuleId ? (
          <>
            <dt>Rule</dt>
            <dd>
              <EntityLink type="policy_rule" id={p.policyRuleId} />
            </dd>
          </>
        ) : null}
        <dt>Incident</dt>
        <dd>
          <EntityLink type="incident" id={p.incidentId} />
        </dd>
      </dl>
      {p.decisions.length ? (
        <ul className="decisions" aria-label="Decisions">
          {p.decisions.map((d, i) => (
            <li key={i}>
              <strong>{d.decision === "approve" ? "Approved" : "Rejected"}</strong> by{" "}
              {d.operator ? `operator ${d.operator} (Temporal)` : names.name(d.userId)} · <Time ts={d.decideTime} />
              {d.comment ? <> · “{d.comment}”</> : null}
            </li>
          ))}
        </ul>
      ) : null}
      {pending && can.approve ? (
        <div className="decide">
          <div className="field">
            <label htmlFor={`comment-${p.id}`}>Comment (optional)</label>
            <input id={`comment-${p.id}`} value={comment} onChange={(e) => setComment(e.target.value)} />
          </div>
          <ActionButton method={PolicyService.method.approveProposal} input={{ id: p.id, comment }} label="Approve" confirm="Approve this proposal?" />
          <ActionButton method={PolicyService.method.rejectProposal} input={{ id: p.id, comment }} label="Reject" confirm="Reject this proposal?" danger />
        </div>
      ) : null}
    </section>
  );
}
