// The console in a real browser (node:test + playwright-core driving Debian's Chromium,
// axe-core for accessibility). e2e/console_test.go starts the real server with the
// embedded bundle, seeds an organization through the API and runs this file with
// GOVERNOR_E2E_SEED pointing at what it seeded; it checks through the API afterwards what
// the browser did.
//
// Waits are for responses (waitForResponse / waitForRequest) and for conditions on the page,
// never fixed sleeps. Screenshots go to the seed's artifacts folder.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import axe from "axe-core";
import { chromium } from "playwright-core";

const seed = JSON.parse(readFileSync(process.env.GOVERNOR_E2E_SEED, "utf8"));
const base = seed.url;
const artifacts = seed.artifacts;
mkdirSync(artifacts, { recursive: true });
const stateDir = mkdtempSync(join(tmpdir(), "governor-console-"));
const state = (role) => join(stateDir, `${role}.json`);
const findings = { axe: [], timings: [], screenshots: [] };

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.GOVERNOR_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    // Playwright gives every launch a fresh --user-data-dir of its own. Without the
    // background-networking flags Chromium's own connections get refused here.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});
after(async () => {
  await browser?.close();
  writeFileSync(join(artifacts, "findings.json"), JSON.stringify(findings, null, 2));
  console.log(`screenshots (${findings.screenshots.length}) in ${artifacts}`);
  for (const t of findings.timings) console.log(`timing: ${t}`);
});

// --- helpers ------------------------------------------------------------------------------

const rpcPath = (method) => `/governor.v1.${method}`;
const isRpc = (method, match) => (r) => {
  const req = "request" in r ? r.request() : r;
  if (new URL(req.url()).pathname !== rpcPath(method)) return false;
  return match ? match(req.postDataJSON() ?? {}) : true;
};

/** A page signed in as the role (or signed out), with errors on the page collected. */
async function open(role, { permissions = [] } = {}) {
  const ctx = await browser.newContext({
    storageState: role ? state(role) : undefined,
    viewport: { width: 1360, height: 900 },
    permissions,
  });
  const page = await ctx.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    // Refused calls are logged by Chromium as failed loads; the tests check those on purpose.
    if (m.type() === "error" && !/Failed to load resource/.test(m.text())) errors.push(`console: ${m.text()}`);
  });
  return { ctx, page, errors, close: async () => ctx.close() };
}

/** Navigates and waits for the calls the page must make. */
async function visit(page, path, ...methods) {
  const waits = methods.map((m) => page.waitForResponse(isRpc(m)));
  await page.goto(base + path);
  const res = await Promise.all(waits);
  await settled(page);
  return res;
}

/** Polls a condition on the page (no fixed sleep: it returns as soon as it holds). */
async function until(fn, what, ms = 20_000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last === true) return;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

/** Every panel has left its loading state. */
async function settled(page) {
  await page.locator("main h1").first().waitFor();
  await until(async () => (await page.locator(".loading").count()) === 0, "panels to load");
}

const text = async (loc) => (await loc.innerText()).replace(/\s+/g, " ").trim();

function money(micros) {
  const m = BigInt(micros);
  const whole = (m / 1_000_000n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  let frac = (m % 1_000_000n).toString().padStart(6, "0");
  frac = frac.endsWith("0000") ? frac.slice(0, 2) : frac.replace(/0+$/, "");
  return `$${whole}.${frac}`;
}

async function shot(page, name) {
  const path = join(artifacts, `${name}.png`);
  // A drawer scrolls inside the viewport; grow the viewport so the picture holds all of it.
  const size = page.viewportSize();
  const hidden = await page.evaluate(() => {
    const body = document.querySelector(".drawer-body");
    return body ? body.scrollHeight - body.clientHeight : 0;
  });
  if (hidden > 0) await page.setViewportSize({ width: size.width, height: Math.min(size.height + hidden + 8, 4000) });
  // A modal covers the viewport only: a full-page picture would show its backdrop cut off.
  const modal = (await page.locator(".modal").count()) > 0;
  await page.screenshot({ path, fullPage: !modal });
  if (hidden > 0) await page.setViewportSize(size);
  findings.screenshots.push(path);
}

/** axe-core on the page as it is: no serious or critical violation. */
async function accessible(page, name) {
  // Evaluated through DevTools, so the page's CSP (no inline scripts) does not stop it.
  await page.evaluate(axe.source);
  const res = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] } }),
  );
  const bad = res.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  const minor = res.violations.filter((v) => !bad.includes(v)).map((v) => `${v.id} (${v.impact})`);
  findings.axe.push({ page: name, passes: res.passes.length, serious: bad.map((v) => v.id), minor });
  assert.deepEqual(
    bad.map((v) => `${v.id}: ${v.help} at ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`),
    [],
    `axe on ${name}`,
  );
}

