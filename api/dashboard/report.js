// The printable monthly report: the same figures as /api/v1/monthly-report, in the reader's
// language, with the dashboard's session; printing it to PDF makes the city's copy.
import { api, Unauthorized } from "./api.js";
import { barChart } from "./charts.js";
import { el } from "./dom.js";
import { chosenLanguage, explain, number, place, siteTime, t, translatePage, useLanguage } from "./i18n.js";

const $ = (id) => document.getElementById(id);

function table(id, head, rows) {
  const thead = el("thead");
  const tr = el("tr");
  for (const h of head) tr.append(el("th", {}, h));
  thead.append(tr);
  const tbody = el("tbody");
  for (const row of rows) {
    const line = el("tr");
    for (const cell of row) line.append(el("td", {}, cell));
    tbody.append(line);
  }
  $(id).replaceChildren(thead, tbody);
}

async function show() {
  const query = new URLSearchParams(location.search);
  await useLanguage(query.get("lang") || chosenLanguage());
  translatePage();
  query.set("format", "json");
  let r;
  try {
    r = await api(`/api/v1/monthly-report?${query}`);
  } catch (err) {
    $("report-state").textContent = err instanceof Unauthorized ? t("login.ended") : explain(err);
    return;
  }
  place.timeZone = r.timezone;
  const pct = (v) => (v === null ? "—" : `${number(v)} %`);
  const source = t(`report.source.${r.source}`) + (r.meters.length ? ` (${r.meters.join(", ")})` : "");
  table("summary", [t("report.group"), r.group], [
    [t("report.month"), r.month],
    [t("report.timezone"), r.timezone],
    [t("report.lamps"), String(r.lamps)],
    [t("report.source"), source],
    [t("report.column.kwh"), number(r.kwh)],
    [t("report.column.baseline_kwh"), number(r.baseline_kwh)],
    [t("report.column.saving_pct"), pct(r.saving_pct)],
    [t("report.column.burning_hours"), number(r.burning_hours)],
    [t("report.availability_pct"), pct(r.availability_pct)],
    [t("report.faults_raised"), String(r.faults_raised)],
    [t("report.mttr_hours"), r.mttr_hours === null ? "—" : number(r.mttr_hours)],
  ]);
  table(
    "days",
    ["day", "kwh", "baseline_kwh", "saving_pct", "burning_hours"].map((c) => t(`report.column.${c}`)),
    [
      ...r.days.map((d) => [d.day, number(d.kwh, 2), number(d.baseline_kwh, 2), pct(d.saving_pct), number(d.burning_hours)]),
      [t("report.total"), number(r.kwh, 2), number(r.baseline_kwh, 2), pct(r.saving_pct), number(r.burning_hours)],
    ],
  );
  table(
    "faults",
    ["kind", "raised", "cleared", "mttr_hours"].map((c) => t(`report.column.${c}`)),
    r.faults.map((f) => [t(`kind.${f.kind}`), String(f.raised), String(f.cleared), f.mttr_hours === null ? "—" : number(f.mttr_hours)]),
  );
  if (r.wifi) {
    const w = r.wifi;
    table("wifi", [t("report.wifi.access_points"), String(w.access_points)], [
      [t("report.wifi.peak_clients"), w.peak_clients === null ? "—" : String(w.peak_clients)],
      [t("report.wifi.mean_clients"), number(w.mean_clients)],
      [t("report.wifi.data_mb"), number(w.data_mb, 0)],
      [t("report.wifi.availability_pct"), pct(w.availability_pct)],
      [t("report.wifi.busiest"), w.busiest.join(", ") || "—"],
      [t("report.wifi.idle"), w.idle_in_the_evening.join(", ") || "—"],
    ]);
    $("wifi-section").hidden = false;
  }
  // each bar at noon of its site day: labelled with that day in the site's zone
  barChart($("days-chart"), r.days.map((d) => ({ start: siteTime(`${d.day}T12:00`).toISOString(), kwh: d.kwh, baseline_kwh: d.baseline_kwh })));
  document.title = `${t("report.title")} — ${r.group} ${r.month}`;
  $("report-state").textContent = "";
  document.body.dataset.ready = "yes";
}

document.addEventListener("DOMContentLoaded", () => {
  $("print").addEventListener("click", () => window.print());
  show().catch((err) => { $("report-state").textContent = explain(err); });
});
