// Lamplighter dashboard: the night shift's console. Loads the city once, then small changes every
// few seconds; texts in Vietnamese or English; every time in the site's zone.
import { AirPanel } from "./air.js";
import { AlertPanel } from "./alerts.js";
import { CalendarEditor } from "./calendars.js";
import { api, session, Unauthorized } from "./api.js";
import { DevicePanel } from "./device.js";
import { el, keepFocus } from "./dom.js";
import { chosenLanguage, clock, explain, number, place, t, translatePage, useLanguage } from "./i18n.js";
import { DeviceMap, legend } from "./map.js";
import { Reports } from "./reports.js";
import { SchedulePanel } from "./schedule.js";
import { WifiPanel, wifiGroups } from "./wifi.js";
import { Workbench } from "./workbench.js";

const REFRESH_MS = 5000;
const SOUND_KEY = "lamplighter.sound";
const $ = (id) => document.getElementById(id);
const state = { me: null, timer: null, seq: 0, map: null, kpis: null, features: [], overrides: [] };
const kiosk = new URLSearchParams(location.search).has("kiosk");

const can = (permission) => Boolean(state.me && state.me.permissions.includes(permission));
const alerts = new AlertPanel({ can, onDevice: (id) => pick(id, true), onError: handle });
const device = new DevicePanel({ can, onError: handle, onCommanded: () => refresh() });
const schedule = new SchedulePanel({ can, onError: handle, refresh: () => refresh() });
const chosenGroup = () => document.getElementById("group-select").value;
const calendars = new CalendarEditor({ can, onError: handle, group: chosenGroup, refresh: () => refresh().then(() => schedule.show()) });
const workbench = new Workbench({
  can, onError: handle, group: chosenGroup, refresh: () => refresh().then(() => schedule.show()), onPrograms: (programs) => calendars.setPrograms(programs),
});
const reports = new Reports({ group: chosenGroup, onError: handle });
const wifi = new WifiPanel({ onError: handle });
const air = new AirPanel({ onError: handle, map: () => state.map });

// ---- login ------------------------------------------------------------------------------------
function showLogin(messageKey = "") {
  clearInterval(state.timer);
  session.token = null;
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = messageKey ? t(messageKey) : "";
}

async function onLogin(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const answer = await api("/api/v1/auth/login", {
      method: "POST",
      body: { username: $("login-user").value, password: $("login-password").value },
    });
    session.token = answer.access_token;
    $("login-password").value = "";
    await start();
  } catch (err) {
    $("login-error").textContent = err instanceof Unauthorized ? t("login.wrong") : explain(err);
  }
}

function handle(err) {
  if (err instanceof Unauthorized) showLogin("login.ended");
  else console.error(err);
}

// ---- start: the frame, the map, the panels ----------------------------------------------------
async function start() {
  state.me = await api("/api/v1/auth/me");
  $("who").textContent = `${state.me.name} (${t(`role.${state.me.role}`)})`;
  $("login").hidden = true;
  $("app").hidden = false;
  $("override-form").hidden = !can("schedules");
  const [frame, geo] = await Promise.all([api("/api/v1/map"), api("/api/v1/geojson?values=false")]);
  if (frame.sites.length) place.timeZone = frame.sites[0].timezone;
  reports.showThisMonth();
  state.features = geo.features;
  if (!state.map) {
    state.map = new DeviceMap($("map"), frame, (id) => pick(id, false));
    window.lamplighter = { map: state.map.map, devices: state.map }; // for the browser console and the tests
  }
  await state.map.ready;
  state.map.load(geo.features);
  $("map").dataset.ready = "yes";
  state.seq = 0;
  fillLists();
  await refresh();
  if (!device.id) await device.show();
  await workbench.load();
  await calendars.load(workbench.programs);
  reports.link();
  clearInterval(state.timer);
  state.timer = setInterval(() => refresh().catch(handle), REFRESH_MS);
}

function fillLists() {
  const lampGroups = [...new Set(state.features.filter((f) => f.properties.kind === "lamp").map((f) => f.properties.group))].sort();
  const allGroups = [...new Set(state.features.map((f) => f.properties.group))].sort();
  schedule.fillGroups(lampGroups);
  schedule.fillDevices(state.features.filter((f) => f.properties.kind === "lamp").map((f) => f.id));
  alerts.fillFilters(KINDS, allGroups);
  wifi.fillGroups(wifiGroups(state.features));
  const names = [...allGroups, ...state.features.map((f) => f.id)];
  $("search-list").replaceChildren(...names.slice(0, 5000).map((n) => el("option", { value: n })));
}

const KINDS = [
  "lampFailure", "dayBurning", "cyclingLamp", "lampPowerTooHigh", "lampPowerTooLow", "supplyVoltageTooHigh",
  "supplyVoltageTooLow", "relayFault", "driverFault", "overTemperature", "communicationFailure",
  "sensorStale", "sensorOutOfRange", "accessPointOffline", "airQuality",
];