function noErrors(errors, where) {
  assert.deepEqual(errors, [], `errors on ${where}`);
}

const rows = (page) => page.locator("main table tbody tr");

// --- tests --------------------------------------------------------------------------------

test("each role signs in with its key; the key is not kept, the cookie is HttpOnly and SameSite=Strict", async () => {
  for (const role of ["admin", "approver", "viewer"]) {
    const { ctx, page, errors, close } = await open(null);
    await page.goto(base + "/activity");
    await page.getByRole("heading", { name: "Sign in to Governor" }).waitFor();
    if (role === "admin") {
      await shot(page, "signin");
      await accessible(page, "sign-in");
      await page.getByLabel("API key").fill("gvk_not-a-key");
      const [bad] = await Promise.all([page.waitForResponse(isRpc("SessionService/SignIn")), page.getByRole("button", { name: "Sign in" }).click()]);
      assert.equal(bad.status(), 401);
      assert.match(await text(page.getByRole("alert")), /unauthenticated: (malformed|unknown) API key/);
    }
    await page.getByLabel("API key").fill(seed.keys[role]);
    const [ok] = await Promise.all([page.waitForResponse(isRpc("SessionService/SignIn")), page.getByRole("button", { name: "Sign in" }).click()]);
    assert.equal(ok.status(), 200);
    await page.getByRole("heading", { name: "Activity", level: 1 }).waitFor();
    const cookie = (await ctx.cookies()).find((c) => c.name === "governor_session");
    assert.ok(cookie, "session cookie");
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, "Strict");
    assert.equal(await page.evaluate(() => document.cookie.includes("governor_session")), false, "scripts cannot read it");
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
    assert.ok(!stored.includes(seed.keys[role]), "the key is not stored in the browser");
    await page.getByText(seed.emails[role]).waitFor();
    await ctx.storageState({ path: state(role) });
    noErrors(errors, `sign-in of ${role}`);
    await close();
  }
});

test("Activity: the seeded runs, their totals, times in the organization's zone", async () => {
  const { page, errors, close } = await open("admin");
  const start = Date.now();
  await page.goto(base + "/activity");
  await until(async () => (await rows(page).count()) === seed.runs, `${seed.runs} runs`);
  await until(async () => (await text(page.getByTestId("total-cost"))) === money(seed.totalMicros), "the total");
  findings.timings.push(`/activity showed ${seed.runs} runs and the totals ${Date.now() - start} ms after navigation (seeded database, loopback)`);
  assert.equal(await text(page.getByTestId("total-runs")), String(seed.settledRuns));
  // The settled costs on screen add up to the total the server reports.
  const costs = await rows(page).locator("td:nth-child(7)").allInnerTexts();
  const settled = costs.filter((c) => !c.includes("est.")).map((c) => Math.round(Number(c.replace(/[$,]/g, "")) * 100));
  assert.equal(settled.length, seed.settledRuns);
  assert.equal(settled.reduce((a, b) => a + b, 0) * 10_000, seed.totalMicros);
  await page.getByText(`Times in ${seed.org.timeZone}`).waitFor();
  const when = await text(rows(page).first().locator("time"));
  assert.match(when, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d E[SD]T$/, "New York time, the zone named");
  await shot(page, "activity");
  await accessible(page, "activity");
  noErrors(errors, "activity");
  await close();
});

