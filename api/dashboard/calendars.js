// Calendars in the workbench: which program each night gets (weekdays, dates, ranges, public holidays,
// lunar dates such as Tết or the Mid-Autumn festival), checked and previewed by the API over the next
// week as the engineer edits, saved with a reason, and given to the group chosen in the schedule card.
import { api, Unauthorized } from "./api.js";
import { el, keepFocus, row } from "./dom.js";
import { askDraft, nextHours } from "./drafts.js";
import { dayTime, explain, number, t } from "./i18n.js";

const KINDS = ["weekdays", "date", "range", "holiday", "lunar"];
const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const $ = (id) => document.getElementById(id);

function kindOf(rule) {
  if (rule.weekdays) return "weekdays";
  if (rule.date) return "date";
  if (rule.date_from || rule.date_to) return "range";
  if (rule.holiday) return "holiday";
  return "lunar";
}

export class CalendarEditor {
  constructor({ can, onError, group, refresh }) {
    this.can = can;
    this.onError = onError;
    this.group = group;
    this.refreshAll = refresh;
    this.rules = [];
    this.timer = null;
    $("cal-select").addEventListener("change", () => this.open($("cal-select").value));
    $("cal-default").addEventListener("change", () => this.soon());
    $("cal-add").addEventListener("click", () => { this.rules.push({ holiday: "any", program: $("cal-default").value }); this.render(); this.soon(); });
    $("cal-save").addEventListener("click", () => this.save().catch(onError));
    $("cal-copy").addEventListener("click", () => this.save($("cal-copy-id").value.trim()).catch(onError));
    $("cal-assign").addEventListener("click", () => this.assign().catch(onError));
    $("cal-rules").addEventListener("change", (e) => this.edited(e));
  }

  get shown() { return this.can("schedules"); }

  /** The calendars as stored; `want` (a calendar just saved as a copy) is the one opened, once. */
  async load(programs, want = "") {
    $("calendars").hidden = !this.shown;
    if (!this.shown) return;
    this.programs = programs;
    this.calendars = await api("/api/v1/calendars");
    const select = $("cal-select");
    const previous = want || select.value;
    select.replaceChildren(...this.calendars.map((c) => el("option", { value: c.id }, c.id)));
    if (this.calendars.some((c) => c.id === previous)) select.value = previous;
    $("cal-default").replaceChildren(...programs.map((p) => el("option", { value: p.id }, p.name || p.id)));
    if (select.value) this.open(select.value);
  }

  /** New or changed programs (saved in the workbench): the choices follow, the draft is kept. */
  setPrograms(programs) {
    if (!this.shown) return;
    this.programs = programs;
    const chosen = $("cal-default").value;
    $("cal-default").replaceChildren(...programs.map((p) => el("option", { value: p.id }, p.name || p.id)));
    if (programs.some((p) => p.id === chosen)) $("cal-default").value = chosen;
    this.render();
  }

  open(id) {
    const calendar = this.calendars.find((c) => c.id === id);
    if (!calendar) return;
    this.openId = id;
    this.country = calendar.holiday_country;
    $("cal-default").value = calendar.default_program;
    this.rules = calendar.rules.map((r) => ({ ...r }));
    this.render();
    this.soon();
  }

