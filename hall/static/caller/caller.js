// The virtual caller (Q8, D9, D12): what a hardware call terminal does, in the browser
// of the clerk's window PC. Staff log in, pick their window (`?window=W1` picks it
// for them), and call, recall, start, finish, skip, hold, transfer, pause and resume,
// ask the citizen for a rating, and scan ticket barcodes (a USB scanner types the code
// and Enter into the scan field). Every refusal of the hall is shown in words.
//
// The window, its current ticket (GET /windows/{w}/current: nodes, masked citizen) and
// its counts (GET /windows/{w}/today) are read again, coalesced, on every event of the
// window's area on the event stream: no polling.

import { ApiError, api, login, setToken, takeTokenFromUrl, token } from "/ui/common/api.js";
import { on, redraw } from "/ui/common/dom.js";
import { coalesce, openStream } from "/ui/common/stream.js";
import { apply, language, languageSwitch, onLanguage, register, t } from "/ui/common/i18n.js";

register({
  zh: {
    title: "虚拟呼叫器", window_logout: "退出窗口", sign_out: "注销",
    login_title: "工作人员登录", staff_id: "工号", password: "密码", login: "登录",
    pick_title: "选择窗口", pick_hint: "选择您今天办公的窗口并登录。",
    pick_login: "登录此窗口", pick_resume: "回到此窗口", pick_taken: "{name} 已登录",
    service: "业务", source: "来源", issued_at: "取号时间", waited: "等候时长",
    citizen: "办事群众", citizen_name: "姓名", citizen_id: "证件号码", citizen_phone: "手机号码",
    anonymous: "未登记身份（现场取号）", nodes: "时间节点",
    act_call_next: "呼叫下一位", act_recall: "重呼", act_start: "开始办理", act_finish: "办结",
    act_skip: "过号", act_hold: "挂起", act_transfer: "转移", act_evaluate: "请求评价",
    act_pause: "暂停服务", act_resume: "恢复服务",
    scan: "条码扫描", scan_hint: "扫描号票条码，或输入后回车",
    held: "挂起的号码", held_none: "无", release: "{number} 回来了",
    count_called: "今日叫号", count_finished: "今日办结", count_skipped: "过号",
    count_transferred: "转出", count_average: "平均办理（分钟）", count_waiting: "等候本窗口",
    waiting_service: "{name}：{count} 人等候",
    transfer_title: "转移号码", to_service: "转到业务（任一窗口办理）", to_window: "转到指定窗口",
    transfer_ok: "确认转移", transfer_ticket: "将 {number}（{service}）转往：", cancel: "取消",
    pause_title: "暂停服务", pause_message: "窗口屏显示", pause_ok: "确认暂停",
    pause_limit: "{minutes} 分钟内",
    evaluation_title: "请群众评价", evaluation_open: "打开评价页", close: "关闭",
    evaluation_text: "已为 {number} 发起评价，请群众在评价器上打分。",
    evaluation_expiry: "评价码有效至 {time}",
    st_not_logged_in: "未登录", st_idle: "空闲", st_calling: "呼叫中", st_serving: "办理中",
    st_paused: "暂停", st_closed: "已关闭",
    tk_called: "正在呼叫", tk_serving: "正在办理",
    src_walk_in: "现场取号", src_id_card: "身份证取号", src_phone: "手机号取号",
    src_appointment: "预约", src_mobile: "线上取号", src_priority: "优先窗口",
    minutes: "{n} 分钟", recalls: "（已重呼 {n} 次）",
    idle_title: "空闲", idle_detail: "等候本窗口 {count} 人，按 F1 呼叫下一位",
    idle_nobody: "目前无人等候",
    paused_title: "暂停服务：{label}", paused_detail: "窗口屏显示“{message}”，自 {since} 起",
    closed_title: "本窗口已关闭",
    done_call_next: "已呼叫 {number}", done_recall: "已重呼 {number}",
    done_start: "{number} 开始办理", done_finish: "{number} 已办结", done_skip: "{number} 已过号",
    done_hold: "{number} 已挂起", done_transfer: "{number} 已转移", done_pause: "已暂停服务",
    done_resume: "已恢复服务", done_release: "{number} 已恢复排队", done_login: "已登录 {name}",
    scan_accepted: "{number} 已受理", scan_handling: "{number} 已记录办理节点",
    scan_finished: "{number} 已办结",
    err_nothing_waiting: "目前没有等候的群众",
    err_window_busy: "窗口还有未办完的号码",
    err_window_paused: "窗口已暂停，请先恢复服务",
    err_window_not_paused: "窗口没有暂停",
    err_not_logged_in: "窗口尚未登录",
    err_already_logged_in: "该窗口已有工作人员登录",
    err_staff_elsewhere: "您已在其他窗口登录，请先退出",
    err_window_closed: "窗口已关闭",
    err_no_current_ticket: "当前没有正在办理的号码",
    err_wrong_state: "号码当前状态不允许此操作",
    err_not_served_here: "该窗口不办理此号码的业务",
    err_unknown_service: "没有这项业务",
    err_unknown_window: "没有这个窗口",
    err_unknown_ticket: "没有找到今天的这个号码",
    err_unknown_pause_reason: "没有这个暂停原因",
    err_ticket_not_waiting: "该号码不在等候中",
    err_ticket_not_held: "该号码没有挂起",
    err_ticket_already_ended: "该号码已经结束",
    err_ticket_not_called: "该号码还在等候，请先叫号",
    err_ticket_held: "该号码已挂起，请先恢复",
    err_day_not_started: "今日尚未开始营业",
    err_bad_credentials: "工号或密码错误",
    err_unauthorized: "登录已失效，请重新登录",
    err_forbidden: "您无权进行此操作",
    err_not_at_window: "您没有在这个窗口登录",
    err_bad_request: "请求内容有误",
    err_unprocessable_content: "请求内容有误",
    err_unavailable: "系统暂时无法保存，请稍后再试",
    err_service_unavailable: "系统暂时无法保存，请稍后再试",
    err_too_many_requests: "操作过于频繁，请稍后再试",
    err_already_rated: "该号码已评价过",
    err_network: "无法连接服务器",
    err_other: "操作未成功（{code}）",
  },
  en: {
    title: "Virtual caller", window_logout: "Leave window", sign_out: "Sign out",
    login_title: "Staff login", staff_id: "Staff ID", password: "Password", login: "Log in",
    pick_title: "Choose your window", pick_hint: "Pick the window you work at today.",
    pick_login: "Log in here", pick_resume: "Back to this window", pick_taken: "{name} is here",
    service: "Service", source: "Source", issued_at: "Taken at", waited: "Waited",
    citizen: "Citizen", citizen_name: "Name", citizen_id: "ID number", citizen_phone: "Phone",
    anonymous: "No identity given (walk-in)", nodes: "Time nodes",
    act_call_next: "Call next", act_recall: "Recall", act_start: "Start", act_finish: "Finish",
    act_skip: "No-show", act_hold: "Hold", act_transfer: "Transfer", act_evaluate: "Ask rating",
    act_pause: "Pause", act_resume: "Resume",
    scan: "Barcode", scan_hint: "Scan the ticket's barcode, or type it and press Enter",
    held: "On hold", held_none: "none", release: "{number} is back",
    count_called: "Called today", count_finished: "Finished today", count_skipped: "No-shows",
    count_transferred: "Transferred", count_average: "Avg. service (min)",
    count_waiting: "Waiting for us",
    waiting_service: "{name}: {count} waiting",
    transfer_title: "Transfer ticket", to_service: "To a service (any window)",
    to_window: "To a named window", transfer_ok: "Transfer",
    transfer_ticket: "Send {number} ({service}) to:", cancel: "Cancel",
    pause_title: "Pause service", pause_message: "Window screen says", pause_ok: "Pause",
    pause_limit: "up to {minutes} min",
    evaluation_title: "Ask for a rating", evaluation_open: "Open rating page", close: "Close",
    evaluation_text: "Rating requested for {number}: the citizen rates on the terminal.",
    evaluation_expiry: "The rating code is valid until {time}",
    st_not_logged_in: "Not logged in", st_idle: "Idle", st_calling: "Calling",
    st_serving: "Serving", st_paused: "Paused", st_closed: "Closed",
    tk_called: "Calling", tk_serving: "Serving",
    src_walk_in: "Walk-in", src_id_card: "ID card", src_phone: "Phone", src_appointment: "Appointment",
    src_mobile: "Online", src_priority: "Priority",
    minutes: "{n} min", recalls: " (recalled {n}×)",
    idle_title: "Idle", idle_detail: "{count} waiting for this window; F1 calls the next",
    idle_nobody: "Nobody is waiting",
    paused_title: "Paused: {label}", paused_detail: "Screen shows “{message}” since {since}",
    closed_title: "This window is closed",
    done_call_next: "Called {number}", done_recall: "Recalled {number}",
    done_start: "{number} started", done_finish: "{number} finished",
    done_skip: "{number} marked no-show", done_hold: "{number} on hold",
    done_transfer: "{number} transferred", done_pause: "Paused", done_resume: "Resumed",
    done_release: "{number} back in the queue", done_login: "Logged in at {name}",
    scan_accepted: "{number} accepted", scan_handling: "{number}: handling noted",
    scan_finished: "{number} finished",
    err_nothing_waiting: "Nobody is waiting",
    err_window_busy: "The window still has a ticket in hand",
    err_window_paused: "The window is paused; resume first",
    err_window_not_paused: "The window is not paused",
    err_not_logged_in: "Nobody is logged in at this window",
    err_already_logged_in: "Someone is already logged in at this window",
    err_staff_elsewhere: "You are logged in at another window; leave it first",
    err_window_closed: "The window is closed",
    err_no_current_ticket: "No ticket in hand",
    err_wrong_state: "Not possible in the ticket's state",
    err_not_served_here: "This window does not serve that ticket's service",
    err_unknown_service: "No such service",
    err_unknown_window: "No such window",
    err_unknown_ticket: "No ticket of today has that code",
    err_unknown_pause_reason: "No such pause reason",
    err_ticket_not_waiting: "The ticket is not waiting",
    err_ticket_not_held: "The ticket is not on hold",
    err_ticket_already_ended: "The ticket has ended",
    err_ticket_not_called: "The ticket is still waiting; call it first",
    err_ticket_held: "The ticket is on hold; release it first",
    err_day_not_started: "The day has not started",
    err_bad_credentials: "Wrong staff ID or password",
    err_unauthorized: "Your session ended; log in again",
    err_forbidden: "You may not do that",
    err_not_at_window: "You are not logged in at this window",
    err_bad_request: "The request is not valid",
    err_unprocessable_content: "The request is not valid",
    err_unavailable: "The hall cannot store changes now; try again shortly",
    err_service_unavailable: "The hall cannot store changes now; try again shortly",
    err_too_many_requests: "Too many attempts; wait a moment",
    err_already_rated: "This ticket was rated already",
    err_network: "The server cannot be reached",
    err_other: "Not done ({code})",
  },
});

