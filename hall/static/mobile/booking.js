// Appointments (Q1, M1): service → day → slot with the places left → who is coming →
// the booking code, shown big and kept on the phone. "My booking" shows the kept
// codes (or one typed in) and changes or cancels a booking by its code.

import { api } from "/ui/common/api.js";
import { t } from "/ui/common/i18n.js";
import { addDays, clock, dayOf, dayShort, el, fill, keep, kept, reason, slotLabel, weekday } from "./util.js";

const BOOKINGS = "smarthall.mobile.bookings";
const MAX_RANGE = 30;

const flow = {
  step: "service", service: null, day: null, slot: null, listing: null, loading: false,
  name: "", id_number: "", phone: "", error: "", busy: false, result: null, change: null,
};

export function bookingCodes() {
  return kept(BOOKINGS);
}

function keepCode(code) {
  keep(BOOKINGS, [code, ...bookingCodes().filter((c) => c !== code)].slice(0, 10));
}

// Entering the booking view from the home page starts a new booking.
export function startBooking() {
  Object.assign(flow, { step: "service", service: null, day: null, slot: null, listing: null,
    error: "", result: null, change: null });
}

function startChange(booking) {
  Object.assign(flow, { step: "slots", service: booking.service, day: dayOf(booking.slot_start),
    slot: null, listing: null, error: "", result: null, change: booking });
}

export function bookTitle() {
  return flow.change ? t("booking.change") : t("nav.book");
}

// ------------------------------------------------------------------ booking

export function renderBook(ctx, root) {
  if (flow.step === "service") return fill(root, serviceStep(ctx));
  if (flow.step === "slots") return fill(root, ...slotStep(ctx));
  if (flow.step === "who") return fill(root, ...whoStep(ctx));
  return fill(root, ...doneStep(ctx));
}

function rule(ctx) {
  return ctx.setup.services.find((s) => s.service === flow.service);
}

function serviceStep(ctx) {
  const services = ctx.setup.services;
  if (!services.length) return [el("p", { class: "empty", text: t("book.none") })];
  return [
    el("h2", { text: t("book.service") }),
    el("div", { class: "choices" }, services.map((s) => el("button", {
      class: "choice", type: "button", dataset: { service: s.service },
      onclick: () => {
        Object.assign(flow, { step: "slots", service: s.service, day: null, listing: null, error: "" });
        ctx.render();
      },
    }, el("span", { class: "choice-name", text: s.name }),
    el("span", { class: "choice-meta", text: t("book.slot_minutes", { n: s.slot_minutes, days: s.days_ahead }) })))),
  ];
}

async function loadSlots(ctx) {
  const found = rule(ctx);
  if (!found || flow.loading) return;
  flow.loading = true;
  const from = ctx.setup.today;
  const to = addDays(from, Math.min(found.days_ahead, MAX_RANGE));
  try {
    const query = new URLSearchParams({ service: flow.service, from, to });
    flow.listing = await api(`/appointment-slots?${query}`);
    flow.listing.from = from;
    flow.listing.to = to;
  } catch (error) {
    flow.error = reason(error);
    flow.listing = { slots: [], blackout_days: [], from, to };
  } finally {
    flow.loading = false;
    ctx.render();
  }
}

function byDay(listing) {
  const days = new Map();
  for (let day = listing.from; day <= listing.to; day = addDays(day, 1)) days.set(day, []);
  for (const slot of listing.slots) {
    const day = dayOf(slot.start);
    if (days.has(day)) days.get(day).push(slot);
  }
  return days;
}

