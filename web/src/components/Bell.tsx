import { createClient } from "@connectrpc/connect";
import { useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { AlertService, AlertSeverity } from "../gen/governor/v1/alerts_pb";
import { transport } from "../lib/api";
import { enumLabel } from "../lib/format";
import { useAction, ActionError } from "./Action";
import { EntityLink } from "./Bits";
import { ErrorView } from "./State";
import { Time } from "./Time";

/**
 * The in-app notifications: the unread count, live. A WatchNotifications stream says when a
 * notification is committed; the list is then read again (so counts stay the server's).
 * The stream reconnects with a growing pause when it drops.
 */
export function Bell() {
  const qc = useQueryClient();
  const [open, setOpen] = useState(false);
  const [live, setLive] = useState(false);
  const list = useQuery(AlertService.method.listNotifications, { pageSize: 10 });
  const markAll = useAction(AlertService.method.markNotificationRead);

  useEffect(() => {
    const client = createClient(AlertService, transport);
    const abort = new AbortController();
    let delay = 1000;
    (async () => {
      while (!abort.signal.aborted) {
        try {
          setLive(true);
          for await (const _ of client.watchNotifications({}, { signal: abort.signal })) {
            void _;
            delay = 1000;
            await qc.invalidateQueries({ queryKey: ["connect-query", { methodName: "ListNotifications" }] });
          }
        } catch {
          // Dropped (server restart, network): reconnect below.
        }
        setLive(false);
        if (abort.signal.aborted) return;
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 30_000);
      }
    })();
    return () => abort.abort();
  }, [qc]);

  const unread = Number(list.data?.unreadCount ?? 0n);
  return (
    <div className="bell">
      <button type="button" aria-expanded={open} aria-controls="notifications" onClick={() => setOpen(!open)} className="ghost">
        <svg aria-hidden="true" width="14" height="14" viewBox="0 0 24 24" className="bell-icon">
          <path d="M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22Zm7-6V11a7 7 0 0 0-5.5-6.84V3a1.5 1.5 0 0 0-3 0v1.16A7 7 0 0 0 5 11v5l-2 2v1h18v-1Z" fill="currentColor" />
        </svg>{" "}
        Notifications{" "}
        <span className={`count ${unread ? "unread" : ""}`} data-testid="unread-count">
          {unread}
        </span>
        <span className="visually-hidden"> unread</span>
      </button>
      <span className="visually-hidden" role="status">
        {live ? "" : "Notifications are reconnecting"}
      </span>
      {open ? (
        <div id="notifications" className="popover" role="region" aria-label="Notifications">
          {list.error ? <ErrorView error={list.error} what="notifications" /> : null}
          <ul className="notes">
            {(list.data?.notifications ?? []).map((n) => (
              <li key={n.id} className={n.read ? "read" : "unread"}>
                <div>
                  <span className="badge">{enumLabel(AlertSeverity, n.severity)}</span> <strong>{n.title}</strong>
                </div>
                <div className="muted small">
                  <Time ts={n.createTime} /> {n.entity ? <EntityLink type={n.entity.type} id={n.entity.id} /> : null}
                </div>
              </li>
            ))}
            {list.data && list.data.notifications.length === 0 ? <li className="muted">No notifications yet.</li> : null}
          </ul>
          <button type="button" onClick={() => markAll.mutate({ all: true })} disabled={markAll.isPending || unread === 0}>
            Mark all read
          </button>
          <ActionError error={markAll.error} />
        </div>
      ) : null}
    </div>
  );
}
