// Small helpers of the mobile page: building elements, the hall's time, what a phone
// keeps in localStorage, and refusals put into words.

import { ApiError } from "/ui/common/api.js";
import { redraw } from "/ui/common/dom.js";
import { language, t } from "/ui/common/i18n.js";

export { el } from "/ui/common/dom.js";

// Puts `nodes` (nested lists, nulls left out) in place of what `root` holds, keeping
// what looks the same (redraw). A field being typed in keeps its focus and caret when a
// live update redraws the view, even where the redraw had to put a new one in its place.
export function fill(root, ...nodes) {
  const active = document.activeElement;
  const id = active && active !== root && root.contains(active) ? active.id : "";
  const caret = id && typeof active.selectionStart === "number"
    ? [active.selectionStart, active.selectionEnd] : null;
  redraw(root, nodes.flat(Infinity));
  const again = id ? document.getElementById(id) : null;
  if (!again || again === document.activeElement) return;
  again.focus({ preventScroll: true });
  if (caret) {
    try { again.setSelectionRange(...caret); } catch { /* not a text field */ }
  }
}

// ------------------------------------------------------------------ the hall's time

let zone = "Asia/Shanghai";

export function setZone(name) {
  if (name) zone = name;
}

function parts(iso, options) {
  const locale = language() === "en" ? "en-GB" : "zh-CN";
  const format = new Intl.DateTimeFormat(locale, { timeZone: zone, ...options });
  return Object.fromEntries(format.formatToParts(new Date(iso)).map((p) => [p.type, p.value]));
}

// "09:30" in the hall's zone, whatever zone the phone is in.
export function clock(iso) {
  const p = parts(iso, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  return `${p.hour}:${p.minute}`;
}

// The hall's calendar day of an instant, as YYYY-MM-DD.
export function dayOf(iso) {
  const p = parts(iso, { year: "numeric", month: "2-digit", day: "2-digit" });
  return `${p.year}-${p.month}-${p.day}`;
}

const WEEKDAYS = {
  zh: ["周日", "周一", "周二", "周三", "周四", "周五", "周六"],
  en: ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"],
};

// A calendar day (YYYY-MM-DD) as "11月24日 周二" / "24 Nov Tue".
export function dayLabel(day, { weekday = true } = {}) {
  const [y, m, d] = day.split("-").map(Number);
  const date = new Date(Date.UTC(y, m - 1, d));
  const name = WEEKDAYS[language()][date.getUTCDay()];
  if (language() === "en") {
    const month = date.toLocaleString("en-GB", { month: "short", timeZone: "UTC" });
    return weekday ? `${name} ${d} ${month}` : `${d} ${month}`;
  }
  return weekday ? `${m}月${d}日 ${name}` : `${m}月${d}日`;
}

export function dayShort(day) {
  const [, m, d] = day.split("-").map(Number);
  return `${m}/${d}`;
}

export function weekday(day) {
  const [y, m, d] = day.split("-").map(Number);
  return WEEKDAYS[language()][new Date(Date.UTC(y, m - 1, d)).getUTCDay()];
}

export function addDays(day, n) {
  const [y, m, d] = day.split("-").map(Number);
  const date = new Date(Date.UTC(y, m - 1, d + n));
  return date.toISOString().slice(0, 10);
}

// "11月24日 周二 09:00-09:30"
export function slotLabel(start, end) {
  return `${dayLabel(dayOf(start))} ${clock(start)}-${clock(end)}`;
}

export function stamp(iso) {
  return `${dayLabel(dayOf(iso), { weekday: false })} ${clock(iso)}`;
}

// ------------------------------------------------------------------ kept on the phone

export function kept(key) {
  try {
    const value = JSON.parse(localStorage.getItem(key) || "[]");
    return Array.isArray(value) ? value : [];
  } catch {
    return [];
  }
}

export function keep(key, list) {
  localStorage.setItem(key, JSON.stringify(list));
}

// ------------------------------------------------------------------ refusals

// A refusal as a sentence for the citizen: the code's own words, else a general one.
export function reason(error, params = {}) {
  if (!(error instanceof ApiError)) return t("error.network");
  const key = `error.${error.code}`;
  const text = t(key, params);
  return text === key ? t("error.other", { code: error.code }) : text;
}

export function minutes(value) {
  if (value === null || value === undefined) return null;
  return Math.max(1, Math.round(value));
}
