// People's words and time: texts from /dashboard/locales/<language>.json (the same files the
// controller uses for alert texts), every time in the site's zone, 24 h.
const LANG_KEY = "lamplighter.lang";
const LOCALES = { vi: "vi-VN", en: "en-GB" };
const texts = { current: {}, fallback: {} };
export const place = { lang: "vi", timeZone: "Asia/Ho_Chi_Minh" };

export function chosenLanguage() {
  const saved = localStorage.getItem(LANG_KEY);
  if (saved && saved in LOCALES) return saved;
  return (navigator.language || "vi").toLowerCase().startsWith("en") ? "en" : "vi";
}

export async function useLanguage(lang) {
  const load = async (l) => (await fetch(`/dashboard/locales/${l}.json`)).json();
  texts.current = await load(lang);
  if (!Object.keys(texts.fallback).length) texts.fallback = lang === "en" ? texts.current : await load("en");
  place.lang = lang;
  localStorage.setItem(LANG_KEY, lang);
  document.documentElement.lang = lang;
  translatePage();
}

/** The text of `key`, `{name}` placeholders filled from `params`. */
export function t(key, params = {}) {
  const text = texts.current[key] ?? texts.fallback[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in params ? String(params[name]) : `{${name}}`));
}

/** A field's name, or the key itself when the translation files do not know it. */
export function has(key) {
  return key in texts.current;
}

export function translatePage(root = document) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-placeholder]")) node.placeholder = t(node.dataset.i18nPlaceholder);
  for (const node of root.querySelectorAll("[data-i18n-aria]")) node.setAttribute("aria-label", t(node.dataset.i18nAria));
  for (const node of root.querySelectorAll("[data-i18n-title]")) node.title = t(node.dataset.i18nTitle);
}

const formats = new Map();
function format(kind, options) {
  const key = `${place.lang}|${place.timeZone}|${kind}`;
  if (!formats.has(key)) {
    formats.set(key, new Intl.DateTimeFormat(LOCALES[place.lang], { timeZone: place.timeZone, hourCycle: "h23", ...options }));
  }
  return formats.get(key);
}

export const hhmm = (at) => format("t", { hour: "2-digit", minute: "2-digit" }).format(new Date(at));
export const dayTime = (at) => format("dt", { day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit" }).format(new Date(at));
export const day = (at) => format("d", { day: "2-digit", month: "2-digit" }).format(new Date(at));
export const clock = (at) => format("s", { hour: "2-digit", minute: "2-digit", second: "2-digit" }).format(new Date(at));
export function number(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return "—";
  return new Intl.NumberFormat(LOCALES[place.lang], { maximumFractionDigits: digits, minimumFractionDigits: digits }).format(Number(value));
}

/** What went wrong, in the operator's language: the refusal's kind in words, then the API's own
 * detail (which names the field or value, in English). */
export function explain(err) {
  if (err && err.code && has(`error.${err.code}`)) {
    const words = t(`error.${err.code}`);
    return place.lang === "en" || !err.message ? `${words}: ${err.message}` : `${words} (${err.message})`;
  }
  if (err && err.status && has(`error.status.${err.status}`)) return t(`error.status.${err.status}`);
  return err && err.message ? err.message : String(err);
}

/** The instant a wall-clock time of the site means ("2026-11-30T23:00" from a datetime-local input),
 * whatever zone the browser is in. */
export function siteTime(text) {
  const [d, tm] = text.split("T");
  const [y, mo, da] = d.split("-").map(Number);
  const [h, mi] = tm.split(":").map(Number);
  const wall = Date.UTC(y, mo - 1, da, h, mi);
  let guess = wall;
  for (let i = 0; i < 2; i += 1) guess = wall - zoneOffset(new Date(guess)); // twice: across a DST change
  return new Date(guess);
}

function zoneOffset(at) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: place.timeZone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(at);
  const v = Object.fromEntries(parts.map((p) => [p.type, Number(p.value)]));
  return Date.UTC(v.year, v.month - 1, v.day, v.hour, v.minute, v.second) - Math.floor(at.getTime() / 1000) * 1000;
}
