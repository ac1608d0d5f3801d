import { describe, expect, it } from "vitest";
import { applyPatch } from "./url";

describe("applyPatch", () => {
  it("sets, repeats and removes, in a stable order", () => {
    expect(applyPatch("?b=2&a=1", { c: "3" })).toBe("?a=1&b=2&c=3");
    expect(applyPatch("?status=failed", { status: ["failed", "blocked"] })).toBe("?status=failed&status=blocked");
    expect(applyPatch("?a=1&run=x", { run: null, a: "" })).toBe("");
  });
});
