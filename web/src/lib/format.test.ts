import { describe, expect, it } from "vitest";
import { dateTime, enumLabel, instantToZoned, money, parseDollars, zonedToInstant } from "./format";

describe("money", () => {
  it("shows cents when exact and every micro-dollar when not", () => {
    expect(money(0n)).toBe("$0.00");
    expect(money(1_250_000n)).toBe("$1.25");
    expect(money(1_234_567_890_000n)).toBe("$1,234,567.89");
    expect(money(4_200n)).toBe("$0.0042");
    expect(money(-500_000n)).toBe("-$0.50");
  });
  it("parses what a person types", () => {
    expect(parseDollars("12.5")).toBe(12_500_000n);
    expect(parseDollars("$1,000")).toBe(1_000_000_000n);
    expect(parseDollars("0.000001")).toBe(1n);
    expect(parseDollars("1.0000001")).toBeUndefined();
    expect(parseDollars("-3")).toBeUndefined();
    expect(parseDollars("abc")).toBeUndefined();
  });
});

describe("time zones", () => {
  const instant = new Date("2026-07-01T12:00:00Z");
  it("names the zone", () => {
    expect(dateTime(instant, "America/New_York")).toBe("2026-07-01 08:00:00 EDT");
    expect(dateTime(instant, "UTC")).toBe("2026-07-01 12:00:00 UTC");
  });
  it("turns wall-clock times into instants and back, across DST", () => {
    expect(zonedToInstant("2026-07-01T08:00", "America/New_York")?.toISOString()).toBe("2026-07-01T12:00:00.000Z");
    expect(zonedToInstant("2026-01-15T08:00", "America/New_York")?.toISOString()).toBe("2026-01-15T13:00:00.000Z");
    expect(zonedToInstant("2026-03-29T03:30", "Europe/Berlin")?.toISOString()).toBe("2026-03-29T01:30:00.000Z");
    expect(instantToZoned(instant, "Asia/Kolkata")).toBe("2026-07-01T17:30");
    expect(zonedToInstant("yesterday", "UTC")).toBeUndefined();
  });
});

describe("enum labels", () => {
  enum S {
    UNSPECIFIED = 0,
    RATE_LIMIT = 1,
  }
  it("reads as words", () => {
    expect(enumLabel(S, S.RATE_LIMIT)).toBe("rate limit");
    expect(enumLabel(S, S.UNSPECIFIED)).toBe("—");
  });
});