test("Activity: filters set in the UI reach the request and survive a reload", async () => {
  const { page, errors, close } = await open("admin");
  await visit(page, "/activity", "RunService/ListRuns");
  const billing = seed.agents["billing-bot"];
  const [byAgent] = await Promise.all([
    page.waitForRequest(isRpc("RunService/ListRuns", (b) => b.agentId === billing)),
    page.getByLabel("Agent", { exact: true }).selectOption({ label: "billing-bot" }),
  ]);
  assert.equal(byAgent.postDataJSON().agentId, billing);
  await until(async () => (await rows(page).count()) === seed.agentRuns["billing-bot"], "billing-bot's runs");
  await until(async () => (await text(page.getByTestId("total-cost"))) === money(seed.agentMicros["billing-bot"]), "billing-bot's total");

  await Promise.all([
    page.waitForRequest(isRpc("RunService/ListRuns", (b) => b.agentId === billing && (b.statuses ?? []).includes("RUN_STATUS_FAILED"))),
    page.getByRole("checkbox", { name: "failed" }).check(),
  ]);
  await until(async () => (await rows(page).count()) === 1, "one failed run");
  await page.getByLabel("Model", { exact: true }).fill("claude-sonnet");
  await Promise.all([
    page.waitForRequest(isRpc("RunService/ListRuns", (b) => b.model === "claude-sonnet")),
    page.getByRole("button", { name: "Apply" }).click(),
  ]);
  await Promise.all([
    page.waitForRequest(isRpc("RunService/ListRuns", (b) => b.agentId === billing && b.model === "claude-sonnet" && (b.statuses ?? []).join() === "RUN_STATUS_FAILED")),
    page.getByLabel("Time", { exact: true }).selectOption({ label: "Last 24 hours" }),
  ]);
  const url = new URL(page.url());
  assert.equal(url.searchParams.get("agent"), billing);
  assert.deepEqual(url.searchParams.getAll("status"), ["failed"]);
  assert.equal(url.searchParams.get("range"), "24h");

  // A reload (or the link) reproduces the view: same request, same controls, same rows.
  const [again] = await Promise.all([page.waitForRequest(isRpc("RunService/ListRuns")), page.reload()]);
  const body = again.postDataJSON();
  assert.equal(body.agentId, billing);
  assert.equal(body.model, "claude-sonnet");
  assert.deepEqual(body.statuses, ["RUN_STATUS_FAILED"]);
  assert.ok(body.startTime, "the range is sent");
  await settled(page);
  assert.equal(await page.getByLabel("Agent", { exact: true }).inputValue(), billing);
  assert.equal(await page.getByRole("checkbox", { name: "failed" }).isChecked(), true);
  assert.equal(await page.getByLabel("Model", { exact: true }).inputValue(), "claude-sonnet");
  await until(async () => (await rows(page).count()) === 1, "the filtered run after the reload");
  await shot(page, "activity-filtered");

  // A bad filter shows the API's own error, not a blank page.
  await page.goto(base + "/activity?agent=agt_nope");
  await page.getByRole("alert").filter({ hasText: "Could not load runs" }).waitFor();
  assert.match(await text(page.getByRole("alert").filter({ hasText: "Could not load runs" })), /invalid argument: .*agent_id/);
  await shot(page, "activity-error");
  noErrors(errors, "activity filters");
  await close();
});

test("a run's drawer: its cost, 'This run generated 1 incident' with the link, its workflow in the Temporal UI", async () => {
  const { page, errors, close } = await open("admin");
  await visit(page, `/activity?run=${seed.failedRunId}`, "RunService/GetRun", "RunService/GetRunCost", "RunService/ListRunIncidents");
  const drawer = page.getByRole("dialog", { name: `Run ${seed.failedRunId}` });
  await drawer.getByText("This run generated 1 incident").waitFor();
  assert.equal(await text(drawer.getByTestId("run-cost")), money(seed.failedMicros));
  const incident = drawer.getByRole("link", { name: seed.incidentTitle });
  assert.equal(await incident.getAttribute("href"), `/incidents?incident=${seed.incidentId}`);
  const temporal = drawer.getByRole("link", { name: /in the Temporal UI/ });
  assert.equal(await temporal.getAttribute("href"), `${seed.temporalUiUrl}/namespaces/default/workflows/${encodeURIComponent(`run/${seed.failedRunId}`)}`);
  await drawer.getByText("TOOL_LOOP").first().waitFor();
  await shot(page, "activity-run-drawer");
  await accessible(page, "activity run drawer");
  await Promise.all([page.waitForResponse(isRpc("IncidentService/GetIncident")), incident.click()]);
  await page.getByRole("dialog", { name: seed.incidentTitle }).waitFor();
  assert.equal(new URL(page.url()).pathname, "/incidents");
  noErrors(errors, "run drawer");
  await close();
});

