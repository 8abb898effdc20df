// Service hours and daily quotas (Q4, Q14): read-only, as the hall configuration has
// them, with today's issued count against the quota.
import { t } from "/ui/common/i18n.js";
import { el, table, weekdaysText } from "./dom.js";

function roundTheClock(hours) {
  const [only, more] = hours.intervals;
  return hours.weekdays.length === 7 && !more && only?.[0] === "00:00" && only?.[1] === "23:59";
}

export function mount(root, ctx) {
  function usage(service) {
    if (!service.daily_quota) return el("span", { class: "muted" }, t("no_quota"));
    const share = Math.min(1, service.issued_today / service.daily_quota);
    const level = share >= 1 ? "bad" : share >= 0.8 ? "warn" : "";
    return el("span", {},
      el("span", { class: `bar ${level}` }, el("span", { style: `width: ${Math.round(share * 100)}%` })),
      `${Math.round(share * 100)}%`);
  }

  function render() {
    const columns = [
      { key: "service", label: t("col_service"), cell: (s) => el("span", {},
        el("strong", {}, s.name), " ", el("span", { class: "code" }, s.id)) },
      { key: "category", label: t("col_category"), cell: (s) => s.category },
      { key: "prefix", label: t("col_prefix"), cell: (s) => s.prefix },
      { key: "hours", label: t("col_hours"), cell: (s) => roundTheClock(s.hours)
        ? t("round_the_clock") : el("span", {},
        `${weekdaysText(s.hours.weekdays)} `,
        s.hours.intervals.map(([a, b]) => el("span", { class: "tag" }, `${a}–${b}`))) },
      { key: "quota", label: t("col_quota"), num: true, cell: (s) => s.daily_quota ?? t("no_quota") },
      { key: "issued", label: t("col_issued"), num: true, cell: (s) => s.issued_today },
      { key: "usage", label: t("col_usage"), cell: usage },
      { key: "waiting", label: t("col_waiting"), num: true, cell: (s) => s.waiting },
      { key: "open_windows", label: t("col_open_windows"), num: true, cell: (s) => s.open_windows },
      { key: "open", label: t("col_open"), cell: (s) => el("span",
        { class: `tag ${s.open ? "good" : "warn"}` }, t(s.open ? "open" : "shut")) },
    ];
    root.replaceChildren(
      el("header", {}, el("h2", {}, t("services_title"))),
      el("p", { class: "note", id: "services-readonly" }, t("services_readonly")),
      table(columns, ctx.data.services, { rowAttrs: (s) => ({ dataset: { service: s.id } }) }),
    );
  }

  return {
    stale: true,
    async show() { this.stale = false; render(); },
    live() { render(); },
    relabel() { render(); },
  };
}
