import { useQuery } from "@connectrpc/connect-query";
import { useNames } from "../lib/names";
import { TimelineService } from "../gen/governor/v1/timeline_pb";
import { EntityLink } from "./Bits";
import { QueryView } from "./State";
import { Time } from "./Time";

/** The domain events about one entity (or related to it), oldest first. */
export function TimelineList({ entity }: { entity: { type: string; id: string } }) {
  const events = useQuery(TimelineService.method.listEvents, { filter: { entity }, pageSize: 100 });
  const names = useNames();
  return (
    <QueryView query={events} what="events">
      {({ events: list }) =>
        list.length === 0 ? (
          <p className="muted">No events.</p>
        ) : (
          <ol className="timeline" aria-label={`Events of ${entity.type} ${entity.id}`}>
            {list.map((e) => (
              <li key={e.id}>
                <Time ts={e.occurTime} /> <code>{e.type}</code> {e.summary}{" "}
                {e.related
                  .filter((r) => r.id !== entity.id)
                  .map((r) => (
                    <span key={r.type + r.id} className="related">
                      {r.type.replace(/_/g, " ")}{" "}
                      <EntityLink type={r.type} id={r.id}>
                        {names.name(r.id) !== r.id ? names.name(r.id) : <code>{r.id}</code>}
                      </EntityLink>
                    </span>
                  ))}
              </li>
            ))}
          </ol>
        )
      }
    </QueryView>
  );
}
