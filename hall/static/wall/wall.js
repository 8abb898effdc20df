// The live window-status wall (W1, W2): every window of the hall as a tile in its
// state's colour, floor by floor and area by area, with the counts per state, the
// queues, and what needs a person: attendance anomalies on the tiles, and the alerts
// (tickets waiting or served too long, devices offline, paper low) in the side panel.
//
// Opened with a staff or manager token (`?token=`) or after a login; `?area=<id>` or
// `?floor=<n>` (or the selector) shows one area or floor. Live from the event stream.

import { ApiError, api, login, takeTokenFromUrl, token } from "/ui/common/api.js";
import { coalesce, openStream } from "/ui/common/stream.js";
import { apply, language, languageSwitch, onLanguage, register, t } from "/ui/common/i18n.js";

const STATES = ["not_logged_in", "idle", "calling", "serving", "paused", "closed"];

register({
  zh: {
    title: "窗口状态监控", show: "范围", everything: "全部楼层", floor: "{n}楼",
    hall_totals: "全厅窗口", scope_totals: "所选范围窗口", alerts: "告警", waiting: "等候人数", no_alerts: "暂无告警",
    not_logged_in: "未登录", idle: "空闲", calling: "呼叫中", serving: "办理中",
    paused: "暂停", closed: "已关闭", anomalies: "考勤异常",
    late_login: "迟到未登录", absent: "工作时间离岗", overlong_pause: "暂停超时",
    waiting_too_long: "等候超时", serving_too_long: "办理超时",
    offline: "设备离线", paper_near_end: "纸张将尽", paper_out: "缺纸", cover_open: "机盖打开",
    errors: "设备故障", kind_mismatch: "设备类型不符", quarantined: "未登记设备",
    minutes: "{m} 分钟", limit: "限 {m} 分钟", since: "{time} 起", people: "{n} 人",
    eta: "约 {m} 分", login_needed: "告警需工作人员登录查看", staff_id: "工号",
    password: "密码", log_in: "登录", bad_login: "工号或密码不正确",
    ticket_at: "{number} · {window}", ticket_of: "{number} · {service}",
    device_at: "{device} · {where}",
  },
  en: {
    title: "Window status", show: "Show", everything: "All floors", floor: "Floor {n}",
    hall_totals: "Hall windows", scope_totals: "Windows shown", alerts: "Alerts", waiting: "Waiting", no_alerts: "No alerts",
    not_logged_in: "Not logged in", idle: "Idle", calling: "Calling", serving: "Serving",
    paused: "Paused", closed: "Closed", anomalies: "Attendance",
    late_login: "Late login", absent: "Absent", overlong_pause: "Pause too long",
    waiting_too_long: "Waiting too long", serving_too_long: "Serving too long",
    offline: "Device offline", paper_near_end: "Paper low", paper_out: "Paper out",
    cover_open: "Cover open", errors: "Device error", kind_mismatch: "Wrong device kind",
    quarantined: "Unknown device", minutes: "{m} min", limit: "limit {m} min",
    since: "since {time}", people: "{n}", eta: "~{m} min",
    login_needed: "Log in as staff to see the alerts", staff_id: "Staff ID",
    password: "Password", log_in: "Log in", bad_login: "Wrong staff ID or password",
    ticket_at: "{number} · {window}", ticket_of: "{number} · {service}",
    device_at: "{device} · {where}",
  },
});

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const state = {
  hall: null,
  alerts: [],
  alertsAllowed: true,
  hallOffset: 0,
  scope: null, // {areas, windows, services} of the filter, null for the whole hall
  filter: params.get("area") ? `area:${params.get("area")}`
    : params.get("floor") ? `floor:${params.get("floor")}` : "",
};

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function clockOf(iso) {
  const match = /T(\d\d:\d\d)/.exec(iso || "");
  return match ? match[1] : "";
}

// ------------------------------------------------------------------ data

async function loadHall() {
  state.hall = await api("/hall");
  state.hallOffset = Date.parse(state.hall.now) - Date.now();
}

// How long an alerted ticket has waited or been served by now: the list stays right
// between events (the hall's clock, which may differ from this PC's).
function minutesSince(since, fallback) {
  const at = Date.parse(since || "");
  if (Number.isNaN(at)) return fallback;
  return Math.max(fallback || 0, (Date.now() + state.hallOffset - at) / 60000);
}

async function loadAlerts() {
  if (!token()) { state.alertsAllowed = false; return; }
  try {
    state.alerts = await api("/alerts");
    state.alertsAllowed = true;
  } catch (error) {
    if (!(error instanceof ApiError) || (error.status !== 401 && error.status !== 403)) throw error;
    state.alertsAllowed = false;
    state.alerts = [];
  }
}

async function loadScope() {
  if (!state.filter) { state.scope = null; return; }
  const [kind, value] = state.filter.split(":");
  state.scope = await api(`/hall/scope?${new URLSearchParams({ [kind]: value })}`);
}