// ---- every few seconds: small changes only ----------------------------------------------------
async function refresh() {
  const [kpis, changes, overrides] = await Promise.all([
    api("/api/v1/kpis"),
    api(`/api/v1/geojson/changes?since=${state.seq}`),
    api("/api/v1/overrides"),
    alerts.refresh(),
  ]);
  state.seq = changes.seq;
  state.map.update(changes.devices);
  state.kpis = kpis;
  state.overrides = overrides;
  renderKpis(kpis);
  schedule.renderOverrides(overrides);
  air.refresh().catch(handle);
  if (device.id && changes.devices[device.id]) await device.show().catch(handle);
  $("updated").textContent = t("top.updated", { time: clock(new Date()) });
}

function renderKpis(k) {
  const faults = Object.values(k.faults_open).reduce((a, b) => a + b, 0);
  const pct = (v) => (v === null ? t("kpi.no_data") : `${number(v)} %`);
  const tiles = [
    ["lamps", k.lamps.total],
    ["available", pct(k.lamps.available_pct), k.lamps.available_pct !== null && k.lamps.available_pct < 95],
    ["lit", k.lamps.lit_now],
    ["faults", faults, faults > 0],
    ["mttr", k.mttr_hours === null ? t("kpi.no_data") : `${number(k.mttr_hours)} h`],
    ["energy_today", k.energy.today_kwh === null ? t("kpi.no_data") : `${number(k.energy.today_kwh)} kWh`],
    ["saved_today", pct(k.energy.today_saving_pct)],
    ["energy_month", k.energy.month_kwh === null ? t("kpi.no_data") : `${number(k.energy.month_kwh, 0)} kWh`],
    ["sensors", pct(k.sensors.up_pct)],
    ["aps", pct(k.access_points.up_pct)],
    ["wifi_clients", k.access_points.clients_now === null ? t("kpi.no_data") : k.access_points.clients_now],
  ];
  keepFocus($("kpis"), () => $("kpis").replaceChildren(...tiles.map(([name, value, bad]) => {
    const tile = el("div", { class: bad ? "kpi bad" : "kpi", id: `kpi-${name}`, title: t(`kpi.${name}.hint`), tabindex: "0", "data-focus-key": `kpi:${name}` });
    tile.append(el("div", { class: "value" }, value), el("div", { class: "label" }, t(`kpi.${name}`)));
    return tile;
  })));
}

// ---- picking a device: map click, search, an alert's device -----------------------------------
async function pick(id, moveMap) {
  const feature = state.map.byId.get(id);
  state.map.select(id);
  if (moveMap) state.map.flyTo(id);
  await device.select(id, feature).catch(handle);
}

function search(event) {
  event.preventDefault();
  const text = $("search").value.trim().toLowerCase();
  $("search-error").textContent = "";
  if (!text) return;
  const exact = state.features.find((f) => f.id.toLowerCase() === text);
  if (exact) return pick(exact.id, true);
  const group = state.features.filter((f) => f.properties.group.toLowerCase() === text || f.properties.group.toLowerCase().endsWith(`/${text}`));
  if (group.length) return state.map.fitTo(group);
  const partial = state.features.find((f) => f.id.toLowerCase().includes(text));
  if (partial) return pick(partial.id, true);
  $("search-error").textContent = t("map.not_found", { text: $("search").value });
}

// ---- language, sound, kiosk --------------------------------------------------------------------
async function changeLanguage() {
  await useLanguage($("language").value);
  legend($("legend"));
  if (state.me) {
    $("who").textContent = `${state.me.name} (${t(`role.${state.me.role}`)})`;
    fillLists();
    if (state.kpis) renderKpis(state.kpis);
    schedule.renderOverrides(state.overrides);
    await alerts.refresh(true).catch(handle);
    await device.show().catch(handle);
    await schedule.show().catch(handle);
    workbench.render();
    await workbench.check().catch(handle);
    await workbench.history().catch(handle);
    calendars.render();
    await calendars.check().catch(handle);
    await wifi.show().catch(handle);
    air.render();
    await air.chart().catch(handle);
    reports.link();
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  if (kiosk) document.body.classList.add("kiosk");
  $("language").value = chosenLanguage();
  await useLanguage($("language").value);
  legend($("legend"));
  $("sound").checked = localStorage.getItem(SOUND_KEY) === "on";
  $("sound").addEventListener("change", () => localStorage.setItem(SOUND_KEY, $("sound").checked ? "on" : "off"));
  $("language").addEventListener("change", () => changeLanguage().catch(handle));
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", () => showLogin());
  $("search-form").addEventListener("submit", search);
  $("group-select").addEventListener("change", () => {
    reports.link();
    workbench.check().catch(handle);
    calendars.check().catch(handle);
  });
  translatePage();
  if (session.token) start().catch(() => showLogin());
  else showLogin();
});