function slotStep(ctx) {
  const found = rule(ctx);
  const heading = [
    flow.change ? el("div", { class: "panel current-slot" },
      el("span", { class: "muted small", text: t("book.change_current") }),
      el("div", { text: `${flow.change.service_name} · ${slotLabel(flow.change.slot_start, flow.change.slot_end)}` }))
      : el("div", { class: "chosen-service" }, el("strong", { text: found?.name || flow.service })),
  ];
  if (!flow.listing) {
    loadSlots(ctx);
    return [...heading, el("p", { class: "muted", text: t("loading") })];
  }
  const days = byDay(flow.listing);
  const open = (slots) => slots.filter((s) => s.bookable);
  if (!flow.day || !days.has(flow.day) || (!flow.change && !open(days.get(flow.day)).length)) {
    flow.day = [...days.keys()].find((d) => open(days.get(d)).length) || [...days.keys()][0];
  }
  const strip = el("div", { class: "days", role: "tablist" }, [...days.entries()].map(([day, slots]) => {
    const bookable = open(slots);
    const left = bookable.reduce((n, s) => n + s.remaining, 0);
    const note = bookable.length ? t("book.left", { n: left })
      : slots.some((s) => s.reason === "slot_full") ? t("book.day.full") : t("book.day.none");
    return el("button", {
      class: `day${day === flow.day ? " chosen" : ""}${bookable.length ? "" : " unavailable"}`,
      type: "button", role: "tab", "aria-selected": day === flow.day ? "true" : "false",
      dataset: { day }, disabled: !slots.length,
      onclick: () => { flow.day = day; flow.error = ""; ctx.render(); },
    }, el("span", { class: "day-date", text: dayShort(day) }),
    el("span", { class: "day-week", text: weekday(day) }),
    el("span", { class: "day-left", text: note }));
  }));
  const slots = days.get(flow.day) || [];
  const grid = slots.length ? el("div", { class: "slots" }, slots.map((s) => {
    const isCurrent = flow.change && Date.parse(s.start) === Date.parse(flow.change.slot_start);
    const state = isCurrent ? t("book.change_current") : s.bookable ? t("book.left", { n: s.remaining })
      : s.reason === "slot_full" ? t("book.full") : t("book.closed");
    return el("button", {
      class: `slot${s.bookable && !isCurrent ? "" : " unavailable"}${s.reason === "slot_full" ? " full" : ""}`,
      type: "button", dataset: { start: s.start }, disabled: !s.bookable || isCurrent || flow.busy,
      onclick: () => pickSlot(ctx, s),
    }, el("span", { class: "slot-time", text: `${clock(s.start)}-${clock(s.end)}` }),
    el("span", { class: "slot-left", text: state }));
  })) : el("p", { class: "muted", text: t("book.no_slots") });
  return [
    ...heading,
    el("h2", { text: t("book.day") }), strip,
    el("h2", { text: flow.change ? t("book.change_pick") : t("book.slot") }),
    flow.error ? el("p", { class: "error", role: "alert", text: flow.error }) : null,
    grid,
  ];
}

async function pickSlot(ctx, slot) {
  flow.error = "";
  if (!flow.change) {
    Object.assign(flow, { slot, step: "who" });
    ctx.render();
    return;
  }
  flow.busy = true;
  ctx.render();
  try {
    const moved = await api(`/bookings/${encodeURIComponent(flow.change.code)}/change`, {
      method: "POST", body: { slot_start: slot.start },
    });
    bookings.set(moved.code, moved);
    mine.notice = t("booking.changed", { slot: slotLabel(moved.slot_start, moved.slot_end) });
    flow.change = null;
    ctx.go("#/booking");
  } catch (error) {
    flow.error = reason(error);
    flow.listing = null;
  } finally {
    flow.busy = false;
    ctx.render();
  }
}

function input(id, key, props = {}) {
  return el("input", { id, value: flow[key], oninput: (e) => { flow[key] = e.target.value; }, ...props });
}

