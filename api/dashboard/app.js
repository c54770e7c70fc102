// Lamplighter dashboard: plain JavaScript and SVG, no libraries, nothing fetched from the internet.
// Every value from the API is put on the page as text (textContent), never as markup.
"use strict";

const TOKEN_KEY = "lamplighter.token";
const REFRESH_MS = 5000;
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
const state = { me: null, features: [], selected: null, timer: null, groupsShown: "" };

// ---- API access -------------------------------------------------------------------------------
class Unauthorized extends Error {}

async function api(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { ...(options.headers || {}) };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    ...options,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  if (response.status === 401) throw new Unauthorized("log in again");
  if (response.status === 204) return null;
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `HTTP ${response.status}`;
    throw new Error(message);
  }
  return body;
}

function can(permission) {
  return Boolean(state.me && state.me.permissions.includes(permission));
}

// ---- small DOM helpers ------------------------------------------------------------------------
function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

const fmt = (v, digits = 1) => (v === null || v === undefined ? "—" : Number(v).toFixed(digits));
const hhmm = (iso) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

// ---- login ------------------------------------------------------------------------------------
function showLogin(message = "") {
  clearInterval(state.timer);
  sessionStorage.removeItem(TOKEN_KEY);
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
}

async function onLogin(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const answer = await api("/api/v1/auth/login", {
      method: "POST",
      body: { username: $("login-user").value, password: $("login-password").value },
    });
    sessionStorage.setItem(TOKEN_KEY, answer.access_token);
    $("login-password").value = "";
    await start();
  } catch (err) {
    $("login-error").textContent = err instanceof Unauthorized ? "wrong user or password" : err.message;
  }
}

async function start() {
  state.me = await api("/api/v1/auth/me");
  $("who").textContent = `${state.me.name} (${state.me.role})`;
  $("login").hidden = true;
  $("app").hidden = false;
  $("override-form").hidden = !can("schedules");
  await refresh();
  clearInterval(state.timer);
  state.timer = setInterval(() => refresh().catch(handle), REFRESH_MS);
}

function handle(err) {
  if (err instanceof Unauthorized) showLogin("your session ended: log in again");
  else console.error(err);
}

