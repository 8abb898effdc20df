// Service hours and daily quotas (Q4, Q14), with today's issued count against the quota.
// A manager changes a service's opening intervals (on the weekdays the configuration
// gives) and its quota through PUT /api/v1/services/{id}/terms; the change is in force at
// once and outlives the day. Other managers' changes arrive on the event stream.
import { api, ApiError } from "/ui/common/api.js";
import { t } from "/ui/common/i18n.js";
import { coalesce, openStream } from "/ui/common/stream.js";
import { el, redraw, table, toast, weekdaysText } from "./dom.js";

const CLOCK = /^([01]\d|2[0-3]):[0-5]\d$/;

function roundTheClock(hours) {
  const [only, more] = hours.intervals;
  return hours.weekdays.length === 7 && !more && only?.[0] === "00:00" && only?.[1] === "23:59";
}

// The console shows a day's end as 23:59; the API takes 24:00 for midnight.
function editableIntervals(hours) {
  if (roundTheClock(hours)) return [["00:00", "24:00"]];
  return hours.intervals.map(([a, b]) => [a, b]);
}

// Client-side check, so the common mistakes are named in the manager's language;
// the server checks again (422) whatever slips through.
function problemOf(rows, unlimited, quota) {
  if (!rows.length) return t("terms_need_interval");
  for (const [a, b] of rows) {
    if (!CLOCK.test(a) || !(CLOCK.test(b) || b === "24:00")) return t("terms_bad_time");
    if (a >= b) return t("terms_reversed", { a, b });
  }
  const sorted = [...rows].sort((x, y) => (x[0] < y[0] ? -1 : 1));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i][0] < sorted[i - 1][1]) return t("terms_overlap");
  }
  if (!unlimited && !(Number.isInteger(quota) && quota >= 0)) return t("terms_bad_quota");
  return null;
}

function apiProblem(error) {
  if (error instanceof ApiError) {
    if (error.status === 404) return t("terms_unknown_service");
    if (error.status === 422) return t("terms_rejected", { reason: error.message });
    if (error.status === 403) return t("terms_forbidden");
    if (error.status === 503) return t("terms_unavailable");
  }
  return t("failed", { reason: error.message || String(error) });
}