test("Incidents: by severity and status; the detail has source run, cost impact, timeline and the proposal's quorum", async () => {
  const { page, errors, close } = await open("admin");
  await visit(page, "/incidents", "IncidentService/ListIncidents");
  assert.equal(await rows(page).count(), 1);
  assert.match(await text(rows(page).first()), /high/);
  await Promise.all([
    page.waitForRequest(isRpc("IncidentService/ListIncidents", (b) => (b.severities ?? []).includes("INCIDENT_SEVERITY_HIGH"))),
    page.getByRole("group", { name: "Severity" }).getByRole("checkbox", { name: "high" }).check(),
  ]);
  await until(async () => (await rows(page).count()) === 1, "the high incident");
  await Promise.all([
    page.waitForRequest(isRpc("IncidentService/ListIncidents", (b) => (b.statuses ?? []).includes("INCIDENT_STATUS_RESOLVED"))),
    page.getByRole("group", { name: "Status" }).getByRole("checkbox", { name: "resolved" }).check(),
  ]);
  await page.getByText("No incident matches these filters").waitFor();
  await page.getByRole("group", { name: "Status" }).getByRole("checkbox", { name: "resolved" }).uncheck();
  await until(async () => (await rows(page).count()) === 1, "the incident again");
  await shot(page, "incidents");
  await accessible(page, "incidents");

  await Promise.all([page.waitForResponse(isRpc("IncidentService/GetIncidentCostImpact")), page.getByRole("button", { name: seed.incidentTitle }).click()]);
  const drawer = page.getByRole("dialog", { name: seed.incidentTitle });
  await settled(page);
  assert.equal(await text(drawer.getByTestId("impact-cost")), money(seed.failedMicros));
  assert.equal(await drawer.getByRole("link", { name: seed.failedRunId }).first().getAttribute("href"), `/activity?run=${seed.failedRunId}`);
  await drawer.getByText("incident_opened").first().waitFor();
  assert.equal(await text(drawer.getByTestId("quorum")), "0 of 1 approval");
  assert.match(await text(drawer), /agent called tool .* times in a row/);
  await shot(page, "incidents-detail");
  await accessible(page, "incident detail");
  noErrors(errors, "incidents");
  await close();
});

const everyPage = [
  "/overview",
  "/activity",
  `/activity?run=${seed.failedRunId}`,
  "/incidents",
  `/incidents?incident=${seed.incidentId}`,
  "/policies?tab=rules",
  "/policies?tab=proposals",
  "/policies?tab=limits",
  `/policies?tab=effective&agent=${seed.agents["triage-bot"]}`,
  "/logs?tab=audit",
  "/logs?tab=timeline",
  "/logs?tab=llm",
  "/analytics",
  "/connectivity",
  "/alerts?tab=channels",
  "/alerts?tab=routes",
  "/alerts?tab=deliveries",
  "/alerts?tab=alerts",
  "/accounts?tab=organization",
  "/accounts?tab=projects",
  "/accounts?tab=agents",
  "/accounts?tab=users",
];
const mutating =
  /^(Create|Edit|Save|Delete|Disable|Enable|Freeze|Unfreeze|Rotate|Revoke|Approve|Reject|Acknowledge|Resolve|Send test|Redeliver|Deactivate|Reactivate)\b/;

test("a viewer sees no mutating control on any page", async () => {
  const { page, errors, close } = await open("viewer");
  for (const path of everyPage) {
    await page.goto(base + path);
    await settled(page);
    const controls = await page.getByRole("button", { name: mutating }).allInnerTexts();
    assert.deepEqual(controls, [], `mutating controls for a viewer on ${path}`);
    assert.equal(await page.getByRole("combobox", { name: /^Role of/ }).count(), 0, `role selects on ${path}`);
  }
  await page.goto(base + `/incidents?incident=${seed.incidentId}`);
  await settled(page);
  await page.getByTestId("quorum").waitFor();
  await shot(page, "viewer-incident");
  noErrors(errors, "viewer pages");
  await close();
});

