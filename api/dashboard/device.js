// The device panel: values with names and units, switch and dim (for roles allowed to), the
// command history, a chart over a chosen range and its CSV export.
import { api } from "./api.js";
import { lineChart } from "./charts.js";
import { el } from "./dom.js";
import { dayTime, explain, has, number, place, t } from "./i18n.js";

const PREFERRED = ["dim_level_pct", "power_w", "pm2_5_ugm3", "clients", "temperature_c"];

let units = {};

/** A field's name in the operator's language; a field a profile declared: its name and unit. */
export function fieldName(field) {
  if (has(`field.${field}`)) return t(`field.${field}`);
  const unit = units[field];
  return unit && unit !== "bool" && unit !== "text" ? `${field} (${unit})` : field;
}

export class DevicePanel {
  constructor({ can, onError, onCommanded }) {
    this.can = can;
    this.onError = onError;
    this.onCommanded = onCommanded;
    this.id = null;
    this.feature = null;
    this.chartRows = [];
    document.getElementById("chart-range").addEventListener("change", () => this.show().catch(onError));
    document.getElementById("chart-csv").addEventListener("click", () => this.csv());
    document.getElementById("cmd-on").addEventListener("click", () => this.command({ action: "switch", value: true }));
    document.getElementById("cmd-off").addEventListener("click", () => this.command({ action: "switch", value: false }));
    document.getElementById("cmd-dim").addEventListener("click", () => this.command({ action: "set_level", value: this.level() }));
    document.getElementById("cmd-dim-group").addEventListener("click", () => this.command({ action: "set_level", value: this.level() }, true));
  }

  level() {
    return Math.max(0, Math.min(100, Math.round(Number(document.getElementById("cmd-level").value) || 0)));
  }

  async select(id, feature) {
    this.id = id;
    this.feature = feature;
    document.getElementById("cmd-result").textContent = "";
    await this.show();
  }

  async show() {
    if (!this.id) {
      document.getElementById("device-title").textContent = t("device.pick");
      return;
    }
    const id = this.id;
    const detail = await api(`/api/v1/devices/${encodeURIComponent(id)}`);
    units = detail.units || {};
    const p = this.feature ? this.feature.properties : { state: "unknown" };
    document.getElementById("device-title").textContent = `${id} — ${t(`kind.device.${detail.kind}`)}, ${t(`look.${p.look || p.state}`)} · ${detail.group}`;
    const values = detail.last_reading ? detail.last_reading.values : {};
    document.getElementById("device-values").replaceChildren(...Object.entries(values).map(([k, v]) => {
      const row = el("div");
      const shown = typeof v === "boolean" ? t(v ? "value.yes" : "value.no") : typeof v === "number" ? number(v, 2) : v;
      row.append(el("dt", {}, fieldName(k)), el("dd", {}, shown));
      return row;
    }));
    document.getElementById("device-commands").hidden = !(this.can("operate") && detail.kind === "lamp");
    this.group = detail.group;
    document.getElementById("cmd-dim-group").textContent = t("device.dim_group", { group: detail.group.split("/").pop() });
    await Promise.all([this.chart(id), this.history(id)]);
  }

  async chart(id) {
    const hours = Number(document.getElementById("chart-range").value);
    const to = new Date();
    const from = new Date(to.getTime() - hours * 3600 * 1000);
    const every = hours <= 6 ? "2m" : hours <= 24 ? "10m" : "1h";
    const query = new URLSearchParams({ from: from.toISOString(), to: to.toISOString(), every, limit: "1000" });
    const history = await api(`/api/v1/devices/${encodeURIComponent(id)}/telemetry?${query}`);
    const numeric = history.fields.filter((f) => history.points.some((p) => typeof p.values[f] === "number"));
    const first = PREFERRED.find((f) => numeric.includes(f)) || numeric[0];
    const second = PREFERRED.find((f) => numeric.includes(f) && f !== first);
    this.chartRows = history.points.map((p) => [p.ts, p.values[first], second ? p.values[second] : undefined]);
    this.chartFields = [first, second].filter(Boolean);
    document.getElementById("chart-csv").disabled = !this.chartRows.length;
    lineChart(document.getElementById("device-chart"), history.points.map((p) => ({ t: new Date(p.ts), a: p.values[first], b: second ? p.values[second] : undefined })), {
      from, to, labelA: first ? fieldName(first) : t("device.no_telemetry"), labelB: second ? fieldName(second) : undefined,
    });
  }

  async history(id) {
    const page = await api(`/api/v1/devices/${encodeURIComponent(id)}/commands?limit=10`);
    const items = page.items.map((c) => el("li", {}, `${dayTime(c.created_at)} · ${t(`command.${c.action}`, { value: commandValue(c) })} · ${t(`command.origin.${c.origin}`)} · ${t(`command.status.${c.status}`)}`));
    if (!items.length) items.push(el("li", { class: "muted" }, t("device.no_commands")));
    document.getElementById("command-history").replaceChildren(...items);
  }

  /** What the chart shows, as CSV: times in the site's zone (ISO, with offset) and the values. */
  csv() {
    const header = ["time", ...this.chartFields.map(fieldName)];
    const rows = this.chartRows.map(([ts, a, b]) => [localIso(ts), a ?? "", ...(this.chartFields.length > 1 ? [b ?? ""] : [])]);
    const text = [header, ...rows].map((r) => r.map(csvCell).join(",")).join("\r\n");
    const link = el("a", { href: URL.createObjectURL(new Blob(["\ufeff", text], { type: "text/csv" })), download: `${this.id}.csv` });
    document.body.append(link);
    link.click();
    link.remove();
  }

  async command(body, group = false) {
    const out = document.getElementById("cmd-result");
    out.textContent = t("command.sending");
    try {
      if (group) {
        const answer = await api(`/api/v1/groups/${this.group.split("/").map(encodeURIComponent).join("/")}/commands`, { method: "POST", body });
        out.textContent = t("command.group_done", { ok: answer.by_status.confirmed || 0, total: answer.total, group: answer.group });
      } else {
        const answer = await api(`/api/v1/devices/${encodeURIComponent(this.id)}/commands`, { method: "POST", body });
        out.textContent = t(`command.status.${answer.status}`);
      }
      await this.onCommanded();
      await this.history(this.id);
    } catch (err) {
      out.textContent = explain(err);
      this.onError(err);
    }
  }
}

function commandValue(c) {
  if (c.action === "switch") return t(c.value ? "value.on" : "value.off");
  return `${c.value} %`;
}

function csvCell(v) {
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

function localIso(ts) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-CA", {
    timeZone: place.timeZone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "longOffset",
  }).formatToParts(new Date(ts)).map((p) => [p.type, p.value]));
  const offset = parts.timeZoneName === "GMT" ? "+00:00" : parts.timeZoneName.replace("GMT", "");
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}:${parts.second}${offset}`;
}