function whoStep(ctx) {
  const found = rule(ctx);
  return [
    el("div", { class: "panel chosen-slot" },
      el("span", { class: "muted small", text: t("book.chosen") }),
      el("strong", { text: found?.name || flow.service }),
      el("div", { class: "slot-when", text: slotLabel(flow.slot.start, flow.slot.end) }),
      el("button", { class: "link", type: "button", text: t("book.slot"),
        onclick: () => { flow.step = "slots"; flow.error = ""; ctx.render(); } })),
    el("h2", { text: t("book.who") }),
    el("label", { class: "field" }, el("span", { text: t("book.name") }),
      input("book-name", "name", { autocomplete: "name", maxlength: "64" })),
    el("label", { class: "field" }, el("span", { text: t("book.id_number") }),
      input("book-id", "id_number", { maxlength: "18", autocomplete: "off" })),
    el("label", { class: "field" }, el("span", { text: t("book.phone") }),
      input("book-phone", "phone", { type: "tel", inputmode: "numeric", maxlength: "15", autocomplete: "tel" })),
    el("p", { class: "muted small", text: t("book.either") }),
    flow.error ? el("p", { class: "error", role: "alert", id: "book-error", text: flow.error }) : null,
    el("button", { class: "primary big", id: "book-submit", type: "button", disabled: flow.busy,
      text: t("book.submit"), onclick: () => book(ctx) }),
  ];
}

async function book(ctx) {
  const name = flow.name.trim();
  const idNumber = flow.id_number.trim().toUpperCase();
  const phone = flow.phone.trim();
  flow.error = !name ? t("book.need_name")
    : !idNumber && !phone ? t("book.need_id")
      : idNumber && !/^\d{17}[\dX]$/.test(idNumber) ? t("book.bad_id")
        : phone && !/^\d{7,15}$/.test(phone) ? t("take.bad_phone") : "";
  if (flow.error) { ctx.render(); return; }
  flow.busy = true;
  ctx.render();
  const citizen = { name };
  if (idNumber) citizen.id_number = idNumber;
  if (phone) citizen.phone = phone;
  try {
    const booking = await api("/bookings", {
      method: "POST",
      body: { service: flow.service, slot_start: flow.slot.start, citizen, channel: "mobile" },
    });
    keepCode(booking.code);
    bookings.set(booking.code, booking);
    Object.assign(flow, { step: "done", result: booking, listing: null });
  } catch (error) {
    flow.error = reason(error);
    if (error.code === "slot_full" || error.code === "booking_closed") {
      Object.assign(flow, { step: "slots", listing: null });
    }
  } finally {
    flow.busy = false;
    ctx.render();
  }
}

function doneStep() {
  const b = flow.result;
  return [
    el("section", { class: "code-card", role: "status" },
      el("div", { class: "done", text: t("book.done") }),
      el("div", { class: "muted", text: t("book.code") }),
      el("div", { class: "booking-code number", id: "booking-code", text: b.code }),
      el("div", { class: "code-what" }, el("strong", { text: b.service_name })),
      el("div", { class: "code-when", text: slotLabel(b.slot_start, b.slot_end) }),
      el("p", { class: "small", text: t("book.code.hint") }),
      el("p", { class: "muted small", text: t("book.code.kept") })),
    el("a", { class: "button big", href: "#/booking", text: t("book.to_mine") }),
  ];
}

// ------------------------------------------------------------------ my booking

const bookings = new Map(); // code → booking, or {gone: true}
const mine = { notice: "", error: "", lookup: "", confirming: null, loading: new Set() };

export function enterMyBookings() {
  bookings.clear();
  mine.confirming = null;
  mine.error = "";
}

export function leaveMyBookings() {
  mine.notice = "";
}

async function load(ctx, code) {
  if (mine.loading.has(code)) return;
  mine.loading.add(code);
  try {
    bookings.set(code, await api(`/bookings/${encodeURIComponent(code)}`));
  } catch (error) {
    bookings.set(code, { code, gone: true, why: reason(error) });
  } finally {
    mine.loading.delete(code);
    ctx.render();
  }
}

