// The bundle budget: what the browser downloads before the first page shows data, gzipped,
// against a limit. That is index.html, its entry chunk with every chunk it imports
// statically, its style sheets, and the chunks of the page a signed-in person lands on
// (/activity) with their static imports. Other pages are lazy chunks; their sizes are
// printed for reference.
//
//   node web/scripts/budget.mjs <dist folder> <budget in KB>
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const [dist = "console/dist", budgetArg = "250"] = process.argv.slice(2);
const LANDING = "src/pages/Activity.tsx";
const budget = Number(budgetArg) * 1024;
const manifest = JSON.parse(readFileSync(join(dist, ".vite", "manifest.json"), "utf8"));
const html = readFileSync(join(dist, "index.html"), "utf8");

const files = new Set();
const visit = (key) => {
  const c = manifest[key];
  if (!c || files.has(c.file)) return;
  files.add(c.file);
  (c.css ?? []).forEach((f) => files.add(f));
  (c.imports ?? []).forEach(visit);
};
const entry = Object.keys(manifest).find((k) => manifest[k].isEntry);
if (!entry || !manifest[LANDING]) {
  console.error(`budget: the manifest has no entry or no ${LANDING}`);
  process.exit(1);
}
visit(entry);
visit(LANDING);

const gz = (buf) => gzipSync(buf, { level: 9 }).length;
const kb = (n) => (n / 1024).toFixed(1).padStart(7) + " KB";
let total = gz(Buffer.from(html));
console.log(`console bundle, first page (/activity), gzip:\n  ${kb(total)}  index.html`);
for (const f of files) {
  const n = gz(readFileSync(join(dist, f)));
  total += n;
  console.log(`  ${kb(n)}  ${f}`);
}
const lazy = [...new Set(Object.values(manifest).map((c) => c.file))]
  .filter((f) => !files.has(f) && /\.(js|css)$/.test(f))
  .map((f) => [f, gz(readFileSync(join(dist, f)))])
  .sort((a, b) => b[1] - a[1]);
const lazyTotal = lazy.reduce((s, [, n]) => s + n, 0);
console.log(`  other chunks (loaded by other pages, not in the budget): ${lazy.length}, ${kb(lazyTotal).trim()} in all; largest:`);
for (const [f, n] of lazy.slice(0, 4)) console.log(`    ${kb(n)}  ${f}`);
const verdict = total <= budget ? "within budget" : "OVER BUDGET";
console.log(`initial route: ${(total / 1024).toFixed(1)} KB gzip of ${budgetArg} KB: ${verdict}`);
if (total > budget) process.exit(1);
