// The task manager page: the operations REST API and the watch stream, read with fetch
// (the token, when the server asks for one, goes in the Authorization header, never in a
// URL; EventSource cannot send headers). Shows one page at a time: it never loads every
// operation of a project.
"use strict";
const PAGE_SIZE = 50;
const $ = (id) => document.getElementById(id);
const state = { project: "", filter: "", tokens: [""], page: 0, ops: new Map(), next: null, watch: null, lastId: null, charted: null };

function token() { return sessionStorage.getItem("longrun-token") || ""; }
function headers(extra) {
  const h = Object.assign({ "Content-Type": "application/json" }, extra || {});
  if (token()) h.Authorization = "Bearer " + token();
  return h;
}
async function api(method, path, body) {
  const r = await fetch(path, { method, headers: headers(), body: body === undefined ? undefined : JSON.stringify(body) });
  const json = await r.json().catch(() => ({}));
  if (r.status === 401) throw unauthenticated(json);
  if (!r.ok) throw new Error((json.error && json.error.message) || ("HTTP " + r.status));
  return json;
}
function say(text) { const m = $("message"); m.textContent = text || ""; m.hidden = !text; }
function askToken() { $("token-box").hidden = false; $("token").focus(); }
// A 401: without a token the server needs one; with one, it rejected it, and says why.
function unauthenticated(json) {
  askToken();
  const why = (json && json.error && json.error.message) || "";
  const said = why ? ": " + why.replace(/\.?$/, ".") : ".";
  return new Error(token() ? "The server rejected the token" + said + " Paste another." : "This server needs a token.");
}

// Filters → the list filter (AIP-160).
function quote(s) { return '"' + s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\*/g, "\\*") + '"'; }
function buildFilter() {
  const parts = [];
  const st = $("f-state").value, ty = $("f-type").value.trim(), tx = $("f-text").value.trim();
  if (st) parts.push("metadata.state = " + st);
  if (ty) parts.push("metadata.type = " + quote(ty));
  if (tx) parts.push('metadata.description = "*' + quote(tx).slice(1, -1) + '*"');
  return parts.join(" AND ");
}

// Times: relative, exact on hover.
function rel(iso) {
  if (!iso) return "";
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (Math.abs(s) < 5) return "just now";
  const a = Math.abs(s), unit = a < 60 ? [a, "s"] : a < 3600 ? [Math.round(a / 60), "min"] : a < 86400 ? [Math.round(a / 3600), "h"] : [Math.round(a / 86400), "d"];
  return s >= 0 ? unit[0] + " " + unit[1] + " ago" : "in " + unit[0] + " " + unit[1];
}
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}
function idOf(name) { return name.split("/operations/")[1] || name; }
// The page's address of one operation: `/?project=P&operation=ID` opens it.
function link(name) {
  const url = new URL(location.href);
  url.searchParams.set("operation", idOf(name));
  return url.pathname + url.search;
}
function showInAddress(name) {
  const url = new URL(location.href);
  if (name) url.searchParams.set("operation", idOf(name)); else url.searchParams.delete("operation");
  history.replaceState(null, "", url);
}
function time(iso) { return iso ? el("time", { datetime: iso, title: iso }, rel(iso)) : ""; }
function stageOf(m) {
  const st = (m.stages || []).find((s) => s.completeWorkUnits !== s.totalWorkUnits) || (m.stages || []).slice(-1)[0];
  return st ? st.displayName || "" : "";
}

// Progress in percent: a succeeded operation is whole, whatever its worker last reported.
function percent(m) { return m.state === "SUCCEEDED" ? 100 : Math.round((m.progress || 0) * 100); }
// Why a PENDING operation waits: the server's sentence, else its reason.
const WAITING = {
  SCHEDULED: "scheduled: waits for its scheduleTime",
  PAUSED: "its queue is paused",
  PARENT: "waits for its parent to run",
  PROJECT_RUNNING_LIMIT: "the project is at its running limit",
  EXPORT_LIMIT: "the project is at its limit of running exports",
  KEY_LIMIT: "its concurrency key is at its limit",
  NO_WORKER: "no worker has asked for its type in the last minute",
  QUEUED: "queued: other work is ahead of it",
};
function waitingText(m, said) { return said || WAITING[m.waitingReason] || m.waitingReason || ""; }

