// Remote tickets (M1, Q6): take one with a phone number, then follow its place live.
// The phone keeps each ticket's id and check token; the place comes from
// GET /mobile/tickets/{id}?token=, read again whenever the hall's stream moves.

import { api, ApiError } from "/ui/common/api.js";
import { t } from "/ui/common/i18n.js";
import { el, fill, keep, kept, minutes, reason, stamp } from "./util.js";

const TICKETS = "smarthall.mobile.tickets";
const FINAL = new Set(["finished", "abandoned", "cancelled", "expired"]);

// id → the last place read, or {gone: true}
export const places = new Map();
const form = { service: null, phone: "", error: "", busy: false };

export function tickets() {
  return kept(TICKETS);
}

function forget(id) {
  keep(TICKETS, tickets().filter((k) => k.id !== id));
  places.delete(id);
}

// The ticket that matters most now: called first, then waiting, newest first.
export function current() {
  const live = tickets().map((k) => places.get(k.id)).filter((p) => p && !p.gone);
  const rank = (p) => (p.status === "called" ? 0 : p.status === "serving" ? 1
    : p.status === "waiting" || p.status === "held" ? 2 : 3);
  return live.sort((a, b) => rank(a) - rank(b) || b.issued_at.localeCompare(a.issued_at))[0];
}

// Reads every kept ticket's place; calls `onCalled(place)` for one newly called.
export async function refreshPlaces(onCalled) {
  for (const { id, token } of tickets()) {
    const before = places.get(id);
    let place;
    try {
      place = await api(`/mobile/tickets/${encodeURIComponent(id)}?token=${encodeURIComponent(token)}`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) place = { id, gone: true };
      else continue;
    }
    places.set(id, place);
    if (place.status === "called" && before && before.status !== "called") onCalled(place);
  }
}

export function windowName(ctx, id) {
  const found = ctx.hall?.windows.find((w) => w.id === id);
  return found ? found.name : id || "";
}

// ------------------------------------------------------------------ take a ticket

export function renderTake(ctx, root) {
  const services = ctx.hall.services;
  const open = services.filter((s) => s.open);
  if (form.service && !open.some((s) => s.id === form.service)) form.service = null;
  const mine = current();
  const notice = mine && !FINAL.has(mine.status)
    ? el("p", { class: "note" }, t("take.have", { number: mine.number }),
      el("a", { href: "#/ticket", text: t("take.have.link") }))
    : null;
  const list = el("div", { class: "choices", role: "radiogroup" },
    services.map((s) => el("button", {
      class: `choice${form.service === s.id ? " chosen" : ""}`, type: "button",
      role: "radio", "aria-checked": form.service === s.id ? "true" : "false",
      disabled: !s.open, dataset: { service: s.id },
      onclick: () => { form.service = s.id; form.error = ""; ctx.render(); },
    },
    el("span", { class: "choice-name", text: s.name }),
    el("span", { class: "choice-meta", text: s.open
      ? `${t("home.waiting", { n: s.waiting })} · ${estimateText(s.estimated_minutes)}`
      : t("home.closed") }))));
  const phone = el("input", {
    id: "take-phone", type: "tel", inputmode: "numeric", autocomplete: "tel", maxlength: "15",
    value: form.phone, placeholder: "13800000000",
    oninput: (e) => { form.phone = e.target.value.trim(); },
  });
  const submit = el("button", {
    class: "primary big", id: "take-submit", type: "button", disabled: form.busy,
    text: t("take.submit"), onclick: () => take(ctx),
  });
  fill(root,
    notice,
    el("h2", { text: t("take.service") }),
    open.length ? null : el("p", { class: "muted", text: t("take.none_open") }),
    list,
    el("label", { class: "field" }, el("span", { text: t("take.phone") }), phone,
      el("small", { class: "muted", text: t("take.phone.hint", { n: ctx.setup.remote_tickets_per_phone }) })),
    form.error ? el("p", { class: "error", role: "alert", id: "take-error", text: form.error }) : null,
    submit,
  );
}

