// The mobile page (M1, Q1, Q6): what a citizen opens on a phone, without logging in.
// Home shows the hall's queues and six ways in; each is a view under a #/ address,
// so the phone's back button works. Queues and the citizen's own tickets follow the
// hall's public event stream (which carries no personal data); a called ticket
// vibrates the phone and says which window to go to, whatever view is open.

import "./strings.js";
import { api } from "/ui/common/api.js";
import { coalesce, openStream } from "/ui/common/stream.js";
import { apply, languageSwitch, onLanguage, t } from "/ui/common/i18n.js";
import { bookTitle, enterMyBookings, leaveMyBookings, renderBook, renderMyBookings, startBooking } from "./booking.js";
import { enterGuides, guideTitle, renderCase, renderGuide, renderGuides } from "./lookup.js";
import { current, places, refreshPlaces, renderTake, renderTicket, tickets, windowName } from "./ticket.js";
import { el, fill, minutes, setZone } from "./util.js";

const main = document.getElementById("view");
const title = document.getElementById("title");
const back = document.getElementById("back");
const alertBar = document.getElementById("called");
const offline = document.getElementById("offline");

const ICONS = {
  take: "M4 7h16v3a2 2 0 0 0 0 4v3H4v-3a2 2 0 0 0 0-4zM9 7v10",
  ticket: "M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18zM12 7v5l3 2",
  book: "M4 6h16v14H4zM4 10h16M8 3v5M16 3v5M8 14h3",
  booking: "M6 3h12v18l-6-4-6 4zM9 9h6",
  case: "M10.5 4a6.5 6.5 0 1 0 0 13 6.5 6.5 0 0 0 0-13zM15.5 15.5 20 20",
  guides: "M4 5a2 2 0 0 1 2-2h13v16H6a2 2 0 0 0-2 2zM4 5v16M8 7h7M8 11h7",
};

function icon(name) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.classList.add("icon");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

const ctx = {
  hall: null,
  setup: null,
  render,
  go(hash) {
    if (location.hash === hash) render();
    else location.hash = hash;
  },
};

// ------------------------------------------------------------------ views

const VIEWS = {
  home: { title: () => ctx.hall.hall.name, render: renderHome, live: true },
  take: { title: () => t("nav.take"), render: renderTake, live: true },
  ticket: { title: () => t("ticket.title"), render: renderTicket, live: true },
  book: { title: bookTitle, render: renderBook },
  booking: { title: () => t("booking.title"), render: renderMyBookings,
    enter: enterMyBookings, leave: leaveMyBookings },
  case: { title: () => t("case.title"), render: renderCase },
  guides: { title: () => t("guides.title"), render: renderGuides },
  guide: { title: guideTitle, render: renderGuide, enter: (id) => enterGuides(ctx, id) },
};

let route = { name: "home", arg: null };

function parse() {
  const [name, arg] = location.hash.replace(/^#\/?/, "").split("/");
  return VIEWS[name] ? { name, arg: arg ? decodeURIComponent(arg) : null } : { name: "home", arg: null };
}

function navigate() {
  const next = parse();
  VIEWS[route.name].leave?.();
  route = next;
  VIEWS[route.name].enter?.(route.arg);
  if (route.name === "ticket") later();
  render();
  window.scrollTo(0, 0);
}

function render() {
  const view = VIEWS[route.name];
  document.body.dataset.view = route.name;
  title.textContent = view.title();
  document.title = route.name === "home" ? `${ctx.hall.hall.name} · ${t("page.title")}` : view.title();
  back.hidden = route.name === "home";
  back.setAttribute("aria-label", t("back"));
  main.dataset.view = route.name;
  view.render(ctx, main);
  renderAlert();
}

function renderHome(_ctx, root) {
  const mine = current();
  const strip = mine && ["waiting", "called", "serving", "held"].includes(mine.status)
    ? el("a", { class: `mine-strip status-${mine.status}`, href: "#/ticket", id: "mine-strip" },
      el("span", { text: t("home.my_ticket", { number: mine.number, status: t(`status.${mine.status}`) }) }),
      el("span", { class: "chevron", text: "›" }))
    : null;
  const nav = el("nav", { class: "tiles" }, ["take", "ticket", "book", "booking", "case", "guides"].map((name) =>
    el("a", {
      class: `tile tile-${name}`, href: `#/${name}`, dataset: { go: name },
      onclick: name === "book" ? startBooking : undefined,
    }, icon(name), el("span", { class: "tile-name", text: t(`nav.${name}`) }),
    el("span", { class: "tile-sub", text: t(`nav.${name}.sub`) }))));
  const queue = el("section", { class: "queue panel" },
    el("h2", { text: t("home.queue") }),
    el("ul", { class: "services", id: "services" }, ctx.hall.services.map((s) => el("li", {
      class: s.open ? "service" : "service closed", dataset: { service: s.id },
    }, el("span", { class: "service-name", text: s.name }),
    s.open
      ? el("span", { class: "service-queue" },
        el("span", { class: "waiting", text: t("home.waiting", { n: s.waiting }) }),
        el("span", { class: "estimate muted", text: s.estimated_minutes
          ? t("home.estimate", { n: minutes(s.estimated_minutes) }) : t("home.no_estimate") }))
      : el("span", { class: "service-queue muted", text: t("home.closed") })))));
  fill(root, ...[strip, nav, queue].filter(Boolean));
}

// A called ticket is said on every view but its own card's.
function renderAlert() {
  const called = tickets().map((k) => places.get(k.id)).find((p) => p && p.status === "called");
  if (!called || route.name === "ticket") {
    alertBar.hidden = true;
    return;
  }
  alertBar.hidden = false;
  alertBar.replaceChildren(
    el("strong", { class: "number", text: called.number }),
    el("span", { text: t("ticket.go", { window: windowName(ctx, called.window) }) }));
}

function vibrate() {
  if (typeof navigator.vibrate === "function") navigator.vibrate([400, 150, 400, 150, 400]);
}

// ------------------------------------------------------------------ live data

async function refresh() {
  ctx.hall = await api("/hall");
  await refreshPlaces(vibrate);
  if (VIEWS[route.name].live) render();
  else renderAlert();
}

const later = coalesce(() => refresh().catch(() => {}), 250);

// Back goes up, not through history: a guide to the guides, everything else home.
back.addEventListener("click", () => { location.hash = route.name === "guide" ? "#/guides" : "#/"; });
alertBar.addEventListener("click", () => { location.hash = "#/ticket"; });
languageSwitch(document.getElementById("lang"));
onLanguage(() => render());
apply();

// The first load waits for the hall; a phone on a bad connection is told and tries again.
for (;;) {
  try {
    [ctx.hall, ctx.setup] = await Promise.all([api("/hall"), api("/appointment-services")]);
    break;
  } catch {
    fill(main, el("p", { class: "empty", text: t("error.network") }));
    await new Promise((resolve) => { setTimeout(resolve, 3000); });
  }
}
const setup = ctx.setup;
setZone(setup.timezone);
await refreshPlaces(() => {});
route = parse();
VIEWS[route.name].enter?.(route.arg);
render();
window.addEventListener("hashchange", navigate);
// A recall keeps the ticket "called": the phone vibrates again all the same.
function onEvent(event) {
  if (event.type === "ticket.recalled" && tickets().some((k) => k.id === event.ticket_id)) vibrate();
  later();
}

openStream({
  types: ["ticket.*", "window.*", "day.*"],
  onEvent,
  onStatus: (status) => { offline.hidden = status === "online"; if (status === "online") later(); },
});