function row(op) {
  const m = op.metadata || {};
  const pct = percent(m);
  const done = op.done === true;
  const tr = el("tr", { "data-name": op.name });
  const open = (e) => { e.preventDefault(); detail(op.name); };
  tr.addEventListener("click", (e) => { if (!e.target.closest("button")) detail(op.name); });
  tr.append(
    el("td", {}, el("span", m.waitingReason ? { class: "badge " + m.state, title: "waiting: " + m.waitingReason } : { class: "badge " + m.state }, m.state || "")),
    el("td", { class: "op" }, el("a", { href: link(op.name), onclick: open }, idOf(op.name)), m.description ? el("small", { title: m.description }, m.description) : null),
    el("td", {}, m.type || ""),
    el("td", {}, el("span", { class: m.state === "SUCCEEDED" ? "bar done" : "bar", role: "progressbar", "aria-valuenow": String(pct), "aria-valuemin": "0", "aria-valuemax": "100", "aria-label": "progress" }, el("span", { style: "width:" + pct + "%" })), " " + pct + "%"),
    el("td", {}, m.waitingReason === "SCHEDULED" && m.scheduleTime ? el("span", { class: "scheduled" }, "scheduled ", time(m.scheduleTime)) : stageOf(m)),
    el("td", {}, m.attempt ? String(m.attempt) : ""),
    el("td", {}, time(m.createTime)),
    el("td", {}, time(m.startTime)),
    el("td", {}, time(m.endTime)),
    el("td", { class: "err", title: op.error ? op.error.message : "" }, op.error ? op.error.message : ""),
    el("td", {}, done
      ? el("button", { type: "button", class: "danger", onclick: () => remove(op.name), "aria-label": "Delete " + idOf(op.name) }, "Delete")
      : el("button", { type: "button", onclick: () => cancel(op.name), "aria-label": "Cancel " + idOf(op.name) }, "Cancel")),
  );
  return tr;
}

function render() {
  const body = $("ops").tBodies[0];
  body.replaceChildren(...[...state.ops.values()].map(row));
  if (state.ops.size === 0) body.append(el("tr", {}, el("td", { colspan: "11" }, "No operations match.")));
  $("prev").disabled = state.page === 0;
  $("next").disabled = !state.next;
  $("summary").textContent = "Page " + (state.page + 1) + " · " + state.ops.size + " shown";
}

async function load() {
  if (!state.project) return;
  say("");
  const q = new URLSearchParams({ pageSize: String(PAGE_SIZE), filter: state.filter, pageToken: state.tokens[state.page] });
  try {
    const page = await api("GET", "/v1/projects/" + encodeURIComponent(state.project) + "/operations?" + q);
    state.ops = new Map((page.operations || []).map((op) => [op.name, op]));
    state.next = page.nextPageToken || null;
    render();
  } catch (e) { say(e.message); }
}