function estimateText(value) {
  return value ? t("home.estimate", { n: minutes(value) }) : t("home.no_estimate");
}

async function take(ctx) {
  if (!form.service) { form.error = t("take.choose_service"); ctx.render(); return; }
  if (!/^\d{7,15}$/.test(form.phone)) { form.error = t("take.bad_phone"); ctx.render(); return; }
  form.busy = true;
  form.error = "";
  ctx.render();
  try {
    const taken = await api("/mobile/tickets", {
      method: "POST", body: { service: form.service, phone: form.phone },
    });
    keep(TICKETS, [{ id: taken.ticket.id, token: taken.token },
      ...tickets().filter((k) => k.id !== taken.ticket.id)].slice(0, 10));
    places.set(taken.ticket.id, { ...taken.ticket, service_name: serviceName(ctx, taken.ticket.service) });
    form.service = null;
    ctx.go("#/ticket");
  } catch (error) {
    form.error = reason(error);
  } finally {
    form.busy = false;
    ctx.render();
  }
}

function serviceName(ctx, id) {
  return ctx.hall.services.find((s) => s.id === id)?.name || id;
}

// ------------------------------------------------------------------ my ticket

export function renderTicket(ctx, root) {
  const mine = tickets().map((k) => places.get(k.id) || { id: k.id, loading: true });
  if (!mine.length) {
    fill(root, el("div", { class: "empty" },
      el("p", { text: t("ticket.none") }),
      el("a", { class: "button primary big", href: "#/take", text: t("ticket.take") })));
    return;
  }
  const order = (p) => (p.gone || FINAL.has(p.status) ? 1 : 0);
  mine.sort((a, b) => order(a) - order(b));
  fill(root, ...mine.map((p) => card(ctx, p)),
    el("p", { class: "muted small center", text: t("ticket.live") }));
}

function card(ctx, p) {
  if (p.loading) return el("section", { class: "ticket-card" }, el("p", { class: "muted", text: t("loading") }));
  const remove = el("button", { class: "link", type: "button", text: t("ticket.forget"),
    onclick: () => { forget(p.id); ctx.render(); } });
  if (p.gone) {
    return el("section", { class: "ticket-card gone", dataset: { ticket: p.id } },
      el("p", { text: t("ticket.gone") }), remove);
  }
  const head = el("div", { class: "ticket-head" },
    el("span", { class: "ticket-service", text: p.service_name }),
    el("span", { class: `pill status-${p.status}`, text: t(`status.${p.status}`) }));
  const number = el("div", { class: "ticket-number number", text: p.number });
  let body;
  if (p.status === "called") {
    body = el("div", { class: "called-box", role: "alert" },
      el("div", { class: "go", text: t("ticket.go", { window: windowName(ctx, p.window) }) }),
      el("div", { class: "hint", text: t("ticket.called.hint") }));
  } else if (p.status === "serving") {
    body = el("div", { class: "serving", text: t("ticket.serving", { window: windowName(ctx, p.window) }) });
  } else if (p.status === "waiting") {
    body = el("div", { class: "facts" },
      el("div", { class: "fact" }, el("span", { class: "fact-label", text: t("ticket.ahead") }),
        el("span", { class: "fact-value ahead", text: t("ticket.ahead.n", { n: p.people_ahead ?? 0 }) })),
      el("div", { class: "fact" }, el("span", { class: "fact-label", text: t("ticket.estimate") }),
        el("span", { class: "fact-value estimate", text: p.estimated_minutes
          ? t("ticket.estimate.n", { n: minutes(p.estimated_minutes) }) : t("ticket.estimate.none") })));
  } else {
    body = el("div", { class: "muted", text: t(`status.${p.status}`) });
  }
  return el("section", { class: `ticket-card ${p.status}`, dataset: { ticket: p.id } },
    head, el("div", { class: "muted small", text: t("ticket.number") }), number, body,
    el("div", { class: "ticket-foot" },
      el("span", { class: "muted small", text: t("ticket.issued", { time: stamp(p.issued_at) }) }),
      FINAL.has(p.status) ? remove : null));
}
