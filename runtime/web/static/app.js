// battplc operator page: vanilla JS, no build step. Live data arrive over Server-Sent Events (/api/events),
// one message per second; writes are POSTed as JSON with the write token in a header (never a cookie).
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value; else if (key.startsWith("on")) node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
};
const STALE_AFTER_MS = 4000; // three missed messages
const FLOW_MIN_W = 5; // below this a flow line is drawn idle

let meta = null, last = null, lastAt = 0, source = null;
const defs = {}, rows = {}, paramRows = {}, chartViews = {}, alarmRows = {};

// ---- formatting -----------------------------------------------------------------------------------------

function fmt(value, unit) {
  if (value === null || value === undefined) return "-";
  if (typeof value === "number") {
    const abs = Math.abs(value);
    const text = abs >= 1000 ? value.toFixed(0) : abs >= 100 ? value.toFixed(1) : abs >= 1 ? value.toFixed(2)
      : value.toPrecision(3);
    return unit ? `${Number(text)} ${unit}` : `${Number(text)}`;
  }
  return unit ? `${value} ${unit}` : `${value}`;
}
const val = (name) => (last && name in last.values ? last.values[name] : null);
const quality = (name) => (last && last.quality[name]) || "GOOD";
const range = (d) => (d.min === null && d.max === null) ? (d.values.length ? d.values.join(", ") : "")
  : `${d.min ?? ""} .. ${d.max ?? ""}`;

// ---- navigation -----------------------------------------------------------------------------------------

function show() {
  const page = (location.hash || "#overview").slice(1);
  for (const section of document.querySelectorAll("main > section")) section.classList.toggle("shown", section.id === page);
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.hash === `#${page}`);
  if (page === "trends") loadTrends();
  if (page === "alarms") loadJournal();
  if (page === "charts") loadWhy();
}
window.addEventListener("hashchange", show);

function notice(text, refused) {
  const box = $("#notice");
  box.textContent = text;
  box.className = refused ? "refused" : "";
  box.hidden = false;
}

// ---- writes ---------------------------------------------------------------------------------------------

async function post(path, body, what) {
  const response = await fetch(path, {
    method: "POST", headers: {"Content-Type": "application/json", "X-Battplc-Token": $("#token").value},
    body: JSON.stringify(body),
  });
  let answer;
  try { answer = await response.json(); } catch { answer = {reason: `HTTP ${response.status}`}; }
  if (!response.ok) { notice(`Refused: ${what}: ${answer.reason}`, true); return null; }
  return answer;
}

async function writeTag(name, value) {
  const answer = await post("/api/write", {tag: name, value}, `${name} = ${value}`);
  if (answer) notice(`${name} = ${answer.value} written; it lands at the next scan`, false);
}

async function alarmAction(name, action, seconds) {
  const answer = await post("/api/alarm", {alarm: name, action, seconds}, `${action} ${name}`);
  if (answer) { notice(`alarm ${name}: ${action} done`, false); loadJournal(); }
}

// ---- building the pages once ------------------------------------------------------------------------------