// The watch stream, read with fetch: only changes (the page lists what it shows).
async function watch() {
  if (state.watch) state.watch.abort();
  const ctl = new AbortController();
  state.watch = ctl;
  const q = new URLSearchParams({ filter: state.filter, snapshot: "false" });
  const h = headers({ Accept: "text/event-stream" });
  if (state.lastId) h["Last-Event-ID"] = state.lastId;
  try {
    const r = await fetch("/v1/projects/" + encodeURIComponent(state.project) + "/operations:watch?" + q, { headers: h, signal: ctl.signal });
    if (r.status === 401) { say(unauthenticated(await r.json().catch(() => ({}))).message); return; }
    if (!r.ok) throw new Error("watch: HTTP " + r.status);
    $("live").textContent = "live"; $("live").classList.add("on");
    const reader = r.body.getReader(), dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) { handle(buf.slice(0, i)); buf = buf.slice(i + 2); }
    }
  } catch (e) { if (ctl.signal.aborted) return; }
  $("live").textContent = "reconnecting…"; $("live").classList.remove("on");
  if (state.watch === ctl) setTimeout(() => { if (state.watch === ctl) watch(); }, 1500);
}
function handle(block) {
  let event = "message", id = null, data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const c = line.indexOf(":"), f = c < 0 ? line : line.slice(0, c), v = c < 0 ? "" : line.slice(c + 1).replace(/^ /, "");
    if (f === "event") event = v; else if (f === "id") id = v; else if (f === "data") data += v;
  }
  if (id && !id.endsWith("-s")) state.lastId = id;
  if (event === "reset") { load(); return; }
  if (event === "operation" || event === "deleted") {
    redraw(event, JSON.parse(data));
    clearTimeout(state.chartTimer);
    state.chartTimer = setTimeout(chart, 2000);
  }
  if (event === "operation") {
    const op = JSON.parse(data);
    const known = state.ops.has(op.name);
    const fresh = !known && state.page === 0 && (op.metadata || {}).state === "PENDING";
    if (!known && !fresh) return;
    if (fresh) state.ops = new Map([[op.name, op], ...state.ops]);
    else state.ops.set(op.name, op);
    update(op.name);
  } else if (event === "deleted") {
    const { name } = JSON.parse(data);
    if (state.ops.delete(name)) render();
  }
}
function update(name) {
  const body = $("ops").tBodies[0];
  const old = body.querySelector('tr[data-name="' + CSS.escape(name) + '"]');
  const tr = row(state.ops.get(name));
  tr.classList.add("flash");
  if (old) old.replaceWith(tr); else { render(); return; }
  if ($("detail").open && $("detail").dataset.name === name) detail(name);
}

// A small chart: operations created in the last hour (one page of at most 1,000, so it
// stays cheap with 100,000 in the project), in 5-minute bars stacked by their state now.
const STATES = ["PENDING", "RUNNING", "CANCELLING", "SUCCEEDED", "FAILED", "CANCELLED"];
const COLORS = { PENDING: "#6b7280", RUNNING: "#1d6fd8", CANCELLING: "#b45309", SUCCEEDED: "#15803d", FAILED: "#b91c1c", CANCELLED: "#7c3aed" };
async function chart() {
  const since = new Date(Date.now() - 3600e3).toISOString();
  const q = new URLSearchParams({ pageSize: "1000", filter: 'metadata.createTime >= "' + since + '"' });
  let page;
  try { page = await api("GET", "/v1/projects/" + encodeURIComponent(state.project) + "/operations?" + q); } catch (e) { return; }
  state.charted = { full: !!page.nextPageToken, ops: new Map((page.operations || []).map((op) => [op.name, op.metadata || {}])) };
  draw();
}
// A change from the stream moves its operation to its new state in the chart at once (the
// refetch a little later also counts what the stream did not show).
function redraw(event, data) {
  const c = state.charted;
  if (!c) return;
  if (event === "deleted") c.ops.delete(data.name);
  else if (c.ops.has(data.name) || !c.full) c.ops.set(data.name, data.metadata || {});
  draw();
}
function draw() {
  const c = state.charted;
  const ops = [...c.ops.values()].filter((m) => Date.parse(m.createTime) >= Date.now() - 3600e3);
  const bars = Array.from({ length: 12 }, () => Object.fromEntries(STATES.map((s) => [s, 0])));
  for (const m of ops) {
    const i = Math.min(11, Math.max(0, Math.floor((Date.parse(m.createTime) - (Date.now() - 3600e3)) / 300e3)));
    if (m.state in bars[i]) bars[i][m.state]++;
  }
  const max = Math.max(1, ...bars.map((b) => STATES.reduce((n, s) => n + b[s], 0)));
  const svg = $("chart"), ns = "http://www.w3.org/2000/svg", w = 600 / 12;
  svg.replaceChildren();
  bars.forEach((b, i) => {
    let y = 80;
    for (const s of STATES) {
      if (!b[s]) continue;
      const h = (b[s] / max) * 76;
      y -= h;
      const r = document.createElementNS(ns, "rect");
      r.setAttribute("x", String(i * w + 2)); r.setAttribute("width", String(w - 4));
      r.setAttribute("y", String(y)); r.setAttribute("height", String(h)); r.setAttribute("fill", COLORS[s]);
      const t = document.createElementNS(ns, "title"); t.textContent = b[s] + " " + s; r.append(t);
      svg.append(r);
    }
  });
  const totals = Object.fromEntries(STATES.map((s) => [s, bars.reduce((n, b) => n + b[s], 0)]));
  $("legend").replaceChildren(...STATES.filter((s) => totals[s]).map((s) => el("span", {}, el("i", { style: "background:" + COLORS[s] }), s + " " + totals[s])));
  $("chart-note").textContent = c.full ? "(the latest 1,000)" : "(" + ops.length + ")";
}

