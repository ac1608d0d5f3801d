import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { dateTime, tsDate } from "../lib/format";
import { useZone } from "../lib/session";

/** An instant in the organization's time zone, the zone named; the exact instant on hover. */
export function Time({ ts }: { ts: Timestamp | undefined }) {
  const zone = useZone();
  const d = tsDate(ts);
  if (!d) return <span className="muted">—</span>;
  return (
    <time dateTime={d.toISOString()} title={d.toISOString()}>
      {dateTime(d, zone)}
    </time>
  );
}

export function ZoneNote() {
  const zone = useZone();
  return <p className="zone-note">Times in {zone}</p>;
}
