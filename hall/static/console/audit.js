// The audit log (G3): who did what, when and from where, newest first, a page at a
// time (GET /api/v1/audit, keyset paging with before=).
import { api } from "/ui/common/api.js";
import { t } from "/ui/common/i18n.js";
import { el, failed, strategyText, table, when } from "./dom.js";

const KINDS = ["window.", "strategy.", "device.", "signage.", "auth.", "ticket.", "stats."];
const PAGE = 50;

export function mount(root, ctx) {
  let filter = { action: "", actor: "" };
  let cursors = [null];      // before= of each page seen; the last is the current page
  let page = { records: [], next_before: null };

  async function load() {
    const query = new URLSearchParams({ limit: String(PAGE) });
    const before = cursors[cursors.length - 1];
    if (before) query.set("before", String(before));
    if (filter.action) query.set("action", filter.action);
    if (filter.actor) query.set("actor", filter.actor);
    page = await api(`/audit?${query}`);
    render();
  }

  function actionLabel(action) {
    const label = t(`a.${action}`);
    return label === `a.${action}` ? action : label;
  }

  function detail(record) {
    const entries = Object.entries(record.detail || {});
    if (record.action === "strategy.set" && Array.isArray(record.detail.rules)) {
      return strategyText(record.detail.rules);
    }
    return entries.map(([key, value]) => `${key}=${typeof value === "object"
      ? JSON.stringify(value) : value}`).join("  ");
  }

  function target(record) {
    if (!record.target) return "—";
    if (record.action.startsWith("window.")) return ctx.windowName(record.target);
    return record.target;
  }

  function render() {
    const form = el("form", { class: "filters", id: "audit-filter", onsubmit: (e) => {
      e.preventDefault();
      filter = { action: e.target.elements.action.value, actor: e.target.elements.actor.value.trim() };
      cursors = [null];
      load().catch(failed);
    } },
      el("label", { for: "audit-action" }, t("filter_action")),
      el("select", { id: "audit-action", name: "action" },
        el("option", { value: "" }, t("all")),
        KINDS.map((k) => el("option", { value: k, selected: k === filter.action },
          t(`act_${k.slice(0, -1)}`)))),
      el("label", { for: "audit-actor" }, t("filter_actor")),
      el("input", { id: "audit-actor", name: "actor", value: filter.actor, size: 10 }),
      el("button", { class: "primary", type: "submit" }, t("search")));
    const rows = table([
      { key: "at", label: t("col_at"), cell: (r) => when(r.at) },
      { key: "actor", label: t("col_actor"), cell: (r) => el("span", {}, r.actor, " ",
        el("span", { class: "code" }, r.role)) },
      { key: "action", label: t("col_action"), cell: (r) => el("span", {}, actionLabel(r.action),
        " ", el("span", { class: "code" }, r.action)) },
      { key: "target", label: t("col_target"), cell: target },
      { key: "detail", label: t("col_detail"), className: "detail", cell: (r) => {
        const text = detail(r);
        return el("span", { title: text }, text || "—");
      } },
      { key: "remote", label: t("col_remote"), cell: (r) => r.remote || "—" },
    ], page.records, { rowAttrs: (r) => ({ dataset: { action: r.action, id: r.id } }) });
    root.replaceChildren(
      el("header", {}, el("h2", {}, t("audit_title")), form, el("span", { class: "spacer" }),
        el("button", { type: "button", onclick: () => { cursors = [null]; load().catch(failed); } },
          t("refresh"))),
      rows,
      el("div", { class: "pager" },
        el("button", { type: "button", id: "audit-newer", disabled: cursors.length <= 1,
          onclick: () => { cursors.pop(); load().catch(failed); } }, t("newer")),
        el("span", { class: "muted" }, t("page_n", { n: cursors.length })),
        el("button", { type: "button", id: "audit-older", disabled: !page.next_before,
          onclick: () => { cursors.push(page.next_before); load().catch(failed); } }, t("older"))));
  }

  return {
    async show() { cursors = [null]; await load(); },
    relabel() { render(); },
  };
}