function build() {
  $("#token").value = sessionStorage.getItem("battplc-token") || "";
  $("#token").onchange = (e) => sessionStorage.setItem("battplc-token", e.target.value);
  const body = $("#tag-table tbody");
  for (const d of meta.tags) {
    defs[d.name] = d;
    const value = el("td", {class: "num"}), q = el("td");
    const row = el("tr", {"data-name": d.name}, el("td", {}, d.name), value, el("td", {}, d.unit), q,
      el("td", {}, d.description));
    row.dataset.search = `${d.name} ${d.unit} ${d.description}`.toLowerCase();
    rows[d.name] = {row, value, q};
    body.append(row);
    if (d.writable && d.name.startsWith("par.")) buildParam(d);
  }
  $("#filter").oninput = (e) => {
    const words = e.target.value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const {row} of Object.values(rows)) row.hidden = !words.every((w) => row.dataset.search.includes(w));
  };
  const table = $("#overview-table");
  for (const name of meta.overview) {
    const cell = el("td", {class: "num", id: `ov-${name}`});
    table.append(el("tr", {}, el("td", {}, defs[name].description || name), cell));
  }
  if (meta.mode) {
    for (const mode of defs[meta.mode].values) {
      $("#mode-buttons").append(el("button", {"data-mode": mode, onclick: () => writeTag(meta.mode, mode)}, mode));
    }
  }
  for (const chart of meta.charts) {
    const img = el("img", {alt: `chart ${chart.name}`}), why = el("div", {class: "why"});
    $("#chart-list").append(el("div", {class: "chart", id: `chart-${chart.name}`}, img, why));
    chartViews[chart.name] = {img, why, step: undefined};
    $("#steps").append(el("tr", {}, el("td", {}, chart.name), el("td", {id: `step-${chart.name}`}, "-"),
      el("td", {class: "num", id: `steptime-${chart.name}`})));
  }
  const kb = Math.round(meta.trend_bytes / 1024);
  $("#trend-hint").textContent = `Last 24 h, one point per ${meta.trend_period} s kept in the controller's memory ` +
    `(${kb} kB, fixed); shown one point per minute.`;
  document.body.classList.toggle("readonly", !meta.writes.enabled);
  $("#write-hint").textContent = meta.writes.enabled
    ? "Writes are enabled: enter the write token (top right) once; each write is checked like a Modbus write."
    : `Read-only: ${meta.writes.why_not}.`;
  flowBoxes();
}

function buildParam(d) {
  const current = el("td", {class: "num"});
  const input = el("input", {type: "number", step: "any", "data-name": d.name});
  const button = el("button", {onclick: () => writeTag(d.name, Number(input.value))}, "set");
  input.onkeydown = (e) => { if (e.key === "Enter") button.click(); };
  $("#param-table tbody").append(el("tr", {"data-name": d.name}, el("td", {}, d.name), current,
    el("td", {}, range(d)), el("td", {}, d.unit), el("td", {class: "write"}, input, " ", button),
    el("td", {}, d.description)));
  paramRows[d.name] = current;
}

// ---- overview: power flows ----------------------------------------------------------------------------------

const NODES = {pv: [210, 30, "PV", "pv.power"], grid: [60, 130, "Grid", "grid.power"],
  house: [360, 130, "House", "house.power"], battery: [210, 230, "Battery", "bat.power"]};

function flowBoxes() {
  const svg = $("#flow"), ns = "http://www.w3.org/2000/svg";
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  for (const [key, [x, y]] of Object.entries(NODES)) add("line", {id: `line-${key}`, x1: x, y1: y, x2: 210, y2: 130});
  add("circle", {cx: 210, cy: 130, r: 6, fill: "#546e7a"});
  for (const [key, [x, y, label]] of Object.entries(NODES)) {
    add("rect", {class: "box", x: x - 50, y: y - 24, width: 100, height: 48, rx: 6});
    add("text", {x, y: y - 5}, label);
    add("text", {x, y: y + 13, class: "val", id: `flow-${key}`}, "-");
  }
}

function flows() {
  for (const [key, [, , , tag]] of Object.entries(NODES)) {
    const power = val(tag);
    const text = $(`#flow-${key}`), line = $(`#line-${key}`);
    if (!text) continue;
    let label = fmt(power, "W");
    if (key === "grid" && typeof power === "number") label += power >= 0 ? " in" : " out";
    if (key === "battery" && typeof power === "number") label += power >= 0 ? " chg" : " dis";
    text.textContent = label;
    line.classList.toggle("on", typeof power === "number" && Math.abs(power) > FLOW_MIN_W);
  }
}

// ---- live update ------------------------------------------------------------------------------------------

