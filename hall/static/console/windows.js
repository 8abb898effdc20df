// Windows: every window's live state, staff and services; a manager closes a window
// (whoever is logged in there is logged out) or opens it again.
import { api } from "/ui/common/api.js";
import { t } from "/ui/common/i18n.js";
import { el, failed, redraw, stateBadge, strategyText, table, toast } from "./dom.js";

const STATES = ["idle", "calling", "serving", "paused", "not_logged_in", "closed"];

export function mount(root, ctx) {
  let armed = null;   // the window whose close button asks "really?"

  async function act(window, operation) {
    try {
      await api(`/windows/${encodeURIComponent(window.id)}/${operation}`, { method: "POST" });
      toast(t(operation === "close" ? "closed_done" : "opened_done", { name: window.name }));
      armed = null;
      await ctx.reload();
      render();
    } catch (error) {
      failed(error);
    }
  }

  function actions(window) {
    if (window.state === "closed") {
      return el("button", { class: "ok", type: "button", dataset: { action: "open" },
        onclick: () => act(window, "open") }, t("open_window"));
    }
    const busy = window.state === "calling" || window.state === "serving";
    const confirming = armed === window.id;
    return el("button", {
      class: confirming ? "danger" : null, type: "button", dataset: { action: "close" },
      disabled: busy, title: busy ? t("busy") : null,
      onclick: () => {
        if (!confirming) {
          armed = window.id;
          render();
          setTimeout(() => { if (armed === window.id) { armed = null; render(); } }, 4000);
        } else {
          act(window, "close");
        }
      },
    }, t(confirming ? "confirm_close" : "close_window"));
  }

  function render() {
    const data = ctx.data;
    const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
    for (const w of data.windows) counts[w.state] = (counts[w.state] || 0) + 1;
    const columns = [
      { key: "window", label: t("col_window"), cell: (w) => el("span", {},
        el("strong", {}, w.name), " ", el("span", { class: "code" }, w.id)) },
      { key: "area", label: t("col_area"), cell: (w) => ctx.areaName(w.area) },
      { key: "state", label: t("col_state"), cell: (w) => stateBadge(w.state) },
      { key: "staff", label: t("col_staff"), cell: (w) => w.staff_name || "—" },
      { key: "ticket", label: t("col_ticket"), cell: (w) => w.ticket
        ? el("span", { class: "number" }, w.ticket) : (w.pause_message || "—") },
      { key: "services", label: t("col_services"), cell: (w) => Object.entries(w.services).map(
        ([id, weight]) => el("span", { class: "tag", title: `${id} ×${weight}` },
          ctx.serviceName(id), weight > 1 ? ` ×${weight}` : "")) },
      { key: "groups", label: t("col_groups"), cell: (w) => w.groups.length
        ? w.groups.map((g) => el("span", { class: "tag" }, g)) : "—" },
      { key: "strategy", label: t("col_strategy"), cell: (w) => el("span", { class: "code" },
        strategyText(w.strategy)) },
      { key: "anomalies", label: t("col_anomalies"), cell: (w) => w.anomalies.length
        ? w.anomalies.map((a) => el("span", { class: "tag bad" }, t(`anomaly_${a}`))) : "" },
      { key: "actions", label: t("col_actions"), cell: actions },
    ];
    redraw(root,
      el("header", {},
        el("h2", {}, t("windows_title")),
        el("div", { class: "chips" }, STATES.map((s) => el("span", { class: "chip", dataset: { count: s } },
          el("span", { class: "state-dot", style: `background: var(--state-${s})` }),
          `${t(`state_${s}`)} ${counts[s]}`))),
        el("span", { class: "spacer" }),
        el("button", { type: "button", onclick: async () => { await ctx.reload(); render(); } },
          t("refresh"))),
      table(columns, data.windows, { rowAttrs: (w) => ({ dataset: { window: w.id, state: w.state } }) }),
    );
  }

  return {
    stale: true,
    async show() { this.stale = false; render(); },
    live() { render(); },
    relabel() { render(); },
  };
}
