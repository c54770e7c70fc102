// Alert triage: root causes as one entry, filters, sort, acknowledge a selection or a whole group,
// the history, and the page title and an optional sound for a wall screen.
import { api } from "./api.js";
import { dayTime, explain, place, t } from "./i18n.js";
import { el, keepFocus } from "./dom.js";

const SEVERITY_RANK = { critical: 3, major: 2, minor: 1, warning: 0 };
const SEVERITY_MARK = { critical: "◆◆", major: "◆", minor: "▲", warning: "●" };
const BASE_TITLE = "Lamplighter";

export class AlertPanel {
  constructor({ can, onDevice, onError }) {
    this.can = can;
    this.onDevice = onDevice;
    this.onError = onError;
    this.selected = new Set();
    this.seen = null; // alert and group ids already shown: the first load announces nothing
    this.shown = "";
    this.entries = [];
    for (const id of ["alert-view", "alert-kind", "alert-group", "alert-sort"]) {
      document.getElementById(id).addEventListener("change", () => this.refresh(true).catch(onError));
    }
    document.getElementById("select-all").addEventListener("change", (e) => this.selectAll(e.target.checked));
    document.getElementById("ack-selected").addEventListener("click", () => this.ackSelected());
    document.getElementById("ack-group").addEventListener("click", () => this.ackGroup());
  }

  fillFilters(kinds, groups) {
    const kind = document.getElementById("alert-kind");
    const group = document.getElementById("alert-group");
    const keepK = kind.value;
    const keepG = group.value;
    kind.replaceChildren(el("option", { value: "" }, t("alerts.filter.all_kinds")), ...kinds.map((k) => el("option", { value: k }, t(`kind.${k}`))));
    group.replaceChildren(el("option", { value: "" }, t("alerts.filter.all_groups")), ...groups.map((g) => el("option", { value: g }, g)));
    kind.value = keepK;
    group.value = keepG;
  }

  query() {
    const view = document.getElementById("alert-view").value;
    const params = new URLSearchParams({ limit: "200" });
    if (view === "history") params.set("state", "cleared");
    else params.set("grouped", "true");
    const kind = document.getElementById("alert-kind").value;
    const group = document.getElementById("alert-group").value;
    if (kind) params.set("kind", kind);
    if (group) params.set("group", group);
    return params;
  }

  async refresh(force = false) {
    const page = await api(`/api/v1/alerts?${this.query()}`);
    const history = document.getElementById("alert-view").value === "history";
    const sortBy = document.getElementById("alert-sort").value;
    const at = (e) => new Date(e.last_raised_at || e.raised_at).getTime();
    page.items.sort((a, b) => (sortBy === "severity" ? SEVERITY_RANK[b.severity] - SEVERITY_RANK[a.severity] : 0) || at(b) - at(a));
    this.announce(history ? [] : page.items);
    const fingerprint = JSON.stringify([place.lang, history, page.items.map((e) => [e.id, e.state, e.devices])]);
    document.getElementById("alert-count").textContent = history || !page.total ? "" : String(page.total);
    document.getElementById("ack-group").hidden = history || !this.can("acknowledge") || !document.getElementById("alert-group").value;
    document.getElementById("ack-tools").hidden = history || !this.can("acknowledge");
    this.entries = page.items;
    if (fingerprint === this.shown && !force) return; // nothing changed: leave the list (and focus) alone
    this.shown = fingerprint;
    const list = document.getElementById("alerts");
    keepFocus(list, () => {
      const items = page.items.map((e) => (e.type === "group" ? this.groupItem(e) : this.alertItem(e, history)));
      if (!items.length) items.push(el("li", { class: "muted" }, t(history ? "alerts.none_history" : "alerts.none")));
      list.replaceChildren(...items);
    });
    this.syncSelection();
  }

  /** New alerts since the last look: the page title says so, and a short tone if wanted. */
  announce(items) {
    const active = items.filter((e) => e.state === "active");
    const ids = new Set(items.map((e) => `${e.type}:${e.id}`));
    const fresh = this.seen ? [...ids].filter((id) => !this.seen.has(id)).length : 0;
    this.seen = ids;
    const count = active.length; // a root cause counts once
    document.title = count ? `(${count}) ${fresh ? "● " : ""}${t("alerts.page_title")} — ${BASE_TITLE}` : BASE_TITLE;
    if (fresh && document.getElementById("sound").checked) beep();
  }

  head(entry, titleText) {
    const head = el("div", { class: "entry-head" });
    if (this.can("acknowledge") && entry.state === "active") {
      const box = el("input", { type: "checkbox", "data-select": `${entry.type}:${entry.id}`, "data-focus-key": `select:${entry.type}:${entry.id}`, "aria-label": t("alerts.select_one", { title: titleText }) });
      box.checked = this.selected.has(`${entry.type}:${entry.id}`);
      box.addEventListener("change", () => this.toggle(`${entry.type}:${entry.id}`, box.checked));
      head.append(box);
    }
    head.append(el("span", { class: `sev sev-${entry.severity}`, title: t(`severity.${entry.severity}`) }, `${SEVERITY_MARK[entry.severity]} ${t(`severity.${entry.severity}`)}`));
    return head;
  }