const STAFF_KEY = "smarthall.caller.staff";
const $ = (id) => document.getElementById(id);

// What each action may do in each window state; the API refuses the rest anyway.
const ALLOWED = {
  idle: ["call_next", "pause"],
  calling: ["recall", "start", "finish", "skip", "hold", "transfer", "evaluate"],
  serving: ["finish", "hold", "transfer", "evaluate"],
  paused: ["resume"],
};
const PATHS = {
  call_next: "call-next", recall: "recall", start: "start", finish: "finish",
  skip: "skip", hold: "hold", resume: "resume",
};

const view = {
  refreshing: null,   // the refresh in flight
  staff: null,        // {staff_id, name, role}
  windowId: new URLSearchParams(location.search).get("window"),
  window: null,       // WindowOut
  current: null,      // CurrentOut
  today: null,        // TodayOut
  reasons: null,
  busy: false,
  stream: null,
};

// ------------------------------------------------------------------ messages

function problemText(error) {
  if (!(error instanceof ApiError)) return t("err_network");
  const key = `err_${error.code}`;
  const text = t(key);
  return text === key ? t("err_other", { code: error.code }) : text;
}

function notify(text, kind = "ok") {
  const notice = $("notice");
  notice.textContent = text;
  notice.className = `notice ${kind}`;
  notice.dataset.kind = kind;
}

