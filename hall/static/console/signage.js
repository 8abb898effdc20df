// Signage (D8): urgent notices pushed to every window screen and hall board (and
// withdrawn), the schedules of what screen groups show when, and what each screen
// shows now.
import { api } from "/ui/common/api.js";
import { t } from "/ui/common/i18n.js";
import { clock, el, failed, table, toast, weekdaysText, when } from "./dom.js";

const DURATIONS = [15, 30, 60, 120, 240, 480, 1440];

export function mount(root, ctx) {
  let content = { schedules: [], groups: [], layouts: [], notices: [] };
  let screens = [];
  let draft = { text: "", level: "urgent", minutes: 60 };

  async function load() {
    [content, screens] = await Promise.all([api("/signage"), api("/signage/screens")]);
    render();
  }

  async function push() {
    const text = draft.text.trim();
    if (!text) return;
    try {
      await api("/signage/notices", { method: "POST",
        body: { text, level: draft.level, minutes: Number(draft.minutes) } });
      draft.text = "";
      toast(t("pushed"));
      await load();
    } catch (error) {
      failed(error);
    }
  }

  async function withdraw(notice) {
    try {
      await api(`/signage/notices/${encodeURIComponent(notice.id)}`, { method: "DELETE" });
      toast(t("withdrawn"));
      await load();
    } catch (error) {
      failed(error);
    }
  }

  function duration(minutes) {
    return minutes < 60 ? t("minutes_n", { n: minutes }) : t("hours_n", { n: minutes / 60 });
  }

  function named(list, id) {
    return list.find((x) => x.id === id)?.name ?? id;
  }

  function days(s) {
    const parts = [s.weekdays.length ? weekdaysText(s.weekdays.map((d) => d - 1)) : t("every_day")];
    if (s.start_date) parts.push(t("from_date", { d: s.start_date }));
    if (s.end_date) parts.push(t("to_date", { d: s.end_date }));
    return parts.join(" ");
  }

  function render() {
    const form = el("form", { class: "panel form", id: "notice-form",
      onsubmit: (e) => { e.preventDefault(); push(); } },
      el("h3", {}, t("notices")),
      el("textarea", { name: "text", rows: 3, maxlength: 200, required: true,
        "aria-label": t("notice_text"), placeholder: t("notice_text"),
        oninput: (e) => { draft.text = e.target.value; } }),
      el("div", { class: "row" },
        el("label", { for: "notice-level" }, t("level")),
        el("select", { id: "notice-level", name: "level",
          onchange: (e) => { draft.level = e.target.value; } },
          ["urgent", "warning", "info"].map((l) => el("option",
            { value: l, selected: l === draft.level }, t(`level_${l}`))))),
      el("div", { class: "row" },
        el("label", { for: "notice-minutes" }, t("duration")),
        el("select", { id: "notice-minutes", name: "minutes",
          onchange: (e) => { draft.minutes = Number(e.target.value); } },
          DURATIONS.map((m) => el("option", { value: m, selected: m === draft.minutes }, duration(m))))),
      el("div", { class: "row" },
        el("button", { class: "primary", type: "submit", id: "push-notice" }, t("push_notice"))),
      el("ul", { class: "notice-list", id: "notices" }, content.notices.length
        ? content.notices.map((n) => el("li", { dataset: { notice: n.id, level: n.level } },
          el("span", { class: `tag ${n.level === "info" ? "" : n.level === "warning" ? "warn" : "bad"}` },
            t(`level_${n.level}`)),
          el("span", { class: "text" }, n.text),
          el("span", { class: "until" }, t("until", { time: when(n.expires_at) })),
          el("button", { type: "button", dataset: { withdraw: n.id }, onclick: () => withdraw(n) },
            t("withdraw"))))
        : el("li", { class: "muted" }, t("no_notices"))));
    form.elements.text.value = draft.text;
    const schedules = table([
      { key: "name", label: t("col_schedule"), cell: (s) => el("span", {}, el("strong", {}, s.name),
        " ", el("span", { class: "code" }, s.id)) },
      { key: "group", label: t("col_group"), cell: (s) => named(content.groups, s.group) },
      { key: "layout", label: t("col_layout"), cell: (s) => named(content.layouts, s.layout) },
      { key: "days", label: t("col_days"), cell: days },
      { key: "time", label: t("col_time"), cell: (s) => s.start || s.end
        ? `${s.start || "00:00"}–${s.end || "24:00"}` : t("whole_day") },
      { key: "priority", label: t("col_priority"), num: true, cell: (s) => s.priority },
      { key: "enabled", label: t("col_enabled"), cell: (s) => el("span",
        { class: `tag ${s.enabled ? "good" : ""}` }, t(s.enabled ? "enabled" : "disabled")) },
    ], content.schedules, { empty: t("no_schedules"),
      rowAttrs: (s) => ({ dataset: { schedule: s.id } }) });
    const screenTable = table([
      { key: "device", label: t("col_device"), cell: (s) => el("span", { class: "code" }, s.device) },
      { key: "kind", label: t("col_kind"), cell: (s) => t(`kind_${s.kind}`) },
      { key: "area", label: t("col_area"), cell: (s) => s.area ? ctx.areaName(s.area) : "—" },
      { key: "now", label: t("col_now"), cell: (s) => s.schedule
        ? named(content.schedules, s.schedule) : "—" },
      { key: "until", label: t("until", { time: "" }).trim(), cell: (s) => clock(s.until) },
    ], screens, { empty: t("no_screens") });
    root.replaceChildren(
      el("header", {}, el("h2", {}, t("signage_title")), el("span", { class: "spacer" }),
        el("button", { type: "button", onclick: () => load().catch(failed) }, t("refresh"))),
      el("div", { class: "columns" }, form,
        el("div", { class: "stack" },
          el("section", { class: "panel" }, el("h3", {}, t("schedules")), schedules),
          el("section", { class: "panel" }, el("h3", {}, t("screens")), screenTable))));
  }

  return {
    async show() { await load(); },
    relabel() { render(); },
  };
}