export function renderMyBookings(ctx, root) {
  const codes = bookingCodes();
  for (const code of codes) if (!bookings.has(code)) load(ctx, code);
  const lookup = el("form", { class: "lookup", onsubmit: (e) => { e.preventDefault(); lookUp(ctx); } },
    el("input", { id: "booking-lookup", value: mine.lookup, placeholder: t("booking.lookup"),
      autocomplete: "off", maxlength: "16", oninput: (e) => { mine.lookup = e.target.value; } }),
    el("button", { class: "primary", type: "submit", text: t("booking.lookup.go") }));
  fill(root,
    mine.notice ? el("p", { class: "notice", role: "status", id: "booking-notice", text: mine.notice }) : null,
    lookup,
    mine.error ? el("p", { class: "error", role: "alert", text: mine.error }) : null,
    codes.length ? null : el("p", { class: "empty", text: t("booking.none") }),
    ...codes.map((code) => bookingCard(ctx, code, bookings.get(code))),
  );
}

async function lookUp(ctx) {
  const code = mine.lookup.trim().toUpperCase();
  if (!code) return;
  mine.error = "";
  try {
    const booking = await api(`/bookings/${encodeURIComponent(code)}`);
    bookings.set(booking.code, booking);
    keepCode(booking.code);
    mine.lookup = "";
  } catch (error) {
    mine.error = reason(error);
  }
  ctx.render();
}

function bookingCard(ctx, code, b) {
  const forget = el("button", { class: "link", type: "button", text: t("booking.forget"),
    onclick: () => { keep(BOOKINGS, bookingCodes().filter((c) => c !== code)); bookings.delete(code); ctx.render(); } });
  if (!b) return el("section", { class: "booking-card" }, el("p", { class: "muted", text: t("loading") }));
  if (b.gone) {
    return el("section", { class: "booking-card gone", dataset: { code } },
      el("div", { class: "number", text: code }), el("p", { text: b.why }), forget);
  }
  const open = b.status === "booked";
  let actions;
  if (open && b.channel === "backend") {
    actions = el("p", { class: "muted small", text: t("error.managed_by_backend") });
  } else if (open && mine.confirming === code) {
    actions = el("div", { class: "confirm" },
      el("p", { text: t("booking.cancel.ask") }),
      el("div", { class: "actions" },
        el("button", { class: "danger", type: "button", text: t("booking.cancel.yes"), onclick: () => cancel(ctx, b) }),
        el("button", { type: "button", text: t("booking.cancel.no"), onclick: () => { mine.confirming = null; ctx.render(); } })));
  } else if (open) {
    actions = el("div", { class: "actions" },
      el("button", { type: "button", class: "change", text: t("booking.change"),
        onclick: () => { startChange(b); ctx.go("#/book"); } }),
      el("button", { type: "button", class: "cancel", text: t("booking.cancel"),
        onclick: () => { mine.confirming = code; mine.notice = ""; ctx.render(); } }));
  } else {
    actions = el("div", { class: "actions" }, forget);
  }
  return el("section", { class: `booking-card ${b.status}`, dataset: { code } },
    el("div", { class: "ticket-head" },
      el("strong", { text: b.service_name }),
      el("span", { class: `pill booking-${b.status}`, text: t(`booking.status.${b.status}`) })),
    el("div", { class: "slot-when", text: slotLabel(b.slot_start, b.slot_end) }),
    el("div", { class: "code-line" }, el("span", { class: "muted small", text: t("book.code") }),
      el("span", { class: "number code", text: b.code })),
    b.holder?.name ? el("div", { class: "muted small", text: t("booking.holder", { name: [b.holder.name, b.holder.phone].filter(Boolean).join(" ") }) }) : null,
    actions);
}

async function cancel(ctx, b) {
  try {
    const done = await api(`/bookings/${encodeURIComponent(b.code)}/cancel`, { method: "POST" });
    bookings.set(done.code, done);
    mine.notice = t("booking.cancelled");
  } catch (error) {
    mine.error = reason(error);
  }
  mine.confirming = null;
  ctx.render();
}
