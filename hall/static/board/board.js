// The hall board (D13, D8): the numbers now being called, each with its window, the
// calls before them, how many wait for each service, the hall's name and the time,
// and the urgent notices as a ticker. Every call is spoken in Mandarin (and English
// with `?lang=en` or `?speak=en`); a recall is spoken again.
//
// `?area=<id>` or `?floor=<n>` shows one area's or one floor's windows and queues.
// A board PC runs Chromium with --autoplay-policy=no-user-gesture-required so the
// speech needs no click; without voices the board shows everything all the same.

import { api, takeTokenFromUrl } from "/ui/common/api.js";
import { coalesce, openStream } from "/ui/common/stream.js";
import { apply, language, register, setLanguage, t } from "/ui/common/i18n.js";
import { createAnnouncer } from "./speech.js";

register({
  zh: {
    now_calling: "正在呼叫", recently_called: "最近呼叫", waiting: "等候情况", notice: "通知",
    please_go: "请到", to_window: "{window}", invite: "请持号到窗口办理", recall: "再次呼叫",
    nobody_called: "暂无呼叫", waiting_count: "{n}", people: "人等候", eta: "预计 {m} 分钟",
    eta_none: "无需等候", closed: "暂停取号", floor: "{n}楼", weekday: "日一二三四五六",
    date: "{m}月{d}日 星期{w}",
  },
  en: {
    now_calling: "Now calling", recently_called: "Recently called", waiting: "Waiting",
    notice: "Notice", please_go: "go to", to_window: "{window}", invite: "Please go to the window",
    recall: "Called again", nobody_called: "No calls yet", waiting_count: "{n}", people: "waiting",
    eta: "about {m} min", eta_none: "no wait", closed: "not taking tickets", floor: "Floor {n}",
    weekday: "", date: "{w} {d} {mon}",
  },
});

const NOW_SHOWN = 4;
const RECENT_SHOWN = 12;
const SERVICES_PER_PAGE = 12;
const FLASH_MS = 3200;
const TICKET_ENDS = new Set(["ticket.finished", "ticket.skipped", "ticket.abandoned",
  "ticket.transferred", "ticket.held", "ticket.step_completed"]);

const params = new URLSearchParams(location.search);
if (params.get("lang") === "en" || params.get("lang") === "zh") setLanguage(params.get("lang"));
const scopeQuery = new URLSearchParams();
if (params.get("area")) scopeQuery.set("area", params.get("area"));
else if (params.get("floor")) scopeQuery.set("floor", params.get("floor"));

const speakLanguages = ["zh-CN"];
const extra = (params.get("speak") || "").split(",").filter(Boolean);
if (language() === "en" && !extra.includes("en")) extra.push("en");
for (const lang of extra) {
  const full = lang === "en" ? "en-US" : lang;
  if (!speakLanguages.includes(full)) speakLanguages.push(full);
}
export const announcer = createAnnouncer({ languages: speakLanguages });
window.boardAnnouncer = announcer;

const $ = (id) => document.getElementById(id);
const state = {
  hall: null,
  windows: new Map(),
  scope: null,
  calls: [],
  current: new Map(), // window -> the number at it (called or served)
  flashes: new Map(), // ticket id -> when its flash began
  notices: [],
  hallOffset: 0, // hall time minus this browser's time, in ms
  servicePage: 0,
};

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// ------------------------------------------------------------------ data

async function loadHall() {
  const hall = await api("/hall");
  state.hall = hall;
  state.hallOffset = Date.parse(hall.now) - Date.now();
  state.windows = new Map(hall.windows.map((w) => [w.id, w]));
  state.current = new Map(hall.windows.filter((w) => w.ticket).map((w) => [w.id, w.ticket]));
}

async function loadCalls() {
  const query = new URLSearchParams(scopeQuery);
  query.set("limit", "40");
  const calls = await api(`/hall/calls?${query}`);
  state.calls = [];
  for (const call of calls.reverse()) remember(call);
}

async function loadNotices() {
  state.notices = await api("/signage/notices");
  renderNotices();
  wakeForNotices(state.notices.map((n) => n.expires_at));
}

function inScope(windowId) {
  return !state.scope || state.scope.windows.includes(windowId);
}

function remember(call) {
  state.calls = state.calls.filter((c) => c.ticket_id !== call.ticket_id);
  state.calls.unshift(call);
  state.calls.length = Math.min(state.calls.length, 60);
}

