// Small helpers the console's views share: building elements, tables, messages.
import { el } from "/ui/common/dom.js";
import { language, t } from "/ui/common/i18n.js";

export { el, redraw } from "/ui/common/dom.js";

// columns: [{key, label, num, cell(row) → Node|string}]
export function table(columns, rows, { empty = t("no_records"), rowAttrs = () => ({}) } = {}) {
  const head = el("tr", {}, columns.map((c) => el("th", { class: c.num ? "num" : null }, c.label)));
  const body = rows.length
    ? rows.map((row) => el("tr", rowAttrs(row), columns.map((c) => el("td",
      { class: [c.num ? "num" : "", c.className || ""].join(" ").trim() || null,
        dataset: { col: c.key } }, c.cell(row)))))
    : [el("tr", {}, el("td", { colspan: columns.length, class: "empty" }, empty))];
  return el("table", { class: "grid" }, el("thead", {}, head), el("tbody", {}, body));
}

let toastTimer = null;
export function toast(message, { error = false } = {}) {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.className = error ? "toast error" : "toast";
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, error ? 6000 : 3000);
}

export function failed(error) {
  toast(t("failed", { reason: error.message || String(error) }), { error: true });
}

export function stateBadge(state) {
  return el("span", { class: "state", dataset: { state } },
    el("span", { class: "state-dot", style: `background: var(--state-${state})` }),
    t(`state_${state}`));
}

// Times are shown in the hall's own time zone, wherever the manager's browser is.
let zone;
export function setTimeZone(name) {
  zone = name || undefined;
}

export function when(iso) {
  if (!iso) return "—";
  const moment = new Date(iso);
  return moment.toLocaleString(language() === "en" ? "en-GB" : "zh-CN", {
    month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
    hour12: false, timeZone: zone,
  });
}

export function clock(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleTimeString(language() === "en" ? "en-GB" : "zh-CN",
    { hour: "2-digit", minute: "2-digit", hour12: false, timeZone: zone });
}

export function seconds(value) {
  if (value === null || value === undefined) return "—";
  const s = Math.round(value);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

export function ruleLabel(rule) {
  const name = typeof rule === "string" ? rule : rule.rule;
  const label = t(`rule_${name}`);
  if (name === "appointments_due" && typeof rule === "object" && rule.early_minutes !== undefined) {
    return `${label}（${t("early", { n: rule.early_minutes })}）`;
  }
  return label;
}

export function strategyText(rules) {
  return rules.map(ruleLabel).join(" → ");
}

export function weekdaysText(days) {
  if (days.length === 7) return t("every_day");
  const contiguous = days.every((d, i) => i === 0 || d === days[i - 1] + 1);
  if (contiguous && days.length > 2) {
    return t("weekdays_range", { a: t(`wd${days[0]}`), b: t(`wd${days[days.length - 1]}`) });
  }
  return days.map((d) => t(`wd${d}`)).join("、");
}
