// Devices (Q14, W2): online or not, paper, cover and errors, the problems that need a
// person, and letting a quarantined (unannounced) device in.
import { api } from "/ui/common/api.js";
import { t } from "/ui/common/i18n.js";
import { el, failed, redraw, table, toast, when } from "./dom.js";

const KINDS = ["kiosk", "call_terminal", "evaluation_terminal", "window_screen", "hall_board",
  "led_strip", "printer", "card_reader", "document_camera", "announcer"];

export function mount(root, ctx) {
  let listing = { devices: [], alerts: [] };
  const dialog = el("dialog", { id: "approve-dialog" });
  document.body.append(dialog);

  async function load() {
    listing = await api("/devices");
    render();
  }

  function openApproval(device) {
    const form = el("form", { method: "dialog", id: "approve-form" },
      el("h3", {}, t("approve_title", { id: device.id })),
      el("div", { class: "form" },
        el("div", { class: "row" }, el("label", { for: "approve-kind" }, t("kind")),
          el("select", { id: "approve-kind", name: "kind" }, KINDS.map((k) => el("option",
            { value: k, selected: k === (device.kind || "kiosk") }, t(`kind_${k}`))))),
        el("div", { class: "row" }, el("label", { for: "approve-name" }, t("name")),
          el("input", { id: "approve-name", name: "name", required: true, maxlength: 100,
            value: device.name || device.id })),
        el("div", { class: "row" }, el("label", { for: "approve-area" }, t("area")),
          el("select", { id: "approve-area", name: "area" }, el("option", { value: "" }, t("none")),
            ctx.data.areas.map((a) => el("option", { value: a.id }, a.name)))),
        el("div", { class: "row" }, el("label", { for: "approve-window" }, t("window")),
          el("select", { id: "approve-window", name: "window" }, el("option", { value: "" }, t("none")),
            ctx.data.windows.map((w) => el("option", { value: w.id }, w.name)))),
        el("div", { class: "row" }, el("label", { for: "approve-screen" }, t("screen")),
          el("input", { id: "approve-screen", name: "screen", maxlength: 64 }))),
      el("div", { class: "actions" },
        el("button", { type: "button", onclick: () => dialog.close() }, t("cancel")),
        el("button", { class: "primary", type: "submit", id: "approve-submit" }, t("approve"))));
    form.addEventListener("submit", async (submitted) => {
      submitted.preventDefault();
      const f = form.elements;
      const body = { kind: f.kind.value, name: f.name.value.trim() };
      if (f.area.value) body.area = f.area.value;
      if (f.window.value) body.window = f.window.value;
      if (f.screen.value.trim()) body.screen = f.screen.value.trim();
      try {
        await api(`/devices/${encodeURIComponent(device.id)}/approve`, { method: "POST", body });
        dialog.close();
        toast(t("approve_done", { id: device.id }));
        await load();
      } catch (error) {
        failed(error);
      }
    });
    dialog.replaceChildren(form);
    dialog.showModal();
  }

  function place(d) {
    const parts = [d.area ? ctx.areaName(d.area) : null, d.window ? ctx.windowName(d.window) : null];
    return parts.filter(Boolean).join(" / ") || "—";
  }

  function render() {
    const columns = [
      { key: "id", label: t("col_device"), cell: (d) => el("span", { class: "code" }, d.id) },
      { key: "kind", label: t("col_kind"), cell: (d) => d.kind ? t(`kind_${d.kind}`) : "—" },
      { key: "name", label: t("col_name"), cell: (d) => d.name || "—" },
      { key: "place", label: t("col_place"), cell: place },
      { key: "online", label: t("col_online"), cell: (d) => el("span", { class: "state" },
        el("span", { class: "state-dot", style: `background: var(--${d.online ? "ok" : "state-closed"})` }),
        t(d.online ? "online" : "offline")) },
      { key: "seen", label: t("col_seen"), cell: (d) => when(d.last_seen) },
      { key: "paper", label: t("col_paper"), cell: (d) => el("span",
        { class: `tag ${d.paper === "out" ? "bad" : d.paper === "near_end" ? "warn" : ""}` },
        t(`paper_${d.paper}`) === `paper_${d.paper}` ? d.paper || "—" : t(`paper_${d.paper}`)) },
      { key: "cover", label: t("col_cover"), cell: (d) => el("span",
        { class: `tag ${d.cover === "open" ? "bad" : ""}` },
        t(`cover_${d.cover}`) === `cover_${d.cover}` ? d.cover || "—" : t(`cover_${d.cover}`)) },
      { key: "errors", label: t("col_errors"), cell: (d) => d.errors.length
        ? d.errors.map((e) => el("span", { class: "tag bad" }, e)) : "—" },
      { key: "firmware", label: t("col_firmware"), cell: (d) => d.firmware || "—" },
      { key: "status", label: t("col_status"), cell: (d) => d.quarantined
        ? el("span", {}, el("span", { class: "tag warn" }, t("quarantined")), " ",
          el("button", { class: "primary", type: "button", dataset: { approve: d.id },
            onclick: () => openApproval(d) }, t("approve")))
        : el("span", { class: "tag good", title: d.approved_by || "" }, t("approved")) },
    ];
    const alerts = listing.alerts.length
      ? listing.alerts.map((a) => el("span", { class: `tag ${a.problem === "quarantined" ? "warn" : "bad"}`,
        dataset: { alert: a.problem } },
        `${a.device_id} · ${t(`alert_${a.problem}`)}${a.detail ? `（${a.detail}）` : ""}`))
      : [el("span", { class: "tag good" }, t("no_alerts"))];
    redraw(root,
      el("header", {}, el("h2", {}, t("devices_title")), el("span", { class: "spacer" }),
        el("button", { type: "button", onclick: () => load().catch(failed) }, t("refresh"))),
      el("div", { class: "alerts", id: "device-alerts" }, alerts),
      table(columns, listing.devices, { rowAttrs: (d) => ({ dataset: { device: d.id,
        online: String(d.online), quarantined: String(d.quarantined) } }) }),
    );
  }

  return {
    async show() { await load(); },
    live() { load().catch(failed); },
    relabel() { render(); },
  };
}