function hhmm(iso) {
  return iso ? iso.slice(11, 16) : "";
}

function hhmmss(iso) {
  return iso ? iso.slice(11, 19) : "";
}

// ------------------------------------------------------------------ views

function show(name) {
  for (const id of ["login-view", "pick-view", "desk-view"]) $(id).hidden = id !== `${name}-view`;
  const inDesk = name === "desk";
  $("window-logout").hidden = !inDesk;
  $("sign-out").hidden = name === "login";
  $("state-chip").hidden = !inDesk;
  $("staff-name").textContent = view.staff ? view.staff.name : "";
  if (!inDesk) $("window-name").textContent = "";
  if (name === "login") setTimeout(() => $("staff-id").focus(), 0);
}

function loadStaff() {
  try {
    return JSON.parse(localStorage.getItem(STAFF_KEY) || "null");
  } catch {
    return null;
  }
}

function toLogin(message = "") {
  closeStream();
  view.staff = null;
  localStorage.removeItem(STAFF_KEY);
  setToken("");
  $("login-error").textContent = message;
  show("login");
}

function remember(windowId) {
  view.windowId = windowId;
  const url = new URL(location.href);
  if (windowId) url.searchParams.set("window", windowId);
  else url.searchParams.delete("window");
  history.replaceState(null, "", url.pathname + url.search);
}