test("a forbidden call made anyway shows the API's error", async () => {
  const { page, errors, close } = await open("viewer");
  // The UI hides what a role cannot do; pretend it did not (a stale role, a tampered page):
  // the server still refuses, and the refusal is shown.
  await page.route("**/governor.v1.SessionService/WhoAmI", async (route) => {
    const res = await route.fetch();
    const json = await res.json();
    json.identity.role = "ROLE_ADMIN";
    await route.fulfill({ response: res, json });
  });
  await visit(page, "/connectivity", "ApiKeyService/ListApiKeys");
  await page.getByRole("button", { name: "Create key" }).click();
  const dialog = page.getByRole("dialog", { name: "Create an API key" });
  await dialog.getByLabel("Name", { exact: true }).fill("viewer was here");
  const [res] = await Promise.all([page.waitForResponse(isRpc("ApiKeyService/CreateApiKey")), dialog.getByRole("button", { name: "Create key" }).click()]);
  assert.equal(res.status(), 403);
  const alert = dialog.getByRole("alert");
  await alert.waitFor();
  assert.match(await text(alert), /^permission denied: role viewer may not call \/governor\.v1\.ApiKeyService\/CreateApiKey/);
  await shot(page, "viewer-forbidden");
  noErrors(errors, "forbidden call");
  await close();
});

test("an approver approves the proposal in the UI; the rule shows with its effectiveness", async () => {
  const { page, errors, close } = await open("approver");
  await visit(page, `/incidents?incident=${seed.incidentId}`, "IncidentService/GetIncident", "PolicyService/GetProposal");
  const drawer = page.getByRole("dialog", { name: seed.incidentTitle });
  const proposal = drawer.getByRole("region", { name: /^Proposal / });
  await proposal.getByLabel("Comment (optional)").fill("approved in the console");
  await proposal.getByRole("button", { name: "Approve", exact: true }).click();
  const [res] = await Promise.all([
    page.waitForResponse(isRpc("PolicyService/ApproveProposal", (b) => b.id === seed.proposalId)),
    proposal.getByRole("button", { name: "Yes, approve" }).click(),
  ]);
  assert.equal(res.status(), 200);
  assert.equal(res.request().postDataJSON().comment, "approved in the console");
  await until(async () => (await text(drawer.getByTestId("quorum"))) === "1 of 1 approval", "the quorum");
  await proposal.getByText("approved", { exact: true }).first().waitFor();
  assert.match(await text(proposal.getByRole("list", { name: "Decisions" })), /Approved by Approver .* “approved in the console”/);
  assert.equal(await proposal.getByRole("button", { name: "Approve", exact: true }).count(), 0, "nothing left to approve");
  const [ack] = await Promise.all([page.waitForResponse(isRpc("IncidentService/AcknowledgeIncident")), drawer.getByRole("button", { name: "Acknowledge" }).click()]);
  assert.equal(ack.status(), 200);
  await drawer.getByText("acknowledged", { exact: true }).first().waitFor();
  await shot(page, "incident-approved");

  await visit(page, "/policies?tab=rules", "PolicyService/ListPolicyRules");
  await until(async () => (await rows(page).count()) === 1, "the new rule");
  const eff = page.locator("[data-testid^=effectiveness-]");
  await until(async () => /^0 prevented · \$0\.00 saved · 0 failures since$/.test(await text(eff)), "its effectiveness");
  await shot(page, "policies-rules");
  await accessible(page, "policies rules");
  await visit(page, "/policies?tab=proposals&status=approved", "PolicyService/ListProposals");
  await page.getByText("1 of 1 approval").first().waitFor();
  await shot(page, "policies-proposals");
  await accessible(page, "policies proposals");
  noErrors(errors, "approval");
  await close();
});

