import type { Timestamp } from "@bufbuild/protobuf/wkt";

const MICROS = 1_000_000n;

/** Micro-dollars as dollars: cents when exact, every digit down to the micro-dollar when not. */
export function money(micros: bigint | number | undefined): string {
  const m = BigInt(micros ?? 0);
  const neg = m < 0n;
  const abs = neg ? -m : m;
  const whole = abs / MICROS;
  let frac = (abs % MICROS).toString().padStart(6, "0");
  frac = frac.endsWith("0000") ? frac.slice(0, 2) : frac.replace(/0+$/, "");
  const grouped = whole.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${neg ? "-" : ""}$${grouped}.${frac}`;
}

/** Dollars typed by a person ("12.5", "$1,000") as micro-dollars; undefined when not a number. */
export function parseDollars(text: string): bigint | undefined {
  const t = text.replace(/[$,\s]/g, "");
  const m = /^(\d{1,12})(?:\.(\d{0,6}))?$/.exec(t);
  if (!m) return undefined;
  return BigInt(m[1]) * MICROS + BigInt((m[2] ?? "").padEnd(6, "0"));
}

export function count(n: bigint | number | undefined): string {
  return BigInt(n ?? 0).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

export function tsDate(ts: Timestamp | undefined): Date | undefined {
  if (!ts) return undefined;
  return new Date(Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6));
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hourCycle: "h23",
      timeZoneName: "short",
    });
    formatters.set(timeZone, f);
  }
  return f;
}

function parts(d: Date, timeZone: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of formatter(timeZone).formatToParts(d)) out[p.type] = p.value;
  return out;
}

/** "2026-12-01 09:03:22 EST": the instant in the organization's zone, the zone named. */
export function dateTime(d: Date | undefined, timeZone: string): string {
  if (!d) return "—";
  const p = parts(d, timeZone);
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second} ${p.timeZoneName}`;
}

/** The zone's offset from UTC at an instant, in milliseconds. */
function offsetMs(d: Date, timeZone: string): number {
  const p = parts(d, timeZone);
  const asUTC = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour % 24, +p.minute, +p.second);
  return asUTC - Math.floor(d.getTime() / 1000) * 1000;
}

/** A wall-clock time ("2026-12-01T09:30") in a zone, as an instant. */
export function zonedToInstant(local: string, timeZone: string): Date | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(local);
  if (!m) return undefined;
  const guess = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] ?? 0));
  const first = offsetMs(new Date(guess), timeZone);
  let t = guess - first;
  const second = offsetMs(new Date(t), timeZone);
  if (second !== first) t = guess - second;
  return new Date(t);
}

/** An instant as the wall-clock value of an <input type="datetime-local"> in a zone. */
export function instantToZoned(d: Date, timeZone: string): string {
  const p = parts(d, timeZone);
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}`;
}

/** An enum value's name as words: RunStatus.FAILED → "failed". */
export function enumLabel(e: Record<number, string>, v: number | undefined): string {
  const name = v === undefined ? undefined : e[v];
  if (!name || name === "UNSPECIFIED") return "—";
  return name.toLowerCase().replace(/_/g, " ");
}

export const RANGES: Record<string, { label: string; ms: number }> = {
  "1h": { label: "Last hour", ms: 3_600_000 },
  "24h": { label: "Last 24 hours", ms: 86_400_000 },
  "7d": { label: "Last 7 days", ms: 7 * 86_400_000 },
  "30d": { label: "Last 30 days", ms: 30 * 86_400_000 },
};