function called(event, recall) {
  if (!inScope(event.window_id)) return;
  const name = state.windows.get(event.window_id)?.name || event.window_id;
  remember({ ticket_id: event.ticket_id, number: event.number, window: event.window_id,
             window_name: name, at: event.at, recall });
  state.current.set(event.window_id, event.number);
  state.flashes.set(event.ticket_id, Date.now());
  announcer.announce(event.number, name);
  renderCalls();
}

function ended(event) {
  const call = state.calls.find((c) => c.ticket_id === event.ticket_id);
  const windowId = event.window_id || event.from_window_id;
  if (call && state.current.get(windowId) === call.number) state.current.delete(windowId);
}

// ------------------------------------------------------------------ drawing

function renderHeader() {
  $("hall-name").textContent = state.hall?.hall.name || "";
  document.title = state.hall?.hall.name || document.title;
  let scope = "";
  if (params.get("area") && state.hall) {
    scope = state.hall.areas.find((a) => a.id === params.get("area"))?.name || "";
  } else if (params.get("floor")) {
    scope = t("floor", { n: params.get("floor") });
  }
  $("scope").textContent = scope;
}

function renderClock() {
  const at = new Date(Date.now() + state.hallOffset + hallZoneShift());
  const pad = (n) => String(n).padStart(2, "0");
  $("time").textContent = `${pad(at.getUTCHours())}:${pad(at.getUTCMinutes())}:${pad(at.getUTCSeconds())}`;
  const weekday = language() === "en"
    ? at.toLocaleDateString("en-GB", { weekday: "short", timeZone: "UTC" })
    : t("weekday")[at.getUTCDay()];
  const month = at.toLocaleDateString("en-GB", { month: "short", timeZone: "UTC" });
  $("date").textContent = t("date", { m: at.getUTCMonth() + 1, d: at.getUTCDate(), w: weekday,
                                      mon: month });
}

// The hall's UTC offset, read from its own "now" (…+08:00): the board shows the hall's
// local time whatever time zone the board PC was set up with.
function hallZoneShift() {
  const match = /([+-])(\d\d):(\d\d)$/.exec(state.hall?.now || "");
  if (!match) return -new Date().getTimezoneOffset() * 60000;
  const minutes = Number(match[2]) * 60 + Number(match[3]);
  return (match[1] === "-" ? -minutes : minutes) * 60000;
}

function nowCalls() {
  const seen = new Set();
  const now = [];
  for (const call of state.calls) {
    if (seen.has(call.window) || state.current.get(call.window) !== call.number) continue;
    seen.add(call.window);
    now.push(call);
    if (now.length === NOW_SHOWN) break;
  }
  return now;
}

function callCard(call, first) {
  const card = element("div", `call${first ? " first" : ""}`);
  card.dataset.ticket = call.ticket_id;
  card.dataset.window = call.window;
  const began = state.flashes.get(call.ticket_id);
  if (began !== undefined && Date.now() - began < FLASH_MS) {
    card.classList.add("flash");
    card.style.animationDelay = `${began - Date.now()}ms`;
  }
  const number = element("div", "number", call.number);
  const where = element("div", "where");
  where.append(`${t("please_go")} `, element("b", "", call.window_name));
  if (first) {
    const text = element("div", "text");
    if (call.recall) text.append(element("span", "recall-tag", t("recall")));
    text.append(where, element("div", "invite", t("invite")));
    card.append(number, text);
  } else {
    if (call.recall) card.append(element("span", "recall-tag", t("recall")));
    card.append(number, where);
  }
  return card;
}

function renderCalls() {
  const now = nowCalls();
  const box = $("now");
  if (now.length === 0) box.replaceChildren(element("div", "empty", t("nobody_called")));
  else box.replaceChildren(...now.map((call, i) => callCard(call, i === 0)));
  const shown = new Set(now.map((c) => c.ticket_id));
  const recent = state.calls.filter((c) => !shown.has(c.ticket_id)).slice(0, RECENT_SHOWN);
  $("recent").replaceChildren(...recent.map((call) => {
    const item = element("li");
    item.dataset.ticket = call.ticket_id;
    item.append(element("span", "number", call.number), element("span", "win", call.window_name));
    return item;
  }));
}