test("an admin manages limits and budgets, and reads an agent's effective limits with their provenance", async () => {
  const { page, errors, close } = await open("admin");
  await visit(page, "/policies?tab=limits", "LimitService/ListLimits");
  assert.equal(await rows(page).count(), seed.limits.length);
  await page.getByRole("cell", { name: "$100.00", exact: true }).waitFor();
  await page.getByRole("button", { name: "Create limit" }).click();
  const dialog = page.getByRole("dialog", { name: "Create a limit" });
  await dialog.getByLabel("Name", { exact: true }).fill("weekly tokens from the browser");
  await dialog.getByLabel("Metric", { exact: true }).selectOption({ label: "tokens" });
  await dialog.getByLabel("Window", { exact: true }).selectOption({ label: "week" });
  await dialog.getByLabel("Amount", { exact: true }).fill("750000");
  await shot(page, "policies-limit-form");
  await accessible(page, "limit form");
  const [res] = await Promise.all([page.waitForResponse(isRpc("LimitService/CreateLimit")), dialog.getByRole("button", { name: "Create limit" }).click()]);
  assert.equal(res.status(), 200);
  const sent = res.request().postDataJSON();
  assert.equal(sent.metric, "LIMIT_METRIC_TOKENS");
  assert.equal(sent.window, "LIMIT_WINDOW_WEEK");
  assert.equal(String(sent.amount), "750000");
  await until(async () => (await rows(page).count()) === seed.limits.length + 1, "the new limit in the list");
  await page.getByRole("cell", { name: "750,000", exact: true }).waitFor();
  // Edit the budget: $100 becomes $150.
  await rows(page).filter({ hasText: "monthly budget" }).getByRole("button", { name: "Edit" }).click();
  const edit = page.getByRole("dialog", { name: "Edit monthly budget" });
  assert.equal(await edit.getByLabel("Amount (US dollars)").inputValue(), "100.00");
  await edit.getByLabel("Amount (US dollars)").fill("150");
  const [upd] = await Promise.all([page.waitForResponse(isRpc("LimitService/UpdateLimit")), edit.getByRole("button", { name: "Save limit" }).click()]);
  assert.equal(upd.status(), 200);
  assert.equal(String(upd.request().postDataJSON().amount), "150000000");
  await page.getByRole("cell", { name: "$150.00", exact: true }).waitFor();
  await shot(page, "policies-limits");
  await accessible(page, "policies limits");

  const triage = seed.agents["triage-bot"];
  const [eff] = await visit(page, `/policies?tab=effective&agent=${triage}`, "LimitService/GetEffectiveLimits");
  assert.equal(eff.request().postDataJSON().agentId, triage);
  await until(async () => (await rows(page).count()) === seed.limits.length + 1, "every limit considered");
  const table = await text(page.locator("main table"));
  for (const name of ["monthly budget", "triage daily runs", "weekly tokens from the browser"]) assert.ok(table.includes(name), `${name} in ${table}`);
  assert.match(table, /organization/);
  await shot(page, "policies-effective");
  await accessible(page, "effective limits");
  noErrors(errors, "limits");
  await close();
});

test("Connectivity: spend per key this month; a new key's secret shown once with a copy button; freeze", async () => {
  const { page, errors, close } = await open("admin", { permissions: ["clipboard-read", "clipboard-write"] });
  await visit(page, "/connectivity", "ApiKeyService/ListApiKeys");
  for (const [keyId, micros] of Object.entries(seed.spendMicros)) {
    assert.equal(await text(page.getByTestId(`spend-${keyId}`)), money(micros));
  }
  assert.equal(await text(page.getByTestId("keys-total")), money(seed.totalMicros));
  const chart = page.getByRole("img", { name: "Spend this month per key" });
  await chart.waitFor();
  for (const micros of Object.values(seed.spendMicros)) assert.ok((await chart.textContent()).includes(money(micros)));
  await shot(page, "connectivity");
  await accessible(page, "connectivity");

  await page.getByRole("button", { name: "Create key" }).click();
  const form = page.getByRole("dialog", { name: "Create an API key" });
  await form.getByLabel("Name", { exact: true }).fill("made in the browser");
  await form.getByLabel("Agent", { exact: true }).selectOption({ label: "triage-bot" });
  const [res] = await Promise.all([page.waitForResponse(isRpc("ApiKeyService/CreateApiKey")), form.getByRole("button", { name: "Create key" }).click()]);
  assert.equal(res.status(), 200);
  const shown = page.getByRole("dialog", { name: "Secret of made in the browser" });
  const secret = await shown.getByLabel("New secret").inputValue();
  assert.match(secret, /^gvk_/);
  await shown.getByRole("button", { name: "Copy secret" }).click();
  await shown.getByText("Copied to the clipboard.").waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);
  await shot(page, "connectivity-secret");
  await shown.getByRole("button", { name: "Done" }).click();
  assert.equal((await page.content()).includes(secret), false, "the secret is gone from the page");

  const row = rows(page).filter({ hasText: "made in the browser" });
  await row.getByRole("button", { name: "Freeze" }).click();
  const [fr] = await Promise.all([page.waitForResponse(isRpc("ApiKeyService/FreezeApiKey")), row.getByRole("button", { name: "Yes, freeze" }).click()]);
  assert.equal(fr.status(), 200);
  await row.getByText("frozen", { exact: true }).waitFor();
  noErrors(errors, "connectivity");
  await close();
});