// ------------------------------------------------------------------ drawing

function stateChip(name, count) {
  const chip = element("span", `chip state-${name}${count ? "" : " zero"}`);
  chip.dataset.state = name;
  chip.title = t(name);
  chip.append(`${t(name)} `, element("b", "number", String(count)));
  return chip;
}

function counts(windows) {
  const found = Object.fromEntries(STATES.map((s) => [s, 0]));
  let anomalies = 0;
  for (const w of windows) {
    found[w.state] += 1;
    if (w.anomalies.length) anomalies += 1;
  }
  return { found, anomalies };
}

function alertsByWindow() {
  const map = new Map();
  for (const alert of state.alerts) {
    if (!alert.window) continue;
    if (!map.has(alert.window)) map.set(alert.window, []);
    map.get(alert.window).push(alert);
  }
  return map;
}

function tile(window, alerts) {
  const box = element("div", `tile state-${window.state}`);
  box.dataset.window = window.id;
  box.dataset.state = window.state;
  if (window.anomalies.length) box.classList.add("anomaly");
  if (alerts.length) box.classList.add("alerted");
  box.append(element("div", "name", window.name), element("div", "state", t(window.state)));
  if (window.staff_name) box.append(element("div", "who", window.staff_name));
  if (window.ticket) box.append(element("div", "ticket number", window.ticket));
  if (window.state === "paused" && window.pause_message) {
    box.append(element("div", "message", window.pause_message));
  }
  const kinds = [...window.anomalies, ...alerts.map((a) => a.kind)];
  if (kinds.length) {
    const badges = element("div", "badges");
    for (const kind of window.anomalies) badges.append(element("span", "badge", t(kind)));
    for (const alert of alerts) badges.append(element("span", "badge alert", t(alert.kind)));
    box.append(badges);
  }
  return box;
}

function shownAreas() {
  const areas = state.hall.areas;
  return state.scope ? areas.filter((a) => state.scope.areas.includes(a.id)) : areas;
}

function renderFloors() {
  const byWindow = alertsByWindow();
  const floors = new Map();
  for (const area of shownAreas()) {
    if (!floors.has(area.floor)) floors.set(area.floor, []);
    floors.get(area.floor).push(area);
  }
  const sections = [];
  for (const [floor, areas] of [...floors.entries()].sort((a, b) => a[0] - b[0])) {
    const section = element("section", "floor");
    section.dataset.floor = floor;
    section.append(element("h2", "", t("floor", { n: floor })));
    const row = element("div", "floor-areas");
    for (const area of areas) {
      const windows = state.hall.windows.filter((w) => w.area === area.id);
      const panel = element("div", "panel area");
      panel.dataset.area = area.id;
      const head = element("div", "area-head");
      const chips = element("div", "chips");
      const { found, anomalies } = counts(windows);
      for (const name of STATES) chips.append(stateChip(name, found[name]));
      const anomalyChip = stateChip("anomaly", anomalies);
      anomalyChip.firstChild.textContent = `${t("anomalies")} `;
      chips.append(anomalyChip);
      head.append(element("h3", "", area.name), chips);
      const tiles = element("div", "tiles");
      tiles.append(...windows.map((w) => tile(w, byWindow.get(w.id) || [])));
      panel.append(head, tiles);
      row.append(panel);
    }
    section.append(row);
    sections.push(section);
  }
  $("floors").replaceChildren(...sections);
}

function renderTotals() {
  const areas = new Set(shownAreas().map((a) => a.id));
  const { found, anomalies } = counts(state.hall.windows.filter((w) => areas.has(w.area)));
  const rows = [...STATES, "anomaly"].map((name) => {
    const row = element("div", "row");
    row.dataset.state = name;
    const label = element("span", "");
    label.append(element("span", `state-dot state-${name}`),
                 name === "anomaly" ? t("anomalies") : t(name));
    row.append(label, element("span", "number", String(name === "anomaly" ? anomalies : found[name])));
    return row;
  });
  $("totals").replaceChildren(...rows);
  $("totals-title").textContent = t(state.scope ? "scope_totals" : "hall_totals");
}

