// The city's public Wi-Fi, as the operations room shows it: for a district (or the whole city), the
// last seven site days — clients per access point, data carried, availability — the busiest places,
// and the access points that were up all evening serving no one (a dead radio behind a live link?).
import { api } from "./api.js";
import { lineChart } from "./charts.js";
import { el } from "./dom.js";
import { number, t } from "./i18n.js";

const $ = (id) => document.getElementById(id);

/** Every group an access point is in, and the groups above it: the city, its districts, streets. */
export function wifiGroups(features) {
  const groups = new Set();
  for (const f of features) {
    if (f.properties.kind !== "access_point") continue;
    const parts = f.properties.group.split("/");
    for (let i = 1; i <= parts.length; i += 1) groups.add(parts.slice(0, i).join("/"));
  }
  return [...groups].sort((a, b) => a.split("/").length - b.split("/").length || a.localeCompare(b));
}

export class WifiPanel {
  constructor({ onError }) {
    this.onError = onError;
    this.shownGroups = "";
    $("wifi-group").addEventListener("change", () => this.show().catch(onError));
  }

  fillGroups(groups) {
    $("wifi").hidden = groups.length === 0;
    const key = groups.join("|");
    if (!groups.length || key === this.shownGroups) return;
    this.shownGroups = key;
    const select = $("wifi-group");
    const previous = select.value;
    select.replaceChildren(...groups.map((g) => el("option", { value: g }, g)));
    if (groups.includes(previous)) select.value = previous;
    this.show().catch(this.onError);
  }

  async show() {
    const group = $("wifi-group").value;
    if (!group) return;
    const r = await api(`/api/v1/wifi?${new URLSearchParams({ group, every: "1d" })}`);
    $("wifi-summary").textContent = t("wifi.summary", {
      aps: r.access_points,
      available: r.availability_pct === null ? "—" : number(r.availability_pct),
      mean: number(r.mean_clients),
      peak: r.peak_clients ?? "—",
      data: number(r.data_mb / 1000),
    });
    // per day: mean clients per access point, over the access points that reported
    const days = r.per_access_point.length ? r.per_access_point[0].windows.map((w) => w.start) : [];
    const points = days.map((start, i) => {
      const means = r.per_access_point.map((a) => a.windows[i].mean_clients).filter((v) => v !== null);
      return { t: new Date(start), a: means.length ? means.reduce((x, y) => x + y, 0) / means.length : undefined };
    });
    if (days.length) {
      lineChart($("wifi-chart"), points, { from: new Date(r.start), to: new Date(r.end), labelA: t("wifi.clients") });
    }
    const byId = new Map(r.per_access_point.map((a) => [a.device_id, a]));
    $("wifi-busiest").replaceChildren(...r.busiest.slice(0, 5).map((id) => el("li", {}, t("wifi.place", { id, mean: number(byId.get(id).mean_clients), peak: byId.get(id).peak_clients ?? "—" }))));
    $("wifi-idle").textContent = r.idle_in_the_evening.length ? t("wifi.idle", { list: r.idle_in_the_evening.join(", ") }) : "";
  }
}