  groupItem(g) {
    const title = g.title[place.lang] || g.title.en;
    const li = el("li", { class: `entry group sev-${g.severity}`, "data-group": g.id });
    const head = this.head(g, title);
    head.append(el("strong", { class: "kind" }, title));
    li.append(head, this.stateLine(g, g.last_raised_at));
    const details = el("details");
    details.append(el("summary", { "data-focus-key": `details:${g.id}` }, t("alerts.group.devices", { count: g.devices, total: g.devices_on_link })));
    const members = el("ul", { class: "members" });
    for (const a of g.members) {
      const item = el("li");
      const link = el("button", { type: "button", class: "link", "data-focus-key": `device:${g.id}:${a.device_id}` }, a.device_id);
      link.addEventListener("click", () => this.onDevice(a.device_id));
      item.append(link, el("span", { class: "muted" }, ` ${(a.evidence_text && a.evidence_text[place.lang]) || a.evidence}`));
      members.append(item);
    }
    if (g.devices > g.members.length) members.append(el("li", { class: "muted" }, t("alerts.group.more", { count: g.devices - g.members.length })));
    details.append(members);
    li.append(details);
    if (this.can("acknowledge") && g.state === "active") li.append(this.ackButton({ root_cause: g.id }, `ack:${g.type}:${g.id}`));
    return li;
  }

  alertItem(a, history) {
    const title = a.title[place.lang] || a.title.en;
    const li = el("li", { class: `entry sev-${a.severity}`, "data-alert": String(a.id) });
    const head = this.head(a, title);
    const name = el("button", { type: "button", class: "link kind", "data-focus-key": `device:${a.id}` }, title);
    name.addEventListener("click", () => this.onDevice(a.device_id));
    head.append(name);
    li.append(head, this.stateLine(a, history ? a.cleared_at : a.raised_at));
    li.append(el("div", { class: "evidence" }, (a.evidence_text && a.evidence_text[place.lang]) || a.evidence));
    if (!history && this.can("acknowledge") && a.state === "active") li.append(this.ackButton({ ids: [a.id] }, `ack:alert:${a.id}`));
    return li;
  }

  stateLine(entry, at) {
    const words = entry.state === "acknowledged" && entry.acknowledged_by
      ? t("alerts.acknowledged_by", { who: entry.acknowledged_by })
      : t(`alerts.state.${entry.state}`);
    return el("div", { class: "muted when" }, `${dayTime(at)} · ${words}`);
  }

  ackButton(body, focusKey) {
    const button = el("button", { class: "small", type: "button", "data-focus-key": focusKey }, t("alerts.ack"));
    button.addEventListener("click", () => this.acknowledge(body, button));
    return button;
  }

  async acknowledge(body, button) {
    if (button) button.disabled = true;
    document.getElementById("alert-error").textContent = "";
    try {
      await api("/api/v1/alerts/ack", { method: "POST", body });
      this.selected.clear();
      await this.refresh(true);
    } catch (err) {
      if (button) button.disabled = false;
      document.getElementById("alert-error").textContent = explain(err);
      this.onError(err);
    }
  }

  toggle(key, on) {
    if (on) this.selected.add(key);
    else this.selected.delete(key);
    this.syncSelection();
  }

  selectAll(on) {
    this.selected.clear();
    if (on) for (const e of this.entries) if (e.state === "active") this.selected.add(`${e.type}:${e.id}`);
    for (const box of document.querySelectorAll("[data-select]")) box.checked = this.selected.has(box.dataset.select);
    this.syncSelection();
  }

  syncSelection() {
    const live = new Set(this.entries.map((e) => `${e.type}:${e.id}`));
    for (const key of [...this.selected]) if (!live.has(key)) this.selected.delete(key);
    const button = document.getElementById("ack-selected");
    button.disabled = this.selected.size === 0;
    button.textContent = this.selected.size ? t("alerts.ack_selected_n", { count: this.selected.size }) : t("alerts.ack_selected");
  }

  async ackSelected() {
    const ids = [];
    const groups = [];
    for (const key of this.selected) {
      const [type, id] = [key.slice(0, key.indexOf(":")), key.slice(key.indexOf(":") + 1)];
      if (type === "alert") ids.push(Number(id));
      else groups.push(id);
    }
    for (const root_cause of groups) await this.acknowledge({ root_cause });
    if (ids.length) await this.acknowledge({ ids });
  }

  async ackGroup() {
    const group = document.getElementById("alert-group").value;
    if (group) await this.acknowledge({ group });
  }
}

function beep() {
  try {
    const audio = new AudioContext();
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.frequency.value = 880;
    gain.gain.value = 0.08;
    tone.connect(gain).connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.25);
  } catch {
    // no audio device: the title still says it
  }
}