test("Alerts: channels, routes, deliveries with their attempts, redeliver", async () => {
  const { page, errors, close } = await open("admin");
  await visit(page, "/alerts?tab=channels", "AlertService/ListChannels");
  for (const name of ["ops webhook", "retired endpoint"]) await page.getByRole("cell", { name, exact: true }).waitFor();
  await page.getByRole("cell", { name: "in app", exact: true }).first().waitFor();
  await shot(page, "alerts-channels");
  await accessible(page, "alert channels");
  await visit(page, "/alerts?tab=routes", "AlertService/ListRoutes");
  await page.getByText("No routes").waitFor();
  await shot(page, "alerts-routes");

  await visit(page, "/alerts?tab=deliveries", "AlertService/ListDeliveries");
  await Promise.all([
    page.waitForRequest(isRpc("AlertService/ListDeliveries", (b) => (b.statuses ?? []).includes("DELIVERY_STATUS_FAILED"))),
    page.getByLabel("Status", { exact: true }).selectOption({ label: "failed" }),
  ]);
  await until(async () => (await rows(page).count()) >= 1 && (await text(rows(page).first())).includes("retired endpoint"), "the failed delivery");
  const failedRow = rows(page).first();
  await failedRow.getByRole("button", { name: /^1 attempt of the delivery to retired endpoint$/ }).click();
  const drawer = page.getByRole("dialog", { name: "Delivery to retired endpoint" });
  await drawer.getByRole("list", { name: "Attempts" }).getByText(/HTTP 410/).waitFor();
  await shot(page, "alerts-delivery-attempts");
  await accessible(page, "delivery attempts");
  await drawer.getByRole("button", { name: "Close" }).click();
  await shot(page, "alerts-deliveries-failed");
  const [re] = await Promise.all([page.waitForResponse(isRpc("AlertService/RedeliverAlert")), failedRow.getByRole("button", { name: "Redeliver" }).click()]);
  assert.equal(re.status(), 200);
  // (e2e/console_test.go checks through the API that it was attempted again.)
  await Promise.all([page.waitForResponse(isRpc("AlertService/ListDeliveries")), page.getByLabel("Status", { exact: true }).selectOption({ label: "Every status" })]);
  await until(async () => (await rows(page).count()) >= 2, "every delivery");
  await shot(page, "alerts-deliveries");

  await visit(page, "/alerts?tab=alerts", "AlertService/ListAlerts");
  await page.getByRole("button", { name: seed.incidentTitle }).first().waitFor();
  await shot(page, "alerts-alerts");
  await accessible(page, "alerts list");
  noErrors(errors, "alerts");
  await close();
});

test("the notification bell updates live", async () => {
  const { page, errors, close } = await open("admin");
  await visit(page, "/activity", "AlertService/ListNotifications");
  const count = page.getByTestId("unread-count");
  const before = Number(await text(count));
  assert.ok(before >= 2, "the incident and the proposal notified");
  await page.evaluate(() => (window.__sameDocument = true));
  // Something happens elsewhere: an admin's script sends a test alert in-app.
  const res = await fetch(`${base}${rpcPath("AlertService/TestChannel")}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${seed.keys.admin}` },
    body: JSON.stringify({ id: seed.inAppChannelId }),
  });
  assert.equal(res.status, 200, await res.text());
  await until(async () => Number(await text(count)) === before + 1, "the bell to count the new notification");
  assert.equal(await page.evaluate(() => window.__sameDocument), true, "without a reload");
  await page.getByRole("button", { name: /Notifications/ }).click();
  const list = page.getByRole("region", { name: "Notifications" });
  await list.getByText(seed.incidentTitle).first().waitFor();
  await shot(page, "notifications");
  await accessible(page, "notifications");
  const [mark] = await Promise.all([page.waitForResponse(isRpc("AlertService/MarkNotificationRead")), list.getByRole("button", { name: "Mark all read" }).click()]);
  assert.equal(mark.status(), 200);
  await until(async () => (await text(count)) === "0", "nothing unread");
  noErrors(errors, "bell");
  await close();
});