function scopedServices() {
  if (!state.hall) return [];
  const wanted = state.scope ? new Set(state.scope.services) : null;
  const services = state.hall.services.filter((s) => !wanted || wanted.has(s.id));
  const rank = (s) => (s.waiting > 0 ? 0 : s.open ? 1 : 2);
  return services.map((s, i) => [s, i]).sort((a, b) => rank(a[0]) - rank(b[0]) || a[1] - b[1])
    .map(([s]) => s);
}

function renderServices() {
  const services = scopedServices();
  const pages = Math.max(1, Math.ceil(services.length / SERVICES_PER_PAGE));
  state.servicePage %= pages;
  const page = services.slice(state.servicePage * SERVICES_PER_PAGE,
                              (state.servicePage + 1) * SERVICES_PER_PAGE);
  $("services").classList.toggle("one-row", page.length <= SERVICES_PER_PAGE / 2);
  $("services").replaceChildren(...page.map((service) => {
    const tile = element("div", `service${service.open ? "" : " closed"}`);
    tile.dataset.service = service.id;
    tile.append(element("div", "name", service.name));
    const figures = element("div", "figures");
    const count = element("span", "count number", t("waiting_count", { n: service.waiting }));
    count.append(element("small", "", t("people")));
    let eta = t("closed");
    if (service.open) {
      eta = service.waiting > 0 && service.estimated_minutes != null
        ? t("eta", { m: Math.round(service.estimated_minutes) }) : t("eta_none");
    }
    figures.append(count, element("span", "eta", eta));
    tile.append(figures);
    return tile;
  }));
}

function renderNotices() {
  const ticker = $("ticker");
  const text = $("ticker-text");
  ticker.hidden = state.notices.length === 0;
  text.replaceChildren(...state.notices.map((notice) => {
    const item = element("span", `notice ${notice.level}`, notice.text);
    item.dataset.notice = notice.id;
    return item;
  }));
  const length = state.notices.reduce((sum, n) => sum + n.text.length, 0);
  text.style.setProperty("--ticker-seconds", `${Math.max(18, 10 + length * 0.45)}s`);
}

// A notice that starts or expires later: read the notices again at that moment (the
// hall's time), not on a polling loop.
let noticeTimer = null;
let noticeWake = Infinity;
function wakeForNotices(moments) {
  const hallNow = Date.now() + state.hallOffset;
  for (const moment of moments) {
    const at = moment ? Date.parse(moment) : NaN;
    if (Number.isNaN(at) || at >= noticeWake) continue;
    noticeWake = at;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => {
      noticeWake = Infinity;
      loadNotices().catch(() => {});
    }, Math.min(Math.max(at - hallNow + 500, 0), 2 ** 31 - 1));
  }
}

function renderAll() {
  apply();
  renderHeader();
  renderClock();
  renderCalls();
  renderServices();
  renderNotices();
}

// ------------------------------------------------------------------ start

takeTokenFromUrl();
apply();
const [, scope] = await Promise.all([
  loadHall(),
  scopeQuery.toString() ? api(`/hall/scope?${scopeQuery}`) : Promise.resolve(null),
]);
state.scope = scope;
await Promise.all([loadCalls(), loadNotices()]);
renderAll();
setInterval(renderClock, 1000);
setInterval(() => {
  if (scopedServices().length > SERVICES_PER_PAGE) { state.servicePage += 1; renderServices(); }
}, 12000);

const refresh = coalesce(() => loadHall().then(() => { renderCalls(); renderServices(); })
  .catch(() => {}), 200);
let connected = false;
openStream({
  types: ["ticket.*", "window.*", "day.*", "signage.*"],
  area: state.scope ? state.scope.areas.join(",") : null,
  onEvent: (event) => {
    if (event.type === "ticket.called") called(event, false);
    else if (event.type === "ticket.recalled") called(event, true);
    else if (TICKET_ENDS.has(event.type)) ended(event);
    else if (event.type === "day.started") { state.calls = []; state.current.clear(); }
    else if (event.type === "signage.notices_changed") {
      loadNotices().catch(() => {});
      wakeForNotices([event.starts_at, event.expires_at]);
      return;
    }
    refresh();
  },
  onStatus: (status) => {
    $("offline").hidden = status === "online";
    if (status === "online") {
      if (connected) loadNotices().catch(() => {});
      connected = true;
      refresh();
    }
  },
});
