// The selected group's next 24 h (level curve, sun events, energy) and the overrides.
import { api, Unauthorized } from "./api.js";
import { barChart, lineChart } from "./charts.js";
import { el, keepFocus } from "./dom.js";
import { dayTime, explain, number, siteTime, t } from "./i18n.js";

export class SchedulePanel {
  constructor({ can, onError, refresh }) {
    this.can = can;
    this.onError = onError;
    this.refreshAll = refresh;
    this.groupsShown = "";
    document.getElementById("override-form").addEventListener("submit", (e) => this.save(e));
    document.getElementById("group-select").addEventListener("change", () => {
      this.show().catch(onError);
      this.energy().catch(onError);
    });
  }

  fillGroups(groups) {
    const key = groups.join("|");
    if (key === this.groupsShown) return;
    this.groupsShown = key;
    for (const id of ["group-select", "ov-group"]) {
      const select = document.getElementById(id);
      const previous = select.value;
      select.replaceChildren(...groups.map((g) => el("option", { value: g }, g)));
      if (groups.includes(previous)) select.value = previous;
    }
    this.show().catch(this.onError);
    this.energy().catch(this.onError);
  }

  async show() {
    const group = document.getElementById("group-select").value;
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
      // e.g. no calendar for this group yet: said in words, the API's detail beside it
      document.getElementById("schedule-energy").textContent = explain(err);
      document.getElementById("schedule-chart").replaceChildren();
      return;
    }
    document.getElementById("schedule-energy").textContent = preview.saving_pct === null
      ? t("schedule.energy_no_baseline", { kwh: number(preview.energy_kwh) })
      : t("schedule.energy", { kwh: number(preview.energy_kwh), saved: number(preview.saving_pct) });
    lineChart(document.getElementById("schedule-chart"), preview.points.map((p) => ({ t: new Date(p.at), a: Math.max(0, p.level) })), {
      from, to, labelA: t("schedule.level"), maxA: 100, markers: preview.sun.filter((s) => s.event === "sunrise" || s.event === "sunset"),
    });
  }

  /** The group's energy, last 7 days (site days), against its full-power baseline. */
  async energy() {
    const group = document.getElementById("group-select").value;
    if (!group) return;
    const report = await api(`/api/v1/energy?${new URLSearchParams({ group, every: "1d", per_lamp: "false" })}`);
    const total = document.getElementById("energy-total");
    total.textContent = report.kwh > 0
      ? t("energy.total", { kwh: number(report.kwh), saved: report.saving_pct === null ? "—" : number(report.saving_pct) })
      : t("kpi.no_data");
    barChart(document.getElementById("energy-chart"), report.windows);
  }

  renderOverrides(list) {
    const items = list.map((o) => {
      const li = el("li", { "data-override": o.id });
      const text = el("div");
      text.append(
        el("div", {}, t("overrides.line", { id: o.id, target: o.group || o.device_id, level: Math.max(0, o.level), until: dayTime(o.expiry) })),
        el("div", { class: "reason" }, o.reason),
      );
      li.append(text);
      if (this.can("schedules")) {
        const edit = el("button", { class: "small quiet", type: "button", "data-focus-key": `ov:edit:${o.id}` }, t("overrides.edit"));
        edit.addEventListener("click", () => this.edit(o));
        const remove = el("button", { class: "small quiet", type: "button", "data-focus-key": `ov:remove:${o.id}` }, t("overrides.remove"));
        remove.addEventListener("click", () => this.remove(o.id));
        li.append(edit, remove);
      }
      return li;
    });
    if (!items.length) items.push(el("li", { class: "muted" }, t("overrides.none")));
    const box = document.getElementById("overrides");
    keepFocus(box, () => box.replaceChildren(...items));
  }

  /** The devices an override may name, from the registry (as the map has them). */
  fillDevices(ids) {
    document.getElementById("ov-devices").replaceChildren(...ids.slice(0, 5000).map((id) => el("option", { value: id })));
  }

  edit(o) {
    document.getElementById("ov-id").value = o.id;
    if (o.group) document.getElementById("ov-group").value = o.group;
    document.getElementById("ov-device").value = o.device_id || "";
    document.getElementById("ov-level").value = o.level;
    document.getElementById("ov-hours").value = Math.max(0.25, (new Date(o.expiry) - Date.now()) / 3600000).toFixed(2);
    document.getElementById("ov-reason").value = o.reason;
    document.getElementById("ov-level").focus();
  }

  async save(event) {
    event.preventDefault();
    const error = document.getElementById("override-error");
    error.textContent = "";
    // a future start is read in the site's zone (empty: now); a device, if named, instead of the group
    const startText = document.getElementById("ov-start").value;
    const start = startText ? siteTime(startText) : new Date();
    const expiry = new Date(start.getTime() + Number(document.getElementById("ov-hours").value) * 3600000);
    const device = document.getElementById("ov-device").value.trim();
    const target = device ? { device_id: device } : { group: document.getElementById("ov-group").value };
    try {
      await api("/api/v1/overrides", {
        method: "POST",
        body: {
          id: document.getElementById("ov-id").value,
          ...target,
          level: Number(document.getElementById("ov-level").value),
          start: start.toISOString(),
          expiry: expiry.toISOString(),
          reason: document.getElementById("ov-reason").value,
        },
      });
      await this.refreshAll();
      await this.show();
    } catch (err) {
      if (err instanceof Unauthorized) this.onError(err);
      else error.textContent = explain(err);
    }
  }

  async remove(id) {
    await api(`/api/v1/overrides/${encodeURIComponent(id)}`, { method: "DELETE" }).catch(this.onError);
    await this.refreshAll().catch(this.onError);
    await this.show().catch(this.onError);
  }
}