function update(message) {
  last = message;
  lastAt = Date.now();
  setLink(true);
  $("#clock").textContent = message.at;
  const soc = val("bat.soc");
  $("#soc-bar").style.width = `${Math.max(0, Math.min(100, soc ?? 0))}%`;
  $("#soc-text").textContent = `SoC ${fmt(soc, "%")}`;
  for (const name of meta.overview) $(`#ov-${CSS.escape(name)}`).textContent = fmt(val(name), defs[name].unit);
  flows();
  if (meta.mode) {
    const mode = val(meta.mode);
    $("#mode").textContent = mode;
    for (const b of document.querySelectorAll("#mode-buttons button")) b.classList.toggle("current", b.dataset.mode === mode);
  }
  for (const [name, {row, value, q}] of Object.entries(rows)) {
    const quality_ = quality(name);
    value.textContent = fmt(val(name));
    if (q.textContent !== quality_) { q.textContent = quality_; q.className = `q-${quality_}`; row.className = `q-${quality_}`; }
  }
  for (const [name, cell] of Object.entries(paramRows)) cell.textContent = fmt(val(name));
  for (const c of message.charts) chartStep(c);
  if (location.hash === "#charts") loadWhy();
  alarms(message.alarms);
}

function setLink(live) {
  const link = $("#link");
  link.textContent = live ? "live" : "stale: reconnecting";
  link.classList.toggle("stale", !live);
  document.body.classList.toggle("stale", !live);
}

function chartStep(c) {
  const view = chartViews[c.chart];
  if (!view) return;
  $(`#step-${c.chart}`).textContent = c.step ?? "-";
  $(`#steptime-${c.chart}`).textContent = c.since_s === null ? "" : `${Math.round(c.since_s)} s`;
  if (view.step !== c.step) {
    view.step = c.step;
    view.img.src = `/api/chart/${encodeURIComponent(c.chart)}.svg` + (c.step ? `?step=${encodeURIComponent(c.step)}` : "");
  }
}

let whyBusy = false;
async function loadWhy() { // only while the charts page is shown: the server explains once per sample
  if (whyBusy) return;
  whyBusy = true;
  try {
    for (const why of await (await fetch("/api/why")).json()) chartWhy(why);
  } finally { whyBusy = false; }
}

function chartWhy(why) {
  const view = chartViews[why.chart];
  if (!view) return;
  const root = el("div", {}, el("h2", {}, `${why.chart}: ${why.step ?? "-"}`), el("p", {class: "hint"}, why.description));
  if (why.enabled) root.append(el("div", {}, "enabled when: "), tree([why.enabled]));
  for (const t of why.transitions) {
    const head = el("div", {}, el("b", {}, `${t.label} -> ${t.target}: `), word(t.condition.result));
    root.append(head, tree(t.condition.parts.length ? t.condition.parts : [t.condition]));
  }
  if (!why.transitions.length) root.append(el("p", {class: "hint"}, "no transition leaves this step"));
  view.why.replaceChildren(root);
}

const word = (result) => el("span", {class: result === null ? "unknown" : String(result)},
  result === null ? "unknown" : String(result));

function tree(parts) {
  const list = el("ul");
  for (const part of parts) {
    const item = el("li", {}, el("code", {}, part.text), " ");
    if (part.shown) item.append(el("span", {class: "hint"}, `(${part.shown}) `));
    item.append(word(part.result));
    if (part.parts.length) item.append(tree(part.parts));
    list.append(item);
  }
  return list;
}

function alarms(states) {
  const body = $("#alarm-table tbody");
  let standing = 0, changed = false;
  for (const a of states) {
    if (["active-unacknowledged", "active-acknowledged", "returned-unacknowledged"].includes(a.state)) standing++;
    let row = alarmRows[a.name];
    if (!row) {
      const actions = el("td", {class: "write"},
        el("button", {onclick: () => alarmAction(a.name, "acknowledge")}, "acknowledge"), " ",
        el("button", {onclick: () => alarmAction(a.name, "shelve", 3600)}, "shelve 1 h"), " ",
        el("button", {onclick: () => alarmAction(a.name, "unshelve")}, "unshelve"));
      row = alarmRows[a.name] = {state: el("td"), condition: el("td"), raised: el("td", {class: "num"}), seen: null};
      body.append(el("tr", {"data-alarm": a.name}, el("td", {}, a.name), row.state, row.condition, row.raised,
        el("td", {}, a.description), actions));
    }
    if (row.seen !== a.state) { changed = row.seen !== null; row.seen = a.state; }
    row.state.textContent = a.state;
    row.state.className = `state-${a.state}`;
    row.condition.textContent = a.condition ? "true" : "false";
    row.raised.textContent = a.raised;
  }
  const badge = $("#alarm-count");
  badge.textContent = standing;
  badge.classList.toggle("on", standing > 0);
  if (changed && location.hash === "#alarms") loadJournal();
}