function alertItem(alert) {
  const services = new Map(state.hall.services.map((s) => [s.id, s.name]));
  const windows = new Map(state.hall.windows.map((w) => [w.id, w.name]));
  const areas = new Map(state.hall.areas.map((a) => [a.id, a.name]));
  const item = element("li", alert.source === "device" ? "device" : "time");
  item.dataset.alert = alert.id;
  item.dataset.kind = alert.kind;
  item.append(element("span", "what", t(alert.kind)));
  if (alert.source === "time_limit") {
    item.append(element("span", "when", `${t("minutes", { m: Math.floor(minutesSince(alert.since, alert.minutes)) })}`));
    const detail = alert.window
      ? t("ticket_at", { number: alert.number, window: windows.get(alert.window) || alert.window })
      : t("ticket_of", { number: alert.number, service: services.get(alert.service) || alert.service });
    item.append(element("span", "detail", `${detail} · ${t("limit", { m: alert.limit_minutes })}`));
  } else {
    item.append(element("span", "when", alert.since ? t("since", { time: clockOf(alert.since) }) : ""));
    const where = alert.window ? windows.get(alert.window) || alert.window
      : alert.areas.map((a) => areas.get(a) || a).join("、");
    const detail = t("device_at", { device: alert.device_id, where });
    item.append(element("span", "detail", alert.detail ? `${detail} · ${alert.detail}` : detail));
  }
  return item;
}

function renderAlerts() {
  $("login").hidden = state.alertsAllowed;
  const areas = new Set(shownAreas().map((a) => a.id));
  const shown = state.alerts.filter((a) => !state.scope || a.areas.some((x) => areas.has(x)));
  const badge = $("alert-count");
  badge.textContent = String(shown.length);
  badge.classList.toggle("hot", shown.length > 0);
  const list = $("alerts");
  if (!state.alertsAllowed) list.replaceChildren();
  else if (shown.length === 0) list.replaceChildren(element("li", "none", t("no_alerts")));
  else list.replaceChildren(...shown.map(alertItem));
}

function renderServices() {
  const wanted = state.scope ? new Set(state.scope.services) : null;
  const services = state.hall.services.filter((s) => !wanted || wanted.has(s.id))
    .sort((a, b) => b.waiting - a.waiting).slice(0, 10);
  const waitingAlerts = new Set(state.alerts.filter((a) => a.kind === "waiting_too_long")
    .map((a) => a.service));
  $("services").replaceChildren(...services.map((service) => {
    const item = element("li");
    item.dataset.service = service.id;
    const count = element("span", `count number${waitingAlerts.has(service.id) ? " long" : ""}`,
                          t("people", { n: service.waiting }));
    const eta = service.waiting && service.estimated_minutes != null
      ? t("eta", { m: Math.round(service.estimated_minutes) }) : "";
    item.append(element("span", "name", service.name), count, element("span", "eta", eta));
    return item;
  }));
}

function renderFilter() {
  const select = $("filter");
  const options = [["", t("everything")]];
  const floors = [...new Set(state.hall.areas.map((a) => a.floor))].sort((a, b) => a - b);
  for (const floor of floors) {
    options.push([`floor:${floor}`, t("floor", { n: floor })]);
    for (const area of state.hall.areas.filter((a) => a.floor === floor)) {
      options.push([`area:${area.id}`, `　${area.name}`]);
    }
  }
  select.replaceChildren(...options.map(([value, label]) => {
    const option = element("option", "", label);
    option.value = value;
    return option;
  }));
  select.value = state.filter;
}

function renderClock() {
  const now = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  $("clock").textContent = `${pad(now.getHours())}:${pad(now.getMinutes())}`;
}

function render() {
  if (!state.hall) return;
  $("hall-name").textContent = state.hall.hall.name;
  renderFloors();
  renderTotals();
  renderAlerts();
  renderServices();
}

// ------------------------------------------------------------------ start

takeTokenFromUrl();
apply();
languageSwitch($("language"));
onLanguage(() => { renderFilter(); render(); });
await Promise.all([loadHall(), loadAlerts(), loadScope()]);
renderFilter();
render();
renderClock();
setInterval(() => { renderClock(); if (state.hall) renderAlerts(); }, 15000);

$("filter").addEventListener("change", async (event) => {
  state.filter = event.target.value;
  const url = new URL(location.href);
  url.searchParams.delete("area");
  url.searchParams.delete("floor");
  if (state.filter) {
    const [kind, value] = state.filter.split(":");
    url.searchParams.set(kind, value);
  }
  history.replaceState(null, "", url.pathname + url.search);
  await loadScope();
  render();
});

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await login($("staff").value.trim(), $("password").value);
    $("login-error").textContent = "";
    await loadAlerts();
    render();
  } catch {
    $("login-error").textContent = t("bad_login");
  }
});

const hallChanged = coalesce(() => loadHall().then(render).catch(() => {}), 250);
const alertsChanged = coalesce(() => loadAlerts().then(render).catch(() => {}), 250);
openStream({
  types: ["window.*", "ticket.*", "alert.*", "device.changed", "day.*"],
  onEvent: (event) => {
    if (event.type.startsWith("alert.") || event.type === "device.changed") alertsChanged();
    else hallChanged();
  },
  onStatus: (status) => {
    $("offline").hidden = status === "online";
    if (status === "online") { hallChanged(); alertsChanged(); }
  },
});
document.documentElement.lang = language() === "en" ? "en" : "zh-CN";