// ------------------------------------------------------------------ login and picking

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  $("login-button").disabled = true;
  try {
    const session = await login($("staff-id").value.trim(), $("password").value);
    view.staff = { staff_id: session.staff_id, name: session.name, role: session.role };
    localStorage.setItem(STAFF_KEY, JSON.stringify(view.staff));
    $("password").value = "";
    await enter();
  } catch (error) {
    $("login-error").textContent = problemText(error);
  } finally {
    $("login-button").disabled = false;
  }
});

// After login or on opening the page: straight to the desk if the staff is at the
// window already, else the picker (with the `?window=` one first).
async function enter() {
  let windows, hall;
  try {
    [windows, hall] = await Promise.all([api("/windows"), api("/hall")]);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return toLogin(t("err_unauthorized"));
    throw error;
  }
  const names = Object.fromEntries(hall.windows.map((w) => [w.id, w.staff_name]));
  for (const w of windows) w.staff_name = names[w.id] || w.staff;
  const mine = windows.find((w) => w.staff === view.staff.staff_id);
  if (mine && (!view.windowId || view.windowId === mine.id)) return openDesk(mine.id);
  renderPicker(windows);
}

function renderPicker(windows) {
  closeStream();
  const list = $("window-list");
  const wanted = windows.filter((w) => w.id === view.windowId);
  const ordered = [...wanted, ...windows.filter((w) => w.id !== view.windowId)];
  redraw(list, ordered.map((w) => {
    const mine = w.staff === view.staff.staff_id;
    const card = document.createElement("button");
    card.type = "button";
    card.className = `window-card state-${w.state}${w.id === view.windowId ? " wanted" : ""}`;
    card.dataset.window = w.id;
    const name = document.createElement("span");
    name.className = "card-name";
    name.textContent = w.name;
    const state = document.createElement("span");
    state.className = "card-state";
    state.innerHTML = `<span class="state-dot" style="background: var(--state-${w.state})"></span>`;
    state.append(t(`st_${w.state}`));
    const action = document.createElement("span");
    action.className = "card-action";
    const taken = w.staff && !mine;
    action.textContent = mine ? t("pick_resume") : taken ? t("pick_taken", { name: w.staff_name })
      : t("pick_login");
    card.disabled = Boolean(taken) || w.state === "closed";
    card.append(name, state, action);
    on(card, "click", () => pickWindow(w, mine));
    return card;
  }));
  $("pick-error").textContent = "";
  show("pick");
}

async function pickWindow(w, mine) {
  $("pick-error").textContent = "";
  try {
    if (!mine) await api(`/windows/${w.id}/login`, { method: "POST", body: {} });
    await openDesk(w.id);
    if (!mine) notify(t("done_login", { name: w.name }));
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return toLogin(t("err_unauthorized"));
    $("pick-error").textContent = problemText(error);
  }
}

$("sign-out").addEventListener("click", async () => {
  try {
    await api("/auth/logout", { method: "POST" });
  } catch {
    // the session may be gone already; signing out here is what matters
  }
  toLogin();
});