async function loadJournal() {
  const entries = await (await fetch("/api/journal")).json();
  $("#journal tbody").replaceChildren(...entries.map((e) => el("tr", {}, el("td", {}, e.at), el("td", {}, e.alarm),
    el("td", {}, e.from), el("td", {}, e.to), el("td", {}, e.by))));
}

// ---- trends ---------------------------------------------------------------------------------------------

async function loadTrends() {
  const data = await (await fetch("/api/trends?every=60")).json();
  const list = $("#trend-list");
  list.replaceChildren();
  for (const name of meta.trend_tags) list.append(trend(name, data.t, data[name]));
}

function trend(name, times, values) {
  const W = 460, H = 130, L = 48, B = 16, ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const points = times.map((t, i) => [t, values[i]]).filter(([, v]) => v !== null);
  const text = (x, y, s, anchor = "end") => {
    const node = document.createElementNS(ns, "text");
    Object.entries({x, y, "text-anchor": anchor}).forEach(([k, v]) => node.setAttribute(k, v));
    node.textContent = s;
    svg.append(node);
  };
  if (points.length > 1) {
    const t0 = points[0][0], t1 = points[points.length - 1][0];
    let lo = Math.min(...points.map((p) => p[1])), hi = Math.max(...points.map((p) => p[1]));
    if (hi === lo) { hi += 1; lo -= 1; }
    const x = (t) => L + (W - L - 4) * (t - t0) / Math.max(1, t1 - t0), y = (v) => 4 + (H - B - 8) * (hi - v) / (hi - lo);
    let segment = []; // a gap (a value that was not GOOD) breaks the line
    const flush = () => {
      if (segment.length) {
        const line = document.createElementNS(ns, "polyline");
        line.setAttribute("points", segment.join(" "));
        svg.append(line);
      }
      segment = [];
    };
    times.forEach((t, i) => {
      if (values[i] === null) flush(); else segment.push(`${x(t).toFixed(1)},${y(values[i]).toFixed(1)}`);
    });
    flush();
    text(L - 4, 12, fmt(hi)); text(L - 4, H - B, fmt(lo));
    text(L, H - 2, `-${((t1 - t0) / 3600).toFixed(1)} h`, "start"); text(W - 4, H - 2, "now");
  } else {
    text(W / 2, H / 2, "collecting: the first points come within a minute", "middle");
  }
  const d = defs[name];
  return el("div", {class: "trend"}, el("div", {}, `${d.description || name} (${name}, ${d.unit})`), svg);
}

// ---- connection -------------------------------------------------------------------------------------------

function connect() {
  source = new EventSource("/api/events");
  source.onmessage = (e) => update(JSON.parse(e.data));
  source.onerror = () => setLink(false); // EventSource reconnects by itself (retry: 2 s)
}
setInterval(() => {
  if (Date.now() - lastAt > STALE_AFTER_MS) {
    setLink(false);
    if (source && source.readyState === EventSource.CLOSED) connect();
  }
  if (location.hash === "#trends" && Date.now() % 60000 < 1000) loadTrends();
}, 1000);

async function start() {
  try {
    meta = await (await fetch("/api/meta")).json();
  } catch {
    setLink(false);
    setTimeout(start, 2000);
    return;
  }
  build();
  show();
  connect();
}
start();
