// The lighting engineer's workbench: edit a program's steps, see the draft's curve, energy and what
// changes tonight before saving (checked by the API as it types), save with a reason, and undo from
// the history. Shown to those who may change schedules; everyone else never sees these controls.
import { api, Unauthorized } from "./api.js";
import { lineChart } from "./charts.js";
import { askDraft, nextHours } from "./drafts.js";
import { el, keepFocus, row } from "./dom.js";
import { dayTime, explain, hhmm, number, t } from "./i18n.js";

const EVENTS = ["sunset", "civil_dusk", "nautical_dusk", "nautical_dawn", "civil_dawn", "sunrise"];
const $ = (id) => document.getElementById(id);

export class Workbench {
  constructor({ can, onError, group, refresh, onPrograms = () => {} }) {
    this.onPrograms = onPrograms; // the calendars offer the programs this saves
    this.can = can;
    this.onError = onError;
    this.group = group; // the group the schedule card shows
    this.refreshAll = refresh;
    this.programs = [];
    this.steps = [];
    this.timer = null;
    this.draftOk = false;
    $("prog-select").addEventListener("change", () => this.open($("prog-select").value));
    $("prog-add").addEventListener("click", () => { this.steps.push({ at: "23:00", level: 50 }); this.render(); this.check(); });
    $("prog-save").addEventListener("click", () => this.save().catch(onError));
    $("prog-copy").addEventListener("click", () => this.save($("prog-copy-id").value.trim()).catch(onError));
    $("prog-steps").addEventListener("input", (e) => this.edited(e));
    $("prog-steps").addEventListener("change", (e) => this.edited(e));
  }

  get shown() { return this.can("schedules"); }

  /** The programs again, and `want` (else the one chosen before) opened if it is not open. */
  async load(want = "") {
    $("workbench").hidden = !this.shown;
    if (!this.shown) return;
    this.programs = await api("/api/v1/schedules");
    this.onPrograms(this.programs);
    const select = $("prog-select");
    const previous = want || select.value;
    select.replaceChildren(...this.programs.map((p) => el("option", { value: p.id }, p.name ? `${p.name} (${p.id})` : p.id)));
    if (this.programs.some((p) => p.id === previous)) select.value = previous;
    if (select.value && select.value !== this.openId) await this.open(select.value);
  }

  async open(id) {
    const program = this.programs.find((p) => p.id === id);
    if (!program) return;
    this.openId = id;
    this.name = program.name;
    this.steps = program.steps.map((s) => ({ ...s }));
    this.render();
    await Promise.all([this.check(), this.history()]);
  }

  draft() {
    const steps = this.steps.map((s) => {
      const step = { level: Number(s.level), ramp_min: Number(s.ramp_min || 0) };
      if (s.event) Object.assign(step, { event: s.event, offset_min: Number(s.offset_min || 0) });
      else step.at = s.at;
      if (s.photocell) step.photocell = s.photocell;
      return step;
    });
    return { id: this.openId, name: this.name || "", steps };
  }

  render() {
    if (!this.shown) return;
    const rows = this.steps.map((s, i) => {
      const when = el("select", { "data-i": i, "data-k": "when", "data-focus-key": `step:${i}:when`, "aria-label": t("work.when") });
      when.append(el("option", { value: "clock" }, t("work.clock")), ...EVENTS.map((e) => el("option", { value: e }, t(`work.event.${e}`))));
      when.value = s.event || "clock";
      const time = s.event
        ? el("input", { type: "number", min: "-240", max: "240", step: "5", value: String(s.offset_min || 0), "data-i": i, "data-k": "offset_min", "data-focus-key": `step:${i}:offset`, "aria-label": t("work.offset") })
        : el("input", { type: "time", value: s.at || "", "data-i": i, "data-k": "at", "data-focus-key": `step:${i}:at`, "aria-label": t("work.time") });
      const level = el("input", { type: "number", min: "0", max: "100", step: "5", value: String(s.level), "data-i": i, "data-k": "level", "data-focus-key": `step:${i}:level`, "aria-label": t("work.level") });
      const ramp = el("input", { type: "number", min: "0", max: "120", value: String(s.ramp_min || 0), "data-i": i, "data-k": "ramp_min", "data-focus-key": `step:${i}:ramp`, "aria-label": t("work.ramp") });
      const remove = el("button", { type: "button", class: "small quiet", "data-remove": i, "data-focus-key": `step:${i}:remove` }, t("work.remove"));
      remove.addEventListener("click", () => { this.steps.splice(i, 1); this.render(); this.check(); });
      return row({ "data-step": i }, [when, time, level, ramp, remove]);
    });
    const body = $("prog-steps");
    keepFocus(body, () => body.replaceChildren(...rows));
  }