async function cancel(name) {
  if (!confirm("Cancel " + idOf(name) + "?")) return;
  try { await api("POST", "/v1/" + name + ":cancel", {}); } catch (e) { say(e.message); }
}
async function remove(name) {
  if (!confirm("Delete " + idOf(name) + "? This cannot be undone.")) return;
  try { await api("DELETE", "/v1/" + name); state.ops.delete(name); render(); } catch (e) { say(e.message); }
}
async function retry(name) {
  try {
    const op = await api("POST", "/v1/" + name + ":retry", {});
    say("Retried as " + idOf(op.name));
    detail(op.name);
  } catch (e) { say(e.message); }
}
async function bulkRetry() {
  const filter = state.filter || "done = true";
  if (!confirm("Retry every done operation of " + state.project + " matching:\n" + filter + " ?")) return;
  try {
    const op = await api("POST", "/v1/projects/" + encodeURIComponent(state.project) + "/operations:batchRetry", { filter });
    say("Bulk retry started: " + idOf(op.name));
  } catch (e) { say(e.message); }
}

// The project's schedules (docs/schedules.md): one page, refreshed with the chart.
async function schedules() {
  let page;
  try { page = await api("GET", "/v1/projects/" + encodeURIComponent(state.project) + "/schedules?pageSize=100"); } catch (e) { return; }
  const list = page.schedules || [];
  $("schedules-count").textContent = String(list.length);
  const body = $("schedules").tBodies[0];
  body.replaceChildren(...list.map((sc) => el("tr", {},
    el("td", { class: "op" }, sc.name.split("/schedules/")[1] || sc.name),
    el("td", {}, el("code", {}, sc.cron)), el("td", {}, sc.timeZone || "UTC"),
    el("td", {}, (sc.operation || {}).type || ""),
    el("td", {}, sc.paused ? "paused" : time(sc.nextFireTime)), el("td", {}, time(sc.lastFireTime)))));
  if (!list.length) body.append(el("tr", {}, el("td", { colspan: "6" }, "No schedules.")));
}

// The project's queues (docs/queues.md): counts, the oldest waiting operation, and pause
// and resume (the admin role's); refreshed with the chart and after each pause or resume.
async function queues() {
  let page;
  try { page = await api("GET", "/v1/projects/" + encodeURIComponent(state.project) + "/queues"); } catch (e) { return; }
  const list = page.queues || [];
  $("queues-count").textContent = String(list.filter((q) => !q.name.endsWith("/queues/-")).length);
  const body = $("queues").tBodies[0];
  body.replaceChildren(...list.map((q) => {
    const type = q.name.split("/queues/")[1] || q.name;
    const paused = q.state === "PAUSED";
    const verb = paused ? "resume" : "pause";
    return el("tr", {},
      el("td", { class: "op" }, type === "-" ? "every type" : type),
      el("td", {}, el("span", { class: "badge " + (paused ? "PAUSED" : "RUNNING") }, paused ? "paused" : "running")),
      el("td", {}, q.pendingCount), el("td", {}, q.runningCount),
      el("td", {}, q.oldestPendingTime ? time(q.oldestPendingTime) : ""),
      el("td", {}, el("button", { type: "button", onclick: () => pauseQueue(type, verb) }, paused ? "Resume" : "Pause")));
  }));
  if (!list.length) body.append(el("tr", {}, el("td", { colspan: "6" }, "No queued or running work.")));
}
async function pauseQueue(type, verb) {
  const name = "projects/" + state.project + "/queues/" + type;
  if (verb === "pause" && !confirm("Pause " + name + "? Nothing of it is leased, on any server, until it is resumed.")) return;
  try {
    await api("POST", "/v1/projects/" + encodeURIComponent(state.project) + "/queues/" + encodeURIComponent(type) + ":" + verb, {});
    say((verb === "pause" ? "Paused " : "Resumed ") + name);
  } catch (e) { say(e.message); }
  queues();
}