export function mount(root, ctx) {
  const tableBox = el("div", { id: "services-table" });
  const formBox = el("div", { id: "services-edit" });
  let editing = null; // {id, rows: [[from, to]], unlimited, quota, message, good}
  let stream = null;

  function usage(service) {
    if (!service.daily_quota) return el("span", { class: "muted" }, t("no_quota"));
    const share = Math.min(1, service.issued_today / service.daily_quota);
    const level = share >= 1 ? "bad" : share >= 0.8 ? "warn" : "";
    return el("span", {},
      el("span", { class: `bar ${level}` }, el("span", { style: `width: ${Math.round(share * 100)}%` })),
      `${Math.round(share * 100)}%`);
  }

  function startEdit(service) {
    editing = {
      id: service.id,
      rows: editableIntervals(service.hours),
      unlimited: service.daily_quota === null,
      quota: service.daily_quota ?? 0,
      message: "",
      good: false,
    };
    renderTable();
    renderForm();
    formBox.querySelector("form")?.scrollIntoView({ block: "nearest" });
    formBox.querySelector("input")?.focus({ preventScroll: true });
  }

  function renderTable() {
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
      { key: "edit", label: t("col_actions"), cell: (s) => el("button",
        { type: "button", class: editing?.id === s.id ? "active" : null, dataset: { edit: s.id },
          onclick: () => startEdit(s) }, t("terms_edit")) },
    ];
    redraw(tableBox, table(columns, ctx.data.services,
      { rowAttrs: (s) => ({ dataset: { service: s.id },
        class: editing?.id === s.id ? "editing" : null }) }));
  }

  function intervalRow(row, index) {
    const input = (part) => el("input", {
      type: "text", inputmode: "numeric", maxlength: 5, placeholder: part ? "12:00" : "09:00",
      value: row[part], class: "clock", "aria-label": t(part ? "terms_to" : "terms_from"),
      dataset: { part: part ? "to" : "from" },
      oninput: (e) => { row[part] = e.target.value.trim(); },
    });
    return el("li", { class: "interval", dataset: { index } },
      input(0), el("span", {}, "–"), input(1),
      el("button", { type: "button", class: "remove", title: t("terms_remove"),
        onclick: () => { editing.rows.splice(index, 1); renderForm(); } }, t("terms_remove")));
  }

  function renderForm() {
    if (!editing) { formBox.replaceChildren(); return; }
    const service = ctx.data.services.find((s) => s.id === editing.id);
    if (!service) { editing = null; formBox.replaceChildren(); return; }
    const quota = el("input", { type: "number", min: 0, step: 1, name: "quota",
      value: editing.quota, disabled: editing.unlimited, "aria-label": t("col_quota"),
      oninput: (e) => { editing.quota = e.target.value === "" ? NaN : Number(e.target.value); } });
    const unlimited = el("input", { type: "checkbox", name: "unlimited", checked: editing.unlimited,
      onchange: (e) => { editing.unlimited = e.target.checked; quota.disabled = e.target.checked; } });
    const result = el("p", { id: "terms-result",
      class: `result ${editing.good ? "good" : "error"}`, role: "status" }, editing.message);
    const form = el("form", { class: "panel form", id: "terms-form", dataset: { service: service.id },
      onsubmit: (e) => { e.preventDefault(); save(); } },
      el("h3", {}, t("terms_title", { name: service.name })),
      el("div", { class: "row" }, el("label", {}, t("col_hours")),
        el("span", { class: "muted" }, weekdaysText(service.hours.weekdays))),
      el("ol", { class: "intervals" }, editing.rows.map(intervalRow)),
      el("div", { class: "row" },
        el("button", { type: "button", id: "terms-add",
          onclick: () => { editing.rows.push(["", ""]); renderForm(); } }, t("terms_add"))),
      el("div", { class: "row" }, el("label", {}, t("col_quota")), quota,
        el("label", { class: "check" }, unlimited, t("no_quota"))),
      el("p", { class: "hint" }, t("terms_hint")),
      el("div", { class: "row" },
        el("button", { type: "submit", class: "ok", id: "terms-save" }, t("terms_save")),
        el("button", { type: "button", id: "terms-cancel",
          onclick: () => { editing = null; renderTable(); renderForm(); } }, t("terms_cancel"))),
      result);
    formBox.replaceChildren(form);
  }

  async function save() {
    const rows = editing.rows.map(([a, b]) => [a.trim(), b.trim()]);
    const quota = editing.unlimited ? null : editing.quota;
    const problem = problemOf(rows, editing.unlimited, quota);
    if (problem) { editing.message = problem; editing.good = false; renderForm(); return; }
    const target = editing;
    try {
      await api(`/services/${encodeURIComponent(target.id)}/terms`, { method: "PUT",
        body: { hours: rows.map(([from, to]) => ({ from, to })), daily_quota: quota } });
    } catch (error) {
      target.message = apiProblem(error);
      target.good = false;
      if (editing === target) renderForm();
      return;
    }
    await ctx.reload();
    const name = ctx.serviceName(target.id);
    editing = null;
    renderTable();
    renderForm();
    toast(t("terms_saved", { name }));
  }

  const refresh = coalesce(async () => { await ctx.reload(); renderTable(); renderForm(); }, 250);

  function render() {
    root.replaceChildren(
      el("header", {}, el("h2", {}, t("services_title"))),
      el("p", { class: "note", id: "services-readonly" }, t("services_readonly")),
      tableBox, formBox);
    renderTable();
    renderForm();
  }

  return {
    stale: true,
    async show() {
      this.stale = false;
      // The console's own stream does not carry service events: follow them here.
      stream ??= openStream({ types: ["service.*"], onEvent: () => refresh() });
      render();
    },
    live() { renderTable(); },
    relabel() { render(); },
  };
}