  edited(event) {
    const input = event.target;
    const i = Number(input.dataset.i);
    const key = input.dataset.k;
    if (Number.isNaN(i) || !key) return;
    const step = this.steps[i];
    if (key === "when") {
      if (input.value === "clock") { delete step.event; delete step.offset_min; step.at = step.at || "23:00"; }
      else { delete step.at; step.event = input.value; step.offset_min = step.offset_min || 0; }
      this.render();
    } else {
      step[key] = input.value;
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.check().catch(this.onError), 350);
  }

  /** Ask the API what the draft would do (and whether it would take it): as the engineer types. */
  async check() {
    const group = this.group();
    if (!this.shown || !this.openId || !group) return;
    const [from, to] = nextHours(24);
    const body = { group, from: from.toISOString(), to: to.toISOString(), every_min: 10, program: this.draft() };
    const out = await askDraft(body, { error: $("prog-error"), save: $("prog-save"), changes: $("prog-changes") });
    this.draftOk = out !== null;
    if (!out) return;
    $("prog-energy").textContent = t(out.saving_pct === null ? "work.energy" : "work.energy_saving", {
      draft: number(out.energy_kwh), planned: number(out.planned_energy_kwh), saved: number(out.saving_pct),
    });
    const changes = out.changes.map((c) => el("li", {}, t("work.change", { lamps: out.lamps, group, at: hhmm(c.at), planned: c.planned, drafted: c.drafted })));
    if (!changes.length) changes.push(el("li", { class: "muted" }, t("work.no_change")));
    $("prog-changes").replaceChildren(...changes);
    lineChart($("prog-chart"), out.points.map((p) => ({ t: new Date(p.at), a: p.level })), {
      from, to, labelA: t("work.draft_level"), maxA: 100, markers: out.sun.filter((s) => s.event === "sunrise" || s.event === "sunset"),
    });
  }

  /** Save the draft as the open program, or as a new one (`copyId`: a street's own program). */
  async save(copyId = "") {
    if (!this.draftOk && !copyId) return;
    const id = copyId || this.openId;
    if (!id) return; // the program just saved is being opened again
    const reason = $("prog-reason").value;
    const error = $("prog-error");
    try {
      await api(`/api/v1/schedules/${encodeURIComponent(id)}?${new URLSearchParams({ reason })}`, { method: "PUT", body: { ...this.draft(), id } });
    } catch (err) {
      if (err instanceof Unauthorized) throw err;
      error.textContent = explain(err);
      return;
    }
    $("prog-reason").value = "";
    $("prog-copy-id").value = "";
    this.openId = null;
    // opened once: a second rendering of the history replaced the lines under the engineer's
    // hand (a "What changed" clicked in between showed nothing)
    await this.load(id);
    // said once the saved program is open (as the calendars do): what is clicked next acts on it
    $("prog-result").textContent = t("work.saved", { id });
    await this.refreshAll();
  }

  async history() {
    if (!this.openId) return;
    const query = new URLSearchParams({ kind: "program", id: this.openId, limit: "20" });
    const page = await api(`/api/v1/schedule-history?${query}`);
    const items = page.items.map((v, n) => {
      const li = el("li", { "data-version": v.version });
      li.append(el("span", {}, t("work.version", { version: v.version, at: dayTime(v.at), who: v.actor, why: v.reason || "—" })));
      if (n + 1 < page.items.length) {
        const what = el("button", { type: "button", class: "small quiet", "data-focus-key": `changes:${v.version}` }, t("work.what_changed"));
        what.addEventListener("click", () => this.compare(v.version, li).catch(this.onError));
        li.append(what);
      }
      if (n > 0) {
        const restore = el("button", { type: "button", class: "small quiet", "data-focus-key": `version:${v.version}` }, t("work.restore"));
        restore.addEventListener("click", () => this.restore(v.version).catch(this.onError));
        li.append(restore);
      }
      return li;
    });
    const box = $("prog-history");
    keepFocus(box, () => box.replaceChildren(...items));
  }

  /** What this version changed from the one before, under its line in the history. */
  async compare(version, li) {
    const query = new URLSearchParams({ kind: "program", id: this.openId, old: String(version - 1), new: String(version) });
    const diff = await api(`/api/v1/schedule-history/compare?${query}`);
    // the history may have been drawn again while the answer came: show it under today's line
    li = $("prog-history").querySelector(`li[data-version="${version}"]`) ?? li;
    const show = (v) => (v === null || v === undefined ? "—" : typeof v === "object" ? JSON.stringify(v) : String(v));
    const items = diff.changes.map((c) => el("li", {}, `${c.path}: ${show(c.before)} → ${show(c.after)}`));
    li.querySelector("ul")?.remove();
    li.append(el("ul", { class: "diff" }));
    li.lastChild.replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, t("work.no_difference"))]));
  }

  async restore(version) {
    const id = this.openId;
    await api("/api/v1/schedule-history/restore", { method: "POST", body: { kind: "program", id, version } });
    this.openId = null;
    await this.load(id);
    $("prog-result").textContent = t("work.restored", { id, version }); // once it is open again
    await this.refreshAll();
  }
}