async function bulkCancel() {
  const filter = state.filter || "done = false";
  if (!confirm("Cancel every operation of " + state.project + " matching:\n" + filter + " ?")) return;
  try {
    const op = await api("POST", "/v1/projects/" + encodeURIComponent(state.project) + "/operations:batchCancel", { filter });
    say("Bulk cancel started: " + idOf(op.name));
  } catch (e) { say(e.message); }
}

async function detail(name) {
  const d = $("detail");
  d.dataset.name = name;
  let op, waiting = null;
  try {
    const r = await fetch("/v1/" + name, { headers: headers() });
    op = await r.json().catch(() => ({}));
    if (r.status === 401) throw unauthenticated(op);
    if (!r.ok) throw new Error((op.error && op.error.message) || ("HTTP " + r.status));
    waiting = r.headers.get("x-longrun-waiting");
  } catch (e) { say(e.message); return; }
  const m = op.metadata || {};
  $("detail-title").textContent = idOf(name);
  const dl = el("dl");
  const add = (k, v) => { if (v !== undefined && v !== null && v !== "") dl.append(el("dt", {}, k), el("dd", {}, v)); };
  add("Name", op.name); add("State", el("span", { class: "badge " + m.state }, m.state)); add("Type", m.type);
  const why = m.state === "PENDING" ? waitingText(m, waiting) : "";
  if (why) add("Waiting", el("span", { class: "waiting" }, why));
  add("Description", m.description); add("Priority", m.priority !== undefined ? String(m.priority) : "");
  add("Attempt", m.attempt ? String(m.attempt) : ""); add("Progress", percent(m) + "%");
  add("Concurrency key", m.concurrencyKey);
  if (m.retryOf) add("Retry of", el("a", { href: link(m.retryOf), onclick: (e) => { e.preventDefault(); detail(m.retryOf); } }, idOf(m.retryOf)));
  if (m.parent) add("Parent", el("a", { href: link(m.parent), onclick: (e) => { e.preventDefault(); detail(m.parent); } }, idOf(m.parent)));
  add("Schedule", m.schedule);
  add("Scheduled for", m.scheduleTime); add("Start timeout", m.startTimeout);
  add("Created", m.createTime); add("Started", m.startTime); add("Updated", m.updateTime); add("Ended", m.endTime);
  add("Destinations", (m.destinationUris || []).length ? el("ul", {}, ...m.destinationUris.map((u) => el("li", {}, u))) : "");
  const actions = el("div", { class: "actions" },
    ...(op.done ? [el("button", { type: "button", onclick: () => retry(name) }, "Retry"),
                   el("button", { type: "button", class: "danger", onclick: () => remove(name) }, "Delete")]
                : [el("button", { type: "button", onclick: () => cancel(name) }, "Cancel")]));
  const kids = el("div", { id: "detail-children" });
  const parts = [dl, actions, kids];
  if (op.error) parts.push(el("h3", {}, "Error"), el("pre", {}, JSON.stringify(op.error, null, 2)));
  if (op.response) parts.push(el("h3", {}, "Response"), el("pre", {}, JSON.stringify(op.response, null, 2)));
  parts.push(el("h3", {}, "Metadata"), el("pre", {}, JSON.stringify(m, null, 2)));
  const payload = el("pre", { id: "detail-payload" }, "…");
  parts.push(el("h3", {}, "Payload"), payload);
  const out = el("pre", {}, "…");
  parts.push(el("h3", {}, "Command output"), out);
  $("detail-body").replaceChildren(...parts);
  showInAddress(name);
  if (!d.open) d.showModal();
  children(name, kids);
  api("GET", "/v1/operationOutputs/" + name).then((o) => { out.textContent = o.output || "(none)"; }).catch(() => { out.textContent = "(none)"; });
  // What it was submitted with: its own read, never in a get or a list.
  api("GET", "/v1/operationPayloads/" + name).then((p) => {
    payload.textContent = p.payload === null || p.payload === undefined ? "(none)" : JSON.stringify(p.payload, null, 2);
  }).catch(() => { payload.textContent = "(none)"; });
}