$("window-logout").addEventListener("click", async () => {
  closeStream();
  await (view.refreshing || Promise.resolve()).catch(() => {});
  try {
    await api(`/windows/${view.windowId}/logout`, { method: "POST" });
  } catch (error) {
    await openDesk(view.windowId);
    notify(problemText(error), "error");
    return;
  }
  await enter();
});

// ------------------------------------------------------------------ the desk

async function openDesk(windowId) {
  remember(windowId);
  show("desk");
  await refresh();
  if (view.window === null) return;
  closeStream();
  const later = coalesce(() => { if (view.stream) refresh().catch(() => {}); }, 120);
  view.stream = openStream({
    types: ["ticket.*", "window.*", "day.*"],
    area: view.window.area,
    onEvent: later,
    onStatus: (status) => { $("offline").hidden = status === "online"; if (status === "online") later(); },
  });
  focusScan();
}

function closeStream() {
  if (view.stream) view.stream.close();
  view.stream = null;
  $("offline").hidden = true;
}

// One refresh at a time, in order: a window logout waits for the one in flight, so the
// page never asks for a window it has just left.
function refresh() {
  const next = (view.refreshing || Promise.resolve()).catch(() => {}).then(readDesk);
  view.refreshing = next;
  return next;
}

async function readDesk() {
  const w = view.windowId;
  let window, current, today;
  try {
    window = await api(`/windows/${w}`);
    if (window.staff === view.staff.staff_id) {
      [current, today] = await Promise.all([api(`/windows/${w}/current`), api(`/windows/${w}/today`)]);
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return toLogin(t("err_unauthorized"));
    if (error instanceof ApiError && error.code === "not_at_window") {
      return leftWindow();
    }
    throw error;
  }
  if (window.staff !== view.staff.staff_id) return leftWindow();
  Object.assign(view, { window, current, today });
  render();
}

// Logged out elsewhere (by a manager, at a call terminal): back to the picker, once this
// refresh is over (the picker may open a desk, which refreshes in turn).
function leftWindow() {
  view.window = null;
  closeStream();
  setTimeout(() => enter().catch(() => {}), 0);
}

function render() {
  if (!view.window) return;
  const { window, current, today } = view;
  $("window-name").textContent = window.name;
  const chip = $("state-chip");
  chip.textContent = t(`st_${window.state}`);
  chip.dataset.state = window.state;
  chip.style.background = `var(--state-${window.state})`;
  document.body.dataset.state = window.state;
  renderTicket(window, current, today);
  renderButtons(window);
  renderCounts(today);
  renderHeld(today);
}

function renderTicket(window, current, today) {
  const ticket = current && current.ticket;
  $("ticket-now").hidden = !ticket;
  $("ticket-empty").hidden = Boolean(ticket);
  if (!ticket) {
    let title = t("idle_title");
    let detail = today.waiting ? t("idle_detail", { count: today.waiting }) : t("idle_nobody");
    if (window.state === "paused" && today.pause) {
      title = t("paused_title", { label: today.pause.label });
      detail = t("paused_detail", { message: today.pause.message, since: hhmm(today.pause.since) });
    } else if (window.state === "closed") {
      title = t("closed_title");
      detail = "";
    }
    $("empty-title").textContent = title;
    $("empty-detail").textContent = detail;
    return;
  }
  $("ticket-status").textContent = t(`tk_${ticket.status}`) || ticket.status;
  $("ticket-status").dataset.status = ticket.status;
  $("ticket-number").textContent = ticket.number;
  $("ticket-service").textContent = current.service_name || ticket.service;
  $("ticket-source").textContent = t(`src_${ticket.source}`);
  $("ticket-issued").textContent = hhmmss(ticket.issued_at);
  const recalls = (ticket.nodes || []).filter((n) => n.kind === "recalled").length;
  $("ticket-waited").textContent = current.waited_minutes === null ? "—"
    : t("minutes", { n: Math.round(current.waited_minutes) }) + (recalls ? t("recalls", { n: recalls }) : "");
  const citizen = current.citizen;
  $("citizen-anonymous").hidden = Boolean(citizen);
  $("citizen-facts").hidden = !citizen;
  $("citizen-name").textContent = (citizen && citizen.name) || "—";
  $("citizen-id").textContent = (citizen && citizen.id_number) || "—";
  $("citizen-phone").textContent = (citizen && citizen.phone) || "—";
  const nodes = ticket.nodes || [];
  $("ticket-nodes").replaceChildren(...nodes.map((node) => {
    const item = document.createElement("li");
    item.dataset.kind = node.kind;
    const time = document.createElement("time");
    time.textContent = hhmmss(node.at);
    const label = document.createElement("span");
    label.textContent = language() === "en" ? node.kind.replaceAll("_", " ") : node.label;
    item.append(time, label);
    if (node.window) {
      const where = document.createElement("span");
      where.className = "muted";
      where.textContent = node.window;
      item.append(where);
    }
    return item;
  }));
}

function renderButtons(window) {
  const allowed = ALLOWED[window.state] || [];
  for (const button of document.querySelectorAll("#buttons [data-action]")) {
    button.disabled = view.busy || !allowed.includes(button.dataset.action);
  }
  $("window-logout").disabled = !["idle", "paused"].includes(window.state);
}

function renderCounts(today) {
  $("count-called").textContent = today.called;
  $("count-finished").textContent = today.finished;
  $("count-skipped").textContent = today.skipped;
  $("count-transferred").textContent = today.transferred;
  $("count-average").textContent = today.average_service_minutes ?? "—";
  $("count-waiting").textContent = today.waiting;
  $("service-waiting").replaceChildren(...today.services.map((service) => {
    const item = document.createElement("li");
    item.dataset.service = service.id;
    item.textContent = t("waiting_service", { name: service.name, count: service.waiting });
    return item;
  }));
}

function renderHeld(today) {
  const list = $("held-list");
  if (!today.held.length) {
    list.textContent = t("held_none");
    return;
  }
  redraw(list, today.held.map((held) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "release";
    button.dataset.ticket = held.id;
    button.textContent = t("release", { number: held.number });
    on(button, "click", () => act("release", { ticket: held }));
    return button;
  }));
}