test("Logs: the audit ledger verifies its chain; the timeline; LLM calls wait for the analytics API", async () => {
  const { page, errors, close } = await open("admin");
  await visit(page, "/logs", "AuditService/ListAuditEntries");
  assert.ok((await rows(page).count()) > 5);
  const [v] = await Promise.all([page.waitForResponse(isRpc("AuditService/VerifyAuditChain")), page.getByRole("button", { name: "Verify chain" }).click()]);
  assert.equal(v.status(), 200);
  assert.match(await text(page.getByTestId("chain-result")), /^Chain intact: \d+ entries checked/);
  await Promise.all([
    page.waitForRequest(isRpc("AuditService/ListAuditEntries", (b) => b.action === "policy_proposal.approve")),
    (async () => {
      await page.getByLabel("Action", { exact: true }).fill("policy_proposal.approve");
      await page.getByRole("button", { name: "Apply" }).click();
    })(),
  ]);
  await until(async () => (await rows(page).count()) === 1, "the approval's entry");
  assert.match(await text(rows(page).first()), /Approver/);
  await shot(page, "logs-audit");
  await accessible(page, "audit ledger");
  await page.getByRole("button", { name: /^Details of entry/ }).first().click();
  await page.getByRole("dialog", { name: /policy_proposal\.approve/ }).getByText("PROPOSAL_STATUS_APPROVED").first().waitFor();
  await shot(page, "logs-audit-entry");

  await visit(page, "/logs?tab=timeline", "TimelineService/ListEvents");
  await Promise.all([
    page.waitForRequest(isRpc("TimelineService/ListEvents", (b) => (b.filter?.domains ?? []).join() === "incidents")),
    page.getByLabel("Domain", { exact: true }).selectOption("incidents"),
  ]);
  await page.getByRole("cell", { name: "incident_opened" }).first().waitFor();
  await shot(page, "logs-timeline");
  await accessible(page, "timeline");
  await page.goto(base + "/logs?tab=llm");
  await page.getByText("LLM calls arrive with the analytics API").waitFor();
  await shot(page, "logs-llm");
  noErrors(errors, "logs");
  await close();
});

test("Accounts: organization and its time zone, projects, agents, users and roles", async () => {
  const { page, errors, close } = await open("admin");
  await visit(page, "/accounts", "AccountService/GetOrganization");
  assert.equal(await page.getByLabel("Time zone").inputValue(), seed.org.timeZone);
  await shot(page, "accounts-organization");
  await accessible(page, "organization");
  await visit(page, "/accounts?tab=projects", "AccountService/ListProjects");
  await page.getByRole("cell", { name: "Support", exact: true }).waitFor();
  await visit(page, "/accounts?tab=agents", "AccountService/ListAgents");
  assert.equal(await rows(page).count(), 2);
  await shot(page, "accounts-agents");
  await visit(page, "/accounts?tab=users", "AccountService/ListUsers");
  assert.equal(await rows(page).count(), 3);
  assert.equal(await page.getByRole("combobox", { name: `Role of ${seed.emails.viewer}` }).inputValue(), "3");
  assert.equal(await page.getByRole("combobox", { name: `Role of ${seed.emails.approver}` }).inputValue(), "2");
  await shot(page, "accounts-users");
  await accessible(page, "users");
  noErrors(errors, "accounts");
  await close();
});

test("Overview and Analytics say they arrive with the analytics API", async () => {
  const { page, errors, close } = await open("admin");
  await page.goto(base + "/overview");
  await page.getByText("The overview arrives with the analytics API").waitFor();
  await shot(page, "overview");
  await accessible(page, "overview");
  await page.goto(base + "/analytics");
  await page.getByText("Analytics arrives with the analytics API").waitFor();
  await shot(page, "analytics");
  await accessible(page, "analytics");
  noErrors(errors, "overview and analytics");
  await close();
});

test("signing out ends the session on the server", async () => {
  const { ctx, page, close } = await open("viewer");
  await visit(page, "/activity", "RunService/ListRuns");
  const [out] = await Promise.all([page.waitForResponse(isRpc("SessionService/SignOut")), page.getByRole("button", { name: "Sign out" }).click()]);
  assert.equal(out.status(), 200);
  await page.getByRole("heading", { name: "Sign in to Governor" }).waitFor();
  // The old cookie, replayed, is worthless.
  const saved = JSON.parse(readFileSync(state("viewer"), "utf8")).cookies;
  await ctx.addCookies(saved);
  const res = await page.evaluate(async () => {
    const r = await fetch("/governor.v1.AccountService/GetOrganization", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Connect-Protocol-Version": "1" },
      body: "{}",
    });
    return { status: r.status, body: await r.text() };
  });
  assert.equal(res.status, 401, res.body);
  await close();
});
