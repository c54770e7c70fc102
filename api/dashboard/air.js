// The city's air as the operations room shows it: a tile per district (its hourly index, level,
// colour and the regulation's advice), a 48-hour chart of the chosen district, and each air sensor
// ringed on the map in its level's colour. Refreshed once a minute: the index changes hourly.
import { api } from "./api.js";
import { lineChart } from "./charts.js";
import { el } from "./dom.js";
import { hhmm, place, t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const EVERY_MS = 60000;

/** Black or white, whichever reads on the level's colour (yellow needs black). */
function ink(hex) {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? "#111" : "#fff";
}

export class AirPanel {
  constructor({ onError, map }) {
    this.onError = onError;
    this.map = map;
    this.body = null;
    this.district = "";
    this.at = 0;
  }

  async refresh(force = false) {
    if (!force && Date.now() - this.at < EVERY_MS) return;
    this.at = Date.now();
    let body;
    try {
      body = await api("/api/v1/air");
    } catch (err) {
      if (err && err.status === 503) { $("air").hidden = true; return; } // [air] enabled = false
      throw err;
    }
    this.body = body;
    this.render();
    this.map().setAir(Object.fromEntries(body.sensors.filter((s) => s.level).map((s) => [s.device_id, { index: s.index, colour: s.level.colour }])));
    await this.chart();
  }

  render() {
    const body = this.body;
    if (!body) return;
    $("air").hidden = body.districts.length === 0;
    if (!this.district && body.districts.length) this.district = body.districts[0].district;
    const scheme = t(`air.scheme.${body.scheme}`);
    $("air-hour").textContent = body.hour ? `${scheme} · ${t("air.hour", { hour: hhmm(new Date(body.hour)) })}` : scheme;
    $("air-tiles").replaceChildren(...body.districts.map((d) => {
      const lang = place.lang;
      const tile = el("button", {
        type: "button",
        class: d.district === this.district ? "air-tile chosen" : "air-tile",
        "data-district": d.district,
        "data-level": d.level ? String(d.level.number) : "",
        "aria-pressed": d.district === this.district ? "true" : "false",
      });
      if (d.level) tile.style.cssText = `background:${d.level.colour};color:${ink(d.level.colour)}`;
      tile.append(
        el("div", { class: "name" }, d.district.split("/").pop()),
        el("div", { class: "value" }, d.index === null ? "—" : String(d.index)),
        el("div", { class: "level" }, d.level ? `${d.level.name[lang]}${d.alert ? " ⚠" : ""}` : t("air.no_data")),
      );
      if (d.level) {
        tile.title = [
          d.level.health[lang],
          d.level.advice[lang],
          t("air.sensitive", { advice: d.level.advice_sensitive[lang] }),
          d.sensor ? t("air.dominant", { pollutant: t(`air.pollutant.${d.dominant}`), sensor: d.sensor }) : "",
          t("air.sensors", { with: d.sensors_with_index, sensors: d.sensors }),
        ].filter(Boolean).join("\n");
      }
      tile.addEventListener("click", () => { this.district = d.district; this.render(); this.chart().catch(this.onError); });
      return tile;
    }));
    const chosen = body.districts.find((d) => d.district === this.district);
    $("air-advice").textContent = chosen && chosen.level ? `${chosen.district}: ${chosen.level.advice[place.lang]}` : "";
  }

  async chart() {
    if (!this.district) return;
    const r = await api(`/api/v1/air/history?${new URLSearchParams({ group: this.district, hours: "48" })}`);
    const to = new Date();
    const from = new Date(to.getTime() - 48 * 3600000);
    const points = r.hours.map((h) => ({ t: new Date(h.hour), a: h.index }));
    lineChart($("air-chart"), points, { from, to, labelA: `${this.district.split("/").pop()} · ${t(`air.scheme.${r.scheme}`)}`, maxA: Math.max(200, ...points.map((p) => p.a)) });
  }
}
