// The task manager page in a real browser (Debian's Chromium driven by playwright-core):
// load, see the seeded operations with every row's actions in view at 1280 px, pause and
// resume a queue, filter,
// open a detail (also from a link to one operation), cancel a running operation and see
// its badge turn CANCELLED without a reload, bulk-cancel a filter, read it at phone width,
// and hear that a server with auth on rejected the token. Screenshots of each step go to
// $SHOTS (target/browser).
// Usage: node page.mjs http://127.0.0.1:PORT http://127.0.0.1:AUTH_PORT
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import assert from "node:assert/strict";

const base = process.argv[2];
const authBase = process.argv[3];
const shots = process.env.SHOTS || "../../target/browser";
mkdirSync(shots, { recursive: true });
const project = "demo";

async function api(method, path, body) {
  const r = await fetch(base + path, { method, headers: { "Content-Type": "application/json" }, body: body && JSON.stringify(body) });
  const json = await r.json();
  assert.ok(r.ok, `${method} ${path}: ${JSON.stringify(json)}`);
  return json;
}

// Seed: five exports (stay PENDING), two cancelled, one report a worker completed (its
// worker never reported progress), one SIMULATE that runs until cancelled.
for (let i = 1; i <= 5; i++) {
  await api("POST", `/v1/projects/${project}/operations:submit`, { type: "EXPORT", operationId: `export-${i}`, description: `Export tile ${i} to gs://bucket/tiles/${i}.tif` });
}
for (const id of ["old-a", "old-b"]) {
  await api("POST", `/v1/projects/${project}/operations:submit`, { type: "INGEST", operationId: id, description: `Ingest ${id}` });
  await api("POST", `/v1/projects/${project}/operations/${id}:cancel`, {});
}
await api("POST", `/v1/projects/${project}/operations:submit`, { type: "REPORT", operationId: "report", description: "A finished report" });
const leased = await api("POST", "/v1/workers/browser-test:lease", { types: ["REPORT"], waitTimeout: "5s" });
assert.equal(leased.leases.length, 1);
await api("POST", `/v1/projects/${project}/operations/report:complete`, { leaseId: leased.leases[0].leaseId, response: { rows: 3 } });
await api("POST", `/v1/projects/${project}/operations:submit`, { type: "SIMULATE", operationId: "long-run", description: "A long simulation", payload: { region: "alps", scale: 30 } });
await api("POST", `/v1/projects/${project}/schedules`, { scheduleId: "nightly", cron: "0 3 * * *", timeZone: "Europe/Paris", operation: { type: "EXPORT", description: "Nightly export" } });
for (let i = 0; ; i++) {
  const op = await api("GET", `/v1/projects/${project}/operations/long-run`);
  if (op.metadata.state === "RUNNING") break;
  assert.ok(i < 100, "the simulation starts");
  await new Promise((r) => setTimeout(r, 100));
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
page.on("dialog", (d) => d.accept());
const badge = (id) => page.locator(`tr[data-name="projects/${project}/operations/${id}"] .badge`);
const step = async (n, name) => page.screenshot({ path: `${shots}/${n}-${name}.png`, fullPage: true });

// 1. Load: every seeded operation is listed, newest first, each with its Cancel or Delete
// button in view; the succeeded one shows its progress whole.
await page.goto(`${base}/?project=${project}`);
await page.locator("tbody tr[data-name]").first().waitFor();
assert.equal(await page.locator("tbody tr[data-name]").count(), 9);
assert.equal(await badge("long-run").textContent(), "RUNNING");
await page.locator(".live.on").waitFor();
for (const button of await page.locator("tbody tr[data-name] button").all()) {
  const box = await button.boundingBox();
  assert.ok(box && box.x >= 0 && box.x + box.width <= 1280, `a row's action is in view at 1280 px: ${JSON.stringify(box)}`);
}
const report = page.locator(`tr[data-name="projects/${project}/operations/report"] [role=progressbar]`);
assert.equal(await report.getAttribute("aria-valuenow"), "100");
await step(1, "loaded");

// The project's queues: counts and the oldest waiting; a pause and a resume from the page.
const queueRow = (type) => page.locator("#queues tbody tr").filter({ has: page.locator("td.op", { hasText: new RegExp(`^${type}$`) }) });
await queueRow("EXPORT").waitFor();
assert.deepEqual((await queueRow("EXPORT").locator("td").allTextContents()).slice(0, 4), ["EXPORT", "running", "5", "0"]);
assert.deepEqual((await queueRow("SIMULATE").locator("td").allTextContents()).slice(1, 4), ["running", "0", "1"]);
await queueRow("EXPORT").locator("button", { hasText: "Pause" }).click();
await page.waitForFunction(() => [...document.querySelectorAll("#queues tbody tr")].some((r) => r.textContent.startsWith("EXPORTpaused")));
assert.equal((await api("GET", `/v1/projects/${project}/queues/EXPORT`)).state, "PAUSED");
await step(1, "queue-paused");
await queueRow("EXPORT").locator("button", { hasText: "Resume" }).click();
await page.waitForFunction(() => [...document.querySelectorAll("#queues tbody tr")].some((r) => r.textContent.startsWith("EXPORTrunning")));
assert.equal((await api("GET", `/v1/projects/${project}/queues/EXPORT`)).state, "RUNNING");

// 2. Filter by state (through the list filter), with the keyboard.
await page.locator("#f-state").focus();
await page.keyboard.press("ArrowDown"); // PENDING
await page.waitForFunction(() => document.querySelectorAll("tbody tr[data-name]").length === 5);
for (const text of await page.locator("#ops tbody .badge").allTextContents()) assert.equal(text, "PENDING");
await step(2, "filtered-pending");
// Description search: one export.
await page.selectOption("#f-state", "");
await page.fill("#f-text", "tile 3");
await page.press("#f-text", "Enter");
await page.waitForFunction(() => document.querySelectorAll("tbody tr[data-name]").length === 1);
await step(3, "search");
await page.fill("#f-text", "");
await page.press("#f-text", "Enter");
await page.waitForFunction(() => document.querySelectorAll("tbody tr[data-name]").length === 9);

// 4. Detail of the running operation.
await page.locator(`tr[data-name="projects/${project}/operations/long-run"] td.op a`).click();
await page.locator("#detail[open]").waitFor();
await page.locator("#detail-body dl").waitFor();
assert.match(await page.locator("#detail-body").textContent(), /A long simulation/);
// The payload it was submitted with, read on its own.
await page.waitForFunction(() => document.querySelector("#detail-payload").textContent.includes("alps"));
assert.match(await page.locator("#detail-payload").textContent(), /"scale": 30/);
await step(4, "detail");
await page.keyboard.press("Escape");
// A queued export says why it waits: nothing serves its type.
await page.locator(`tr[data-name="projects/${project}/operations/export-1"] td.op a`).click();
await page.locator("#detail-body .waiting").waitFor();
assert.match(await page.locator("#detail-body .waiting").textContent(), /no executor or worker has asked for operations of type EXPORT/);
await step(4, "detail-waiting");
await page.keyboard.press("Escape");
await page.locator("#detail[open]").waitFor({ state: "detached" }).catch(() => {});
// A link to one operation opens it, in a fresh tab.
const linked = await browser.newPage({ viewport: { width: 1280, height: 800 } });
linked.on("pageerror", (e) => errors.push(String(e)));
await linked.goto(`${base}/?project=${project}&operation=long-run`);
await linked.locator("#detail[open] #detail-body dl").waitFor();
assert.match(await linked.locator("#detail-body").textContent(), /A long simulation/);
await linked.screenshot({ path: `${shots}/4-linked.png`, fullPage: true });
await linked.close();

// 5. Cancel the running one: its badge turns CANCELLED from the watch stream, no reload.
const marker = await page.evaluate(() => (window.__noReload = Math.random()));
await page.locator(`tr[data-name="projects/${project}/operations/long-run"] button`).click();
await page.waitForFunction((id) => document.querySelector(`tr[data-name="projects/demo/operations/${id}"] .badge`)?.textContent === "CANCELLED", "long-run", { timeout: 15000 });
assert.equal(await page.evaluate(() => window.__noReload), marker, "the page was not reloaded");
// The chart moves it at once from the same event (its refetch waits 2 s after a change).
await page.waitForFunction(() => { const l = document.querySelector("#legend").textContent; return l.includes("CANCELLED 3") && !l.includes("RUNNING"); }, null, { timeout: 500 });
await step(5, "cancelled-live");

// 6. Bulk cancel of a filter: type EXPORT.
await page.fill("#f-type", "EXPORT");
await page.press("#f-type", "Enter");
await page.waitForFunction(() => document.querySelectorAll("tbody tr[data-name]").length === 5);
await page.locator("#bulk-cancel").click();
await page.waitForFunction(() => [...document.querySelectorAll("tbody .badge")].every((b) => b.textContent === "CANCELLED"), null, { timeout: 30000 });
assert.match(await page.locator("#message").textContent(), /Bulk cancel started/);
await step(6, "bulk-cancelled");
const job = (await api("GET", `/v1/projects/${project}/operations?filter=${encodeURIComponent('metadata.type = "BATCH_CANCEL"')}`)).operations[0];
const done = await api("POST", `/v1/${job.name}:wait`, { timeout: "20s" });
assert.equal(done.response.cancelledCount, "5");

// 6b. Retry a cancelled operation from its detail: the new one opens, naming the original.
await page.fill("#f-type", "");
await page.press("#f-type", "Enter");
await page.locator(`tr[data-name="projects/${project}/operations/old-a"] td.op a`).click();
await page.locator("#detail-body .actions button", { hasText: "Retry" }).click();
await page.waitForFunction(() => /Retry of\s*old-a/.test(document.querySelector("#detail-body dl")?.textContent || ""));
assert.match(await page.locator("#message").textContent(), /Retried as/);
await step(6, "retried");
await page.keyboard.press("Escape");
// The project's schedules are listed.
await page.locator("#schedules-box summary").click();
await page.waitForFunction(() => document.querySelector("#schedules tbody")?.textContent.includes("nightly"));
assert.match(await page.locator("#schedules tbody").textContent(), /0 3 \* \* \*.*Europe\/Paris.*EXPORT/);
await step(6, "schedules");

// 6c. A parent's detail shows how far its children have come, each a link to its own.
await api("POST", `/v1/projects/${project}/operations:submit`, { type: "RENDER", operationId: "film", description: "A film" });
for (const n of [1, 2, 3]) {
  await api("POST", `/v1/projects/${project}/operations:submit`, { type: "FRAME", operationId: `film-${n}`, parent: `projects/${project}/operations/film` });
}
await api("POST", `/v1/projects/${project}/operations/film-3:cancel`, {});
const tree = await browser.newPage({ viewport: { width: 1280, height: 800 } });
tree.on("pageerror", (e) => errors.push(String(e)));
await tree.goto(`${base}/?project=${project}&operation=film`);
await tree.locator("#detail[open] #detail-children h3").waitFor();
assert.match(await tree.locator("#detail-children").textContent(), /1 of 3 done: 1 cancelled, 2 pending/);
await tree.screenshot({ path: `${shots}/6c-tree.png`, fullPage: true });
await tree.locator("#detail-children a", { hasText: "film-2" }).click();
await tree.waitForFunction(() => /Parent\s*film/.test(document.querySelector("#detail-body dl")?.textContent || ""));
await tree.close();

// 7. Phone width: the table still reads (some columns hidden).
await page.setViewportSize({ width: 390, height: 844 });
await page.fill("#f-type", "");
await page.press("#f-type", "Enter");
await page.waitForFunction(() => document.querySelectorAll("tbody tr[data-name]").length >= 10);
await step(7, "phone");

// 7b. Work scheduled for later is marked so in the list, with its time.
await page.setViewportSize({ width: 1280, height: 800 });
const later = new Date(Date.now() + 3600e3).toISOString();
await api("POST", `/v1/projects/${project}/operations:submit`, { type: "EXPORT", operationId: "later", description: "Runs in an hour", scheduleTime: later });
const laterRow = page.locator(`tr[data-name="projects/${project}/operations/later"]`);
await laterRow.waitFor();
assert.match(await laterRow.locator(".scheduled").textContent(), /scheduled in (59 min|1 h)/);
await step(7, "scheduled");

// 8. A server with auth on, and a token it does not take: the page says it was rejected
// and why, and asks for another.
const authed = await browser.newPage({ viewport: { width: 1280, height: 800 } });
authed.on("pageerror", (e) => errors.push(String(e)));
await authed.addInitScript(() => sessionStorage.setItem("longrun-token", "not-a-token"));
await authed.goto(`${authBase}/?project=${project}`);
await authed.locator("#message:not([hidden])").waitFor();
assert.match(await authed.locator("#message").textContent(), /The server rejected the token: .+/);
assert.equal(await authed.locator("#token-box").isHidden(), false);
// It says where a token comes from.
assert.match(await authed.locator("#token-box").textContent(), /longrun auth print-access-token --key-file/);
await authed.screenshot({ path: `${shots}/8-token-rejected.png`, fullPage: true });
await authed.close();

assert.deepEqual(errors, [], "no script errors");
await browser.close();
console.log(`browser test passed; screenshots in ${shots}`);