// ---- periodic refresh -------------------------------------------------------------------------
async function refresh() {
  const [kpis, geo, alerts, overrides] = await Promise.all([
    api("/api/v1/kpis"),
    api("/api/v1/geojson"),
    api("/api/v1/alerts?state=open&limit=200"),
    api("/api/v1/overrides"),
  ]);
  renderKpis(kpis);
  state.features = geo.features;
  renderMap();
  renderAlerts(alerts);
  renderOverrides(overrides);
  fillGroups();
  if (state.selected) await showDevice(state.selected).catch(handle);
  $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

function renderKpis(k) {
  const faults = Object.values(k.faults_open).reduce((a, b) => a + b, 0);
  const tiles = [
    ["Lamps", k.lamps.total, "kpi-lamps"],
    ["Available", `${fmt(k.lamps.available_pct)} %`, "kpi-available", k.lamps.available_pct !== null && k.lamps.available_pct < 95],
    ["Lit now", k.lamps.lit_now, "kpi-lit"],
    ["Open faults", faults, "kpi-faults", faults > 0],
    ["MTTR", k.mttr_hours === null ? "—" : `${fmt(k.mttr_hours)} h`, "kpi-mttr"],
    ["Energy today", `${fmt(k.energy.today_kwh)} kWh`, "kpi-energy"],
    ["Saved today", `${fmt(k.energy.today_saving_pct)} %`, "kpi-saving"],
    ["Energy, month", `${fmt(k.energy.month_kwh, 0)} kWh`, "kpi-month"],
    ["Sensors up", `${fmt(k.sensors.up_pct)} %`, "kpi-sensors"],
    ["Wi-Fi APs up", `${fmt(k.access_points.up_pct)} %`, "kpi-aps"],
  ];
  const box = $("kpis");
  box.replaceChildren(
    ...tiles.map(([label, value, id, bad]) => {
      const tile = el("div", { class: bad ? "kpi bad" : "kpi", id });
      tile.append(el("div", { class: "value" }, value), el("div", { class: "label" }, label));
      return tile;
    }),
  );
}

// ---- map: positions on a plain background, no tiles needed -------------------------------------
function renderMap() {
  const map = $("map");
  const width = map.clientWidth || 900;
  const height = map.clientHeight || 500;
  map.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const points = state.features.filter((f) => f.geometry && f.geometry.coordinates);
  if (!points.length) {
    map.replaceChildren(svg("text", { x: 20, y: 30 }, "no devices with a position"));
    return;
  }
  const xs = points.map((f) => f.geometry.coordinates[0]);
  const ys = points.map((f) => f.geometry.coordinates[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const pad = 24;
  // One scale for both axes (with longitude shrunk by latitude) so the city keeps its shape.
  const kx = Math.cos(((y0 + y1) / 2) * (Math.PI / 180));
  const span = Math.max((x1 - x0) * kx, y1 - y0) || 1e-3;
  const scale = Math.min(width - 2 * pad, height - 2 * pad) / span;
  const cx = (width - (x1 - x0) * kx * scale) / 2;
  const cy = (height - (y1 - y0) * scale) / 2;
  const radius = points.length > 2000 ? 2.5 : points.length > 300 ? 4 : 7;
  const nodes = [];
  for (const f of points) {
    const [lon, lat] = f.geometry.coordinates;
    const x = cx + (lon - x0) * kx * scale;
    const y = height - (cy + (lat - y0) * scale);
    const p = f.properties;
    const dot = svg("circle", {
      cx: x.toFixed(1), cy: y.toFixed(1), r: radius,
      class: `${p.state}${f.id === state.selected ? " selected" : ""}`,
      "data-device": f.id, "data-state": p.state,
    });
    dot.append(svg("title", {}, `${f.id} — ${p.kind}, ${p.state}${p.alerts.length ? ", " + p.alerts.join(", ") : ""}`));
    dot.addEventListener("click", () => selectDevice(f.id));
    nodes.push(dot);
    if (p.alerts.length) nodes.push(svg("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: radius + 4, class: "alert-ring" }));
  }
  map.replaceChildren(...nodes);
}

// ---- alerts -----------------------------------------------------------------------------------
function renderAlerts(page) {
  $("alert-count").textContent = page.total ? String(page.total) : "";
  const items = page.items.map((a) => {
    const li = el("li", { class: `sev-${a.severity}`, "data-alert": a.id });
    const title = el("span", { class: "kind" }, `${a.kind} · ${a.device_id}`);
    li.append(title);
    if (a.state === "acknowledged") {
      li.append(el("span", { class: "muted" }, `ack ${a.acknowledged_by || ""}`));
    } else if (can("acknowledge")) {
      const button = el("button", { class: "small", type: "button" }, "Acknowledge");
      button.addEventListener("click", () => acknowledge(a.id, button));
      li.append(button);
    } else {
      li.append(el("span", { class: "muted" }, a.severity));
    }
    li.append(el("span", { class: "evidence" }, `${hhmm(a.raised_at)} — ${a.evidence}`));
    title.addEventListener("click", () => selectDevice(a.device_id));
    return li;
  });
  if (!items.length) items.push(el("li", { class: "muted" }, "no open alerts"));
  $("alerts").replaceChildren(...items);
}

async function acknowledge(id, button) {
  button.disabled = true;
  try {
    await api(`/api/v1/alerts/${id}/ack`, { method: "POST", body: {} });
    await refresh();
  } catch (err) {
    button.disabled = false;
    handle(err);
  }
}

// ---- device detail ----------------------------------------------------------------------------
async function selectDevice(id) {
  state.selected = id;
  renderMap();
  await showDevice(id).catch(handle);
}

async function showDevice(id) {
  const feature = state.features.find((f) => f.id === id);
  $("device-title").textContent = feature ? `${id} — ${feature.properties.kind}, ${feature.properties.state}` : id;
  const values = feature ? feature.properties.values : {};
  $("device-values").replaceChildren(
    ...Object.entries(values).map(([k, v]) => {
      const row = el("div");
      row.append(el("dt", {}, k), el("dd", {}, typeof v === "number" ? fmt(v, 2) : v));
      return row;
    }),
  );
  const to = new Date();
  const from = new Date(to.getTime() - 24 * 3600 * 1000);
  const query = new URLSearchParams({ from: from.toISOString(), to: to.toISOString(), every: "10m", limit: "1000" });
  const history = await api(`/api/v1/devices/${encodeURIComponent(id)}/telemetry?${query}`);
  const numeric = history.fields.filter((f) => history.points.some((p) => typeof p.values[f] === "number"));
  const preferred = ["dim_level_pct", "power_w", "pm2_5_ugm3", "clients", "temperature_c"];
  const first = preferred.find((f) => numeric.includes(f)) || numeric[0];
  const second = preferred.find((f) => numeric.includes(f) && f !== first);
  lineChart($("device-chart"), history.points.map((p) => ({ t: new Date(p.ts), a: p.values[first], b: second ? p.values[second] : undefined })), {
    from, to, labelA: first || "no telemetry yet", labelB: second,
  });
}

// ---- charts -----------------------------------------------------------------------------------
function lineChart(chart, points, { from, to, labelA, labelB, maxA, markers = [] }) {
  const width = chart.clientWidth || 500;
  const height = chart.clientHeight || 210;
  chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const [left, right, top, bottom] = [36, 10, 16, 22];
  const t0 = from.getTime();
  const t1 = to.getTime();
  const x = (t) => left + ((t.getTime() - t0) / (t1 - t0)) * (width - left - right);
  const nodes = [
    svg("line", { x1: left, y1: height - bottom, x2: width - right, y2: height - bottom, class: "axis" }),
    svg("line", { x1: left, y1: top, x2: left, y2: height - bottom, class: "axis" }),
  ];
  const series = (key, cls, max) => {
    const vals = points.map((p) => p[key]).filter((v) => typeof v === "number");
    if (!vals.length) return null;
    const top_ = max ?? Math.max(...vals, 1e-9);
    const y = (v) => height - bottom - (v / top_) * (height - top - bottom);
    const d = points
      .filter((p) => typeof p[key] === "number")
      .map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)}`)
      .join(" ");
    nodes.push(svg("path", { d, class: cls }));
    return top_;
  };
  const topA = series("a", "line", maxA);
  const topB = labelB ? series("b", "line2") : null;
  nodes.push(svg("text", { x: left + 4, y: 11 }, `${labelA}${topA !== null ? ` (max ${fmt(topA, 0)})` : ""}`));
  if (labelB && topB !== null) nodes.push(svg("text", { x: width - right - 4, y: 11, "text-anchor": "end" }, `${labelB} (max ${fmt(topB, 0)})`));
  for (let h = 0; h <= 24; h += 6) {
    const t = new Date(t0 + (h / 24) * (t1 - t0));
    nodes.push(svg("text", { x: x(t), y: height - 6, "text-anchor": "middle" }, hhmm(t)));
  }
  for (const m of markers) {
    const mx = x(new Date(m.at));
    nodes.push(svg("line", { x1: mx, y1: top, x2: mx, y2: height - bottom, class: "sun", "data-sun": m.event }));
    nodes.push(svg("text", { x: mx + 3, y: top + 10 }, `${m.event.replace("_", " ")} ${hhmm(m.at)}`));
  }
  chart.replaceChildren(...nodes);
}

// ---- schedule curve ---------------------------------------------------------------------------
function fillGroups() {
  const groups = [...new Set(state.features.filter((f) => f.properties.kind === "lamp").map((f) => f.properties.group))].sort();
  const key = groups.join("|");
  if (key === state.groupsShown) return;
  state.groupsShown = key;
  const select = $("group-select");
  const previous = select.value;
  select.replaceChildren(...groups.map((g) => el("option", { value: g }, g)));
  if (groups.includes(previous)) select.value = previous;
  if (!$("ov-group").value && groups.length) $("ov-group").value = groups[0];
  showSchedule().catch(handle);
}

async function showSchedule() {
  const group = $("group-select").value;
  if (!group) return;
  const from = new Date();
  from.setMinutes(0, 0, 0);
  const to = new Date(from.getTime() + 24 * 3600 * 1000);
  const query = new URLSearchParams({ group, from: from.toISOString(), to: to.toISOString(), every_min: "10" });
  let preview;
  try {
    preview = await api(`/api/v1/schedules/preview?${query}`);
  } catch (err) {
    if (err instanceof Unauthorized) throw err;
    $("schedule-energy").textContent = err.message; // e.g. no calendar for this group yet
    $("schedule-chart").replaceChildren();
    return;
  }
  $("schedule-energy").textContent = `${fmt(preview.energy_kwh)} kWh, ${fmt(preview.saving_pct)} % saved`;
  lineChart($("schedule-chart"), preview.points.map((p) => ({ t: new Date(p.at), a: p.level })), {
    from, to, labelA: "level %", maxA: 100, markers: preview.sun.filter((s) => s.event === "sunrise" || s.event === "sunset"),
  });
}

// ---- overrides --------------------------------------------------------------------------------
function renderOverrides(list) {
  const items = list.map((o) => {
    const li = el("li", { "data-override": o.id });
    const text = el("div");
    text.append(
      el("div", {}, `${o.id}: ${o.group || o.device_id} at ${o.level} % until ${new Date(o.expiry).toLocaleString()}`),
      el("div", { class: "reason" }, o.reason),
    );
    li.append(text);
    if (can("schedules")) {
      const edit = el("button", { class: "small quiet", type: "button" }, "Edit");
      edit.addEventListener("click", () => editOverride(o));
      const remove = el("button", { class: "small quiet", type: "button" }, "Remove");
      remove.addEventListener("click", () => removeOverride(o.id));
      li.append(edit, remove);
    }
    return li;
  });
  if (!items.length) items.push(el("li", { class: "muted" }, "no overrides"));
  $("overrides").replaceChildren(...items);
}

function editOverride(o) {
  $("ov-id").value = o.id;
  $("ov-group").value = o.group || "";
  $("ov-level").value = o.level;
  $("ov-hours").value = Math.max(0.25, (new Date(o.expiry) - Date.now()) / 3600000).toFixed(2);
  $("ov-reason").value = o.reason;
  $("ov-level").focus();
}

async function saveOverride(event) {
  event.preventDefault();
  $("override-error").textContent = "";
  const start = new Date();
  const expiry = new Date(start.getTime() + Number($("ov-hours").value) * 3600000);
  try {
    await api("/api/v1/overrides", {
      method: "POST",
      body: {
        id: $("ov-id").value,
        group: $("ov-group").value,
        level: Number($("ov-level").value),
        start: start.toISOString(),
        expiry: expiry.toISOString(),
        reason: $("ov-reason").value,
      },
    });
    await refresh();
    await showSchedule();
  } catch (err) {
    if (err instanceof Unauthorized) handle(err);
    else $("override-error").textContent = err.message;
  }
}

async function removeOverride(id) {
  await api(`/api/v1/overrides/${encodeURIComponent(id)}`, { method: "DELETE" }).catch(handle);
  await refresh().catch(handle);
  await showSchedule().catch(handle);
}

// ---- wiring -----------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", () => showLogin());
  $("override-form").addEventListener("submit", saveOverride);
  $("group-select").addEventListener("change", () => showSchedule().catch(handle));
  window.addEventListener("resize", () => renderMap());
  if (sessionStorage.getItem(TOKEN_KEY)) start().catch(() => showLogin());
  else showLogin();
});