// ------------------------------------------------------------------ actions

async function act(action, extra = {}) {
  if (view.busy) return;
  const number = view.window && view.window.ticket;
  if (action === "transfer") return openTransfer();
  if (action === "pause") return openPause();
  if (action === "evaluate") return askEvaluation();
  view.busy = true;
  renderButtons(view.window);
  try {
    let answer;
    if (action === "release") {
      answer = await api(`/windows/${view.windowId}/release`,
        { method: "POST", body: { ticket_id: extra.ticket.id } });
    } else {
      answer = await api(`/windows/${view.windowId}/${PATHS[action]}`, { method: "POST" });
    }
    const shown = action === "release" ? extra.ticket.number : answer.ticket || number;
    notify(t(`done_${action}`, { number: shown }));
  } catch (error) {
    notify(problemText(error), "error");
  } finally {
    view.busy = false;
  }
  await refresh().catch(() => {});
  focusScan();
}

for (const button of document.querySelectorAll("#buttons [data-action]")) {
  button.addEventListener("click", () => act(button.dataset.action));
}

const KEYS = Object.fromEntries(
  [...document.querySelectorAll("#buttons [data-action]")].map((b) => [b.dataset.key, b]));

document.addEventListener("keydown", (event) => {
  const button = KEYS[event.key];
  if (!button || $("desk-view").hidden || document.querySelector("dialog[open]")) return;
  event.preventDefault();
  if (!button.disabled) button.click();
});

function focusScan() {
  if (!$("desk-view").hidden && !document.querySelector("dialog[open]")) $("scan").focus();
}

$("scan-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("scan");
  const code = input.value.trim();
  input.value = "";
  if (!code) return;
  try {
    const answer = await api(`/windows/${view.windowId}/scan-ticket`,
      { method: "POST", body: { code } });
    notify(t(`scan_${answer.action}`, { number: answer.ticket.number }));
  } catch (error) {
    notify(problemText(error), "error");
  }
  await refresh().catch(() => {});
  focusScan();
});

// ------------------------------------------------------------------ transfer dialog