  draft() {
    const rules = this.rules.map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== null && v !== "" && v !== undefined)));
    return { id: this.openId, default_program: $("cal-default").value, rules, holiday_country: this.country || "VN" };
  }

  render() {
    if (!this.shown) return;
    const field = (i, key, attrs) => el("input", { "data-i": i, "data-k": key, "data-focus-key": `rule:${i}:${key}`, ...attrs });
    const rows = this.rules.map((r, i) => {
      const kind = el("select", { "data-i": i, "data-k": "kind", "data-focus-key": `rule:${i}:kind`, "aria-label": t("cal.kind") });
      kind.append(...KINDS.map((k) => el("option", { value: k }, t(`cal.kind.${k}`))));
      kind.value = kindOf(r);
      const match = el("span", { class: "rule-match" });
      if (kind.value === "weekdays") {
        for (const d of DAYS) {
          const box = field(i, `day:${d}`, { type: "checkbox", "aria-label": t(`cal.day.${d}`) });
          box.checked = r.weekdays.includes(d);
          match.append(el("label", {}, t(`cal.day.${d}`)));
          match.lastChild.prepend(box);
        }
      } else if (kind.value === "date") match.append(field(i, "date", { type: "date", value: r.date || "", "aria-label": t("cal.date") }));
      else if (kind.value === "range") {
        match.append(field(i, "date_from", { type: "date", value: r.date_from || "", "aria-label": t("cal.from") }),
          field(i, "date_to", { type: "date", value: r.date_to || "", "aria-label": t("cal.to") }));
      } else if (kind.value === "holiday") match.append(field(i, "holiday", { value: r.holiday || "", "aria-label": t("cal.holiday") }));
      else {
        match.append(field(i, "lunar_month", { type: "number", min: "1", max: "12", value: r.lunar_month ?? "", "aria-label": t("cal.lunar_month") }),
          field(i, "lunar_day", { type: "number", min: "1", max: "30", value: r.lunar_day ?? "", "aria-label": t("cal.lunar_day") }));
      }
      const program = el("select", { "data-i": i, "data-k": "program", "data-focus-key": `rule:${i}:program`, "aria-label": t("cal.program") });
      program.append(...this.programs.map((p) => el("option", { value: p.id }, p.name || p.id)));
      program.value = r.program;
      const remove = el("button", { type: "button", class: "small quiet", "data-focus-key": `rule:${i}:remove` }, t("work.remove"));
      remove.addEventListener("click", () => { this.rules.splice(i, 1); this.render(); this.soon(); });
      return row({ "data-rule": i }, [kind, match, program, remove]);
    });
    const body = $("cal-rules");
    keepFocus(body, () => body.replaceChildren(...rows));
  }

  edited(event) {
    const input = event.target;
    const i = Number(input.dataset.i);
    const key = input.dataset.k;
    if (Number.isNaN(i) || !key) return;
    const rule = this.rules[i];
    if (key === "kind") {
      const fresh = { weekdays: { weekdays: ["sat", "sun"] }, date: { date: "" }, range: { date_from: "", date_to: "" }, holiday: { holiday: "any" }, lunar: { lunar_month: 1, lunar_day: 1 } }[input.value];
      this.rules[i] = { program: rule.program, ...fresh };
      this.render();
    } else if (key.startsWith("day:")) {
      const day = key.slice(4);
      rule.weekdays = input.checked ? [...new Set([...rule.weekdays, day])] : rule.weekdays.filter((d) => d !== day);
    } else if (key === "lunar_month" || key === "lunar_day") {
      rule[key] = input.value === "" ? null : Number(input.value);
    } else {
      rule[key] = input.value;
    }
    this.soon();
  }

  soon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.check().catch(this.onError), 350);
  }

  /** The next week of the chosen group with the draft, and the nights it changes. */
  async check() {
    const group = this.group();
    if (!this.shown || !this.openId || !group) return;
    const [from, to] = nextHours(7 * 24);
    const body = { group, from: from.toISOString(), to: to.toISOString(), every_min: 15, calendar: this.draft() };
    const out = await askDraft(body, { error: $("cal-error"), save: $("cal-save"), changes: $("cal-changes") });
    if (!out) return;
    $("cal-energy").textContent = t("cal.energy", { draft: number(out.energy_kwh), planned: number(out.planned_energy_kwh) });
    const changes = out.changes.slice(0, 20).map((c) => el("li", {}, t("cal.change", { lamps: out.lamps, group, at: dayTime(c.at), planned: c.planned, drafted: c.drafted })));
    if (!changes.length) changes.push(el("li", { class: "muted" }, t("cal.no_change")));
    $("cal-changes").replaceChildren(...changes);
  }

  /** Save the draft as the open calendar, or as a new one (`copyId`: then give it to a street). */
  async save(copyId = "") {
    const id = copyId || this.openId;
    const reason = $("cal-reason").value;
    try {
      await api(`/api/v1/calendars/${encodeURIComponent(id)}?${new URLSearchParams({ reason })}`, { method: "PUT", body: { ...this.draft(), id } });
    } catch (err) {
      if (err instanceof Unauthorized) throw err;
      $("cal-error").textContent = explain(err);
      return;
    }
    $("cal-reason").value = "";
    $("cal-copy-id").value = "";
    if (copyId) await this.load(this.programs, id);
    // said once the copy is open: "give it to a street" right after must give the copy
    $("cal-result").textContent = t("cal.saved", { id });
    await this.refreshAll();
  }

  /** The chosen group (and its sub-groups) follows this calendar from now on. */
  async assign() {
    const group = this.group();
    const reason = $("cal-reason").value;
    try {
      await api(`/api/v1/groups/${group.split("/").map(encodeURIComponent).join("/")}/calendar?${new URLSearchParams({ reason })}`, {
        method: "PUT",
        body: { calendar: this.openId },
      });
    } catch (err) {
      if (err instanceof Unauthorized) throw err;
      $("cal-error").textContent = explain(err);
      return;
    }
    $("cal-result").textContent = t("cal.assigned", { id: this.openId, group });
    await this.refreshAll();
  }
}