// An operation's children (docs/operations.md#parents-and-children): how far the tree has
// come (its children by state) and the first 100, each a link to its own detail.
async function children(name, into) {
  const project = name.split("/")[1];
  const filter = 'metadata.parent = "' + name + '"';
  let page;
  try {
    page = await api("GET", "/v1/projects/" + encodeURIComponent(project) + "/operations?pageSize=100&filter=" + encodeURIComponent(filter));
  } catch (e) { return; }
  const list = page.operations || [];
  if (!list.length) return;
  const counts = {};
  for (const c of list) { const st = (c.metadata || {}).state; counts[st] = (counts[st] || 0) + 1; }
  const done = list.filter((c) => c.done).length;
  const more = page.nextPageToken ? " (the first 100)" : "";
  const summary = done + " of " + list.length + " done" + more + ": " +
    Object.keys(counts).sort().map((st) => counts[st] + " " + st.toLowerCase()).join(", ");
  const bar = el("div", { class: "bar", title: summary }, el("span", { style: "width:" + Math.round(100 * done / list.length) + "%" }));
  into.replaceChildren(el("h3", {}, "Children"), el("p", { class: "tree" }, summary), bar,
    el("ul", { class: "children" }, ...list.map((c) => el("li", {},
      el("span", { class: "badge " + (c.metadata || {}).state }, (c.metadata || {}).state), " ",
      el("a", { href: link(c.name), onclick: (e) => { e.preventDefault(); detail(c.name); } }, idOf(c.name))))));
}

function open(project) {
  state.project = project; state.charted = null;
  state.filter = buildFilter();
  state.tokens = [""]; state.page = 0; state.lastId = null;
  const url = new URL(location.href);
  if (url.searchParams.get("project") !== project) url.searchParams.delete("operation");
  url.searchParams.set("project", project); history.replaceState(null, "", url);
  const recent = JSON.parse(localStorage.getItem("longrun-projects") || "[]").filter((p) => p !== project);
  recent.unshift(project); localStorage.setItem("longrun-projects", JSON.stringify(recent.slice(0, 10)));
  $("recent-projects").replaceChildren(...recent.map((p) => el("option", { value: p })));
  document.title = "longrun · " + project;
  load().then(watch);
  chart();
  queues();
  schedules();
}

document.addEventListener("DOMContentLoaded", () => {
  const params = new URLSearchParams(location.search);
  const recent = JSON.parse(localStorage.getItem("longrun-projects") || "[]");
  $("recent-projects").replaceChildren(...recent.map((p) => el("option", { value: p })));
  $("project").value = params.get("project") || recent[0] || "";
  $("project-form").addEventListener("submit", (e) => { e.preventDefault(); open($("project").value.trim()); });
  $("filters").addEventListener("submit", (e) => { e.preventDefault(); open(state.project || $("project").value.trim()); });
  $("f-state").addEventListener("change", () => open(state.project || $("project").value.trim()));
  $("bulk-cancel").addEventListener("click", bulkCancel);
  $("bulk-retry").addEventListener("click", bulkRetry);
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault(); sessionStorage.setItem("longrun-token", $("token").value.trim());
    $("token-box").hidden = true; if (state.project) open(state.project);
  });
  $("prev").addEventListener("click", () => { if (state.page > 0) { state.page--; load(); } });
  $("next").addEventListener("click", () => { if (state.next) { state.tokens[state.page + 1] = state.next; state.page++; load(); } });
  setInterval(() => { if (state.project) { chart(); queues(); schedules(); } }, 30000);
  setInterval(() => document.querySelectorAll("time[datetime]").forEach((t) => { t.textContent = rel(t.getAttribute("datetime")); }), 15000);
  $("detail").addEventListener("close", () => showInAddress(null));
  if ($("project").value) open($("project").value);
  // A link to one operation opens it.
  const operation = params.get("operation");
  if (operation && $("project").value) detail("projects/" + $("project").value + "/operations/" + operation);
});