async function openTransfer() {
  const dialog = $("transfer-dialog");
  const [services, windows] = await Promise.all([api("/services"), api("/windows")]);
  const ticket = view.current && view.current.ticket;
  $("transfer-ticket").textContent = ticket
    ? t("transfer_ticket", { number: ticket.number, service: view.current.service_name }) : "";
  $("transfer-service").replaceChildren(...services.map((s) => {
    const option = new Option(`${s.name}（${s.waiting}）`, s.id);
    option.selected = ticket && s.id === ticket.service;
    return option;
  }));
  $("transfer-window").replaceChildren(...windows
    .filter((w) => w.id !== view.windowId && w.state !== "closed")
    .map((w) => new Option(`${w.name} · ${t(`st_${w.state}`)}`, w.id)));
  $("transfer-error").textContent = "";
  setTransferMode("service");
  dialog.showModal();
}

function setTransferMode(mode) {
  const form = $("transfer-form");
  form.elements.to.value = mode;
  $("transfer-service").disabled = mode !== "service";
  $("transfer-window").disabled = mode !== "window";
}

for (const radio of document.querySelectorAll('#transfer-form input[name="to"]')) {
  radio.addEventListener("change", () => setTransferMode(radio.value));
}

$("transfer-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = $("transfer-form");
  const body = form.elements.to.value === "window"
    ? { window: $("transfer-window").value }
    : { service: $("transfer-service").value };
  const number = view.window.ticket;
  try {
    await api(`/windows/${view.windowId}/transfer`, { method: "POST", body });
    $("transfer-dialog").close();
    notify(t("done_transfer", { number }));
    await refresh().catch(() => {});
  } catch (error) {
    $("transfer-error").textContent = problemText(error);
  }
});

// ------------------------------------------------------------------ pause dialog

async function openPause() {
  if (!view.reasons) view.reasons = await api("/pause-reasons");
  const box = $("pause-reasons");
  box.replaceChildren(...view.reasons.map((reason, index) => {
    const label = document.createElement("label");
    label.className = "reason";
    const radio = document.createElement("input");
    radio.type = "radio";
    radio.name = "reason";
    radio.value = reason.code;
    radio.checked = index === 0;
    radio.addEventListener("change", () => { $("pause-message").value = reason.message; });
    const text = document.createElement("span");
    text.className = "reason-label";
    text.textContent = reason.label;
    const limit = document.createElement("span");
    limit.className = "muted";
    limit.textContent = t("pause_limit", { minutes: reason.limit_minutes });
    label.append(radio, text, limit);
    return label;
  }));
  $("pause-message").value = view.reasons.length ? view.reasons[0].message : "";
  $("pause-error").textContent = "";
  $("pause-dialog").showModal();
}

$("pause-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const reason = $("pause-form").elements.reason.value;
  const message = $("pause-message").value.trim();
  try {
    await api(`/windows/${view.windowId}/pause`,
      { method: "POST", body: { reason, message: message || null } });
    $("pause-dialog").close();
    notify(t("done_pause"));
    await refresh().catch(() => {});
  } catch (error) {
    $("pause-error").textContent = problemText(error);
  }
});

// ------------------------------------------------------------------ evaluation

async function askEvaluation() {
  try {
    const grant = await api(`/windows/${view.windowId}/evaluation-request`, { method: "POST" });
    $("evaluation-text").textContent = t("evaluation_text", { number: grant.number });
    $("evaluation-expiry").textContent = t("evaluation_expiry", { time: hhmm(grant.expires_at) });
    const query = new URLSearchParams({
      window: view.windowId, ticket: grant.ticket_id, number: grant.number, grant: grant.token,
    });
    $("evaluation-link").href = `/ui/evaluate/?${query}`;
    $("evaluation-dialog").dataset.ticket = grant.ticket_id;
    $("evaluation-dialog").showModal();
  } catch (error) {
    notify(problemText(error), "error");
  }
}

for (const dialog of document.querySelectorAll("dialog")) {
  for (const cancel of dialog.querySelectorAll("button.cancel")) {
    cancel.addEventListener("click", () => dialog.close());
  }
  dialog.addEventListener("close", focusScan);
}

// ------------------------------------------------------------------ start

languageSwitch($("lang"));
onLanguage(() => { render(); if (!$("pick-view").hidden) enter(); });
apply();
takeTokenFromUrl();
view.staff = loadStaff();
if (!token() || !view.staff) {
  toLogin();
} else {
  await enter();
}
