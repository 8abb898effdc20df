// The ticket kiosk (Q1, Q2, Q3, Q4, Q14), portrait 1080×1920: categories → service (how
// many wait, the estimate; closed ones greyed with the reason) → how the citizen
// identifies (ID card, phone, none, priority group with its password) → the ticket, big,
// with the people ahead, the estimate, where to go, what to bring, and "请取走号票".
// Appointments check in by code or by ID card. Refusals say why, from the API's codes.
//
// The page runs with the kiosk's device token (`?token=`, kept in localStorage). When the
// token is a registered kiosk, the hall prints the ticket through the kiosk's edge agent
// and refuses with `printer_offline` while its printer cannot print, naming the kiosks
// that can (GET /api/v1/kiosk, hall/kiosk_print.py).
//
// ID cards: a browser cannot read the reader. Whatever can (the kiosk's shell, its edge
// agent through the browser's debugging port) hands the card's identity to the page as
//   window.dispatchEvent(new CustomEvent("smarthall:identity",
//                                        { detail: { name, id_number } }))
// or window.postMessage({ type: "smarthall.identity", identity: { name, id_number } }).
// While the page waits for a card it takes the first; the citizen may also type it.
//
// `?idle=<s>` (default 60) returns to the start after that long untouched; `?ticket=<s>`
// (default 30) is how long the ticket stays up.

import { api, ApiError, takeTokenFromUrl } from "/ui/common/api.js";
import { on, redraw } from "/ui/common/dom.js";
import { coalesce, openStream } from "/ui/common/stream.js";
import { apply, language, languageSwitch, onLanguage, register, t } from "/ui/common/i18n.js";
import { keypad } from "/ui/common/keypad.js";

register({
  zh: {
    title: "自助取号", back: "上一步", home: "返回首页",
    choose_category: "请选择办理事项类别", choose_service: "请选择办理事项",
    appointment_tile: "预约签到", appointment_tile_note: "已预约的市民请在此签到取号",
    services_count: "{n} 项业务", waiting_count: "{n} 人等候",
    waiting: "等候 {n} 人", estimate: "预计 {m} 分钟", estimate_none: "无需等候",
    closed: "暂停取号", all_closed: "暂停取号",
    reason_no_open_window: "暂无窗口办理", reason_outside_hours: "不在办理时间",
    reason_quota_exhausted: "今日号源已发完",
    how_title: "请选择取号方式", how_idcard: "刷身份证取号", how_idcard_note: "推荐，叫号时可短信提醒",
    how_phone: "手机号取号", how_phone_note: "输入手机号，接收叫号提醒",
    how_walkin: "直接取号", how_walkin_note: "不登记个人信息",
    how_priority: "优先取号", how_priority_note: "老年人、残疾人、军人等优先群体",
    card_wait: "请将身份证放在读卡区", card_wait_note: "读取成功后自动取号",
    card_manual: "或手动输入身份证信息", name: "姓名", id_number: "身份证号码",
    name_placeholder: "请输入姓名（可不填）", take: "确认取号", check_in: "确认签到",
    phone_title: "请输入手机号码", phone_note: "叫号前将以短信提醒您",
    priority_title: "优先取号", priority_group: "请选择优先群体",
    priority_password: "请工作人员输入优先取号密码",
    appointment_title: "预约签到", appointment_code: "请输入预约码",
    appointment_by_card: "刷身份证签到", appointment_by_code: "输入预约码签到",
    appointment_card_note: "请将预约时登记的身份证放在读卡区",
    busy: "正在取号，请稍候…",
    ticket_label: "您的号码", ticket_checked_in: "预约签到成功",
    people_ahead: "前面还有", people_unit: "人", wait_label: "预计等候", minutes_unit: "分钟",
    direction: "办理地点", materials: "请准备以下材料", notice: "温馨提示",
    take_ticket: "请取走号票", take_ticket_note: "请留意叫号屏幕和广播，过号需重新取号",
    done: "完成", returning: "{s} 秒后返回首页",
    refused: "暂时无法取号",
    no_open_window: "该事项暂无窗口办理，请咨询导办人员",
    outside_hours: "该事项不在办理时间内，请在办理时间内取号",
    quota_exhausted: "今日该事项号源已发完，请改日办理或网上预约",
    wrong_priority_password: "优先取号密码不正确，请工作人员重新输入",
    unknown_priority_group: "没有该优先群体，请重新选择",
    too_many_attempts: "密码错误次数过多，请一分钟后再试",
    unknown_appointment: "预约码不存在，请核对后重新输入",
    no_appointment_today: "未查询到您今天的预约，请核对或直接取号",
    appointment_not_bookable: "该预约已签到或已取消",
    appointment_too_late: "已超过预约时间，请直接取号",
    validation_failed: "输入的信息有误，请核对后重新输入",
    identity_required: "请先刷身份证或输入号码",
    unavailable: "系统繁忙，请稍后再试",
    unauthorized: "本机未授权取号，请联系工作人员",
    failed: "取号失败，请稍后再试或咨询工作人员",
    paper_out: "本机打印纸已用完", offline: "本机打印机离线", cover_open: "本机打印机舱盖未关闭",
    go_elsewhere: "请到{name}取号",
    go_anywhere: "请到其他自助取号机取号或咨询工作人员",
    id_invalid: "请输入18位身份证号码", phone_invalid: "请输入11位手机号码",
  },
  en: {
    title: "Self-service tickets", back: "Back", home: "Start",
    choose_category: "Choose a category", choose_service: "Choose a service",
    appointment_tile: "Appointment check-in", appointment_tile_note: "Booked? Check in here",
    services_count: "{n} services", waiting_count: "{n} waiting",
    waiting: "{n} waiting", estimate: "about {m} min", estimate_none: "no wait",
    closed: "Not available", all_closed: "Not available",
    reason_no_open_window: "No window open", reason_outside_hours: "Outside opening hours",
    reason_quota_exhausted: "No tickets left today",
    how_title: "How would you like your ticket?", how_idcard: "ID card",
    how_idcard_note: "Recommended: text message before your call",
    how_phone: "Phone number", how_phone_note: "Get a text before your call",
    how_walkin: "Just a ticket", how_walkin_note: "No personal details",
    how_priority: "Priority", how_priority_note: "Elderly, disabled, service members…",
    card_wait: "Place your ID card on the reader", card_wait_note: "The ticket follows at once",
    card_manual: "Or type in your ID card", name: "Name", id_number: "ID number",
    name_placeholder: "Your name (optional)", take: "Take ticket", check_in: "Check in",
    phone_title: "Enter your phone number", phone_note: "We text you before your call",
    priority_title: "Priority ticket", priority_group: "Choose the group",
    priority_password: "Staff: enter the priority password",
    appointment_title: "Appointment check-in", appointment_code: "Enter your appointment code",
    appointment_by_card: "Check in by ID card", appointment_by_code: "Check in by code",
    appointment_card_note: "Place the ID card you booked with on the reader",
    busy: "Taking your ticket…",
    ticket_label: "Your number", ticket_checked_in: "Checked in",
    people_ahead: "Ahead of you", people_unit: "", wait_label: "Estimated wait", minutes_unit: "min",
    direction: "Where to go", materials: "Please have ready", notice: "Please note",
    take_ticket: "Please take your ticket", take_ticket_note: "Watch the screens; a missed call needs a new ticket",
    done: "Done", returning: "Back to start in {s} s",
    refused: "No ticket right now",
    no_open_window: "No window serves this now. Please ask at the help desk.",
    outside_hours: "This service is outside its opening hours.",
    quota_exhausted: "Today's tickets for this service are gone. Please book online.",
    wrong_priority_password: "Wrong priority password. Staff, please try again.",
    unknown_priority_group: "Unknown priority group.",
    too_many_attempts: "Too many wrong passwords. Try again in a minute.",
    unknown_appointment: "No appointment with this code. Please check it.",
    no_appointment_today: "No appointment today under this ID card.",
    appointment_not_bookable: "This appointment was checked in or cancelled.",
    appointment_too_late: "Your appointment time has passed. Please take a ticket.",
    validation_failed: "Please check what you entered.",
    identity_required: "Please place your card or enter your number first.",
    unavailable: "The system is busy. Please try again shortly.",
    unauthorized: "This kiosk may not issue tickets. Please ask staff.",
    failed: "No ticket. Please try again or ask staff.",
    paper_out: "This kiosk is out of paper.", offline: "This kiosk's printer is offline.",
    cover_open: "This kiosk's printer cover is open.",
    go_elsewhere: "Please use the kiosk “{name}”.",
    go_anywhere: "Please use another kiosk or ask staff.",
    id_invalid: "Enter the 18-character ID number", phone_invalid: "Enter an 11-digit phone number",
  },
});

const params = new URLSearchParams(location.search);
const IDLE_SECONDS = Number(params.get("idle") || 60);
const TICKET_SECONDS = Number(params.get("ticket") || 30);

const screen = document.getElementById("screen");
const backButton = document.getElementById("back");
const homeButton = document.getElementById("home");
const countdown = document.getElementById("countdown");
const printerNote = document.getElementById("printer-note");
const offline = document.getElementById("offline");

const state = { services: [], setup: null, current: null, history: [] };
let idleTimer = null;
let ticking = null;
let cardHandler = null;

// ------------------------------------------------------------ small helpers

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function button(className, title, note, onClick) {
  const node = el("button", className);
  node.type = "button";
  node.append(el("span", "tile-title", title));
  if (note) node.append(el("span", "tile-note", note));
  on(node, "click", onClick);
  return node;
}

function minutes(value) {
  if (value === null || value === undefined) return "—";
  return String(Math.max(1, Math.round(value)));
}

function estimateText(service) {
  if (!service.waiting) return t("estimate_none");
  return `${t("waiting", { n: service.waiting })} · ${t("estimate", { m: minutes(service.estimated_minutes) })}`;
}

function categories() {
  const found = new Map();
  for (const service of state.services) {
    if (!found.has(service.category)) found.set(service.category, []);
    found.get(service.category).push(service);
  }
  return found;
}

function printerProblemText(problem, elsewhere) {
  const first = (elsewhere || [])[0];
  const where = first ? t("go_elsewhere", { name: first.name }) : t("go_anywhere");
  const known = ["paper_out", "offline", "cover_open"].includes(problem) ? problem : "offline";
  return `${t(known)}${language() === "zh" ? "，" : " "}${where}`;
}

// ------------------------------------------------------------ navigation

function show(name, ...args) {
  if (state.current && state.current.name !== name) {
    state.history.push(state.current);
  }
  state.current = { name, args };
  render();
}

// `live`: the same screen again with the hall's new figures, keeping what did not change
// (redraw), so that a citizen's tap landing mid-redraw still reaches its tile.
function render({ live = false } = {}) {
  const { name, args } = state.current;
  cardHandler = null;
  stopTicking();
  if (live) redraw(screen, SCREENS[name](...args));
  else screen.replaceChildren(SCREENS[name](...args));
  screen.dataset.screen = name;
  const atHome = name === "home";
  backButton.hidden = atHome || name === "ticket" || name === "refused" || name === "busy";
  homeButton.hidden = atHome || name === "refused";
  homeButton.dataset.i18n = name === "ticket" ? "done" : "home";
  homeButton.textContent = t(homeButton.dataset.i18n);
  apply(screen);
  touched();
}

function goHome() {
  state.history = [];
  state.current = null;
  show("home");
}

function goBack() {
  const previous = state.history.pop();
  if (!previous) return goHome();
  state.current = previous;
  render();
}

function touched() {
  clearTimeout(idleTimer);
  if (state.current && state.current.name !== "home" && state.current.name !== "ticket") {
    idleTimer = setTimeout(goHome, IDLE_SECONDS * 1000);
  }
}

function stopTicking() {
  clearInterval(ticking);
  ticking = null;
  countdown.textContent = "";
}

function startTicking(seconds) {
  let left = seconds;
  countdown.textContent = t("returning", { s: left });
  ticking = setInterval(() => {
    left -= 1;
    if (left <= 0) { goHome(); return; }
    countdown.textContent = t("returning", { s: left });
  }, 1000);
}

// ------------------------------------------------------------ screens

const SCREENS = {
  home() {
    const box = el("section", "home");
    box.append(el("h2", "prompt", t("choose_category")));
    const grid = el("div", "tiles");
    for (const [category, services] of categories()) {
      const open = services.filter((s) => !s.closed_reason);
      const waiting = services.reduce((sum, s) => sum + s.waiting, 0);
      const tile = button(`tile category${open.length ? "" : " closed"}`, category,
        open.length ? `${t("services_count", { n: services.length })} · ${t("waiting_count", { n: waiting })}`
          : t("all_closed"),
        () => show("services", category));
      tile.dataset.category = category;
      grid.append(tile);
    }
    const appointment = button("tile appointment", t("appointment_tile"), t("appointment_tile_note"),
      () => show("appointment"));
    appointment.dataset.action = "appointment";
    box.append(appointment, grid);
    return box;
  },

  services(category) {
    const box = el("section", "services");
    box.append(el("h2", "prompt", category), el("p", "sub", t("choose_service")));
    const list = el("div", "service-list");
    for (const service of state.services.filter((s) => s.category === category)) {
      const reason = service.closed_reason;
      const tile = el("button", `service${reason ? " closed" : ""}`);
      tile.type = "button";
      tile.dataset.service = service.id;
      const name = el("span", "service-name", service.name);
      const meta = el("span", "service-meta", reason ? t(`reason_${reason}`) : estimateText(service));
      tile.append(el("span", "prefix", service.prefix), name, meta);
      on(tile, "click", () => {
        if (reason) showRefusal(reason);
        else show("how", service.id);
      });
      list.append(tile);
    }
    box.append(list);
    return box;
  },

  how(serviceId) {
    const service = state.services.find((s) => s.id === serviceId);
    const box = el("section", "how");
    box.append(el("h2", "prompt", service ? service.name : serviceId));
    if (service) box.append(el("p", "sub", estimateText(service)));
    box.append(el("h3", "step", t("how_title")));
    const grid = el("div", "ways");
    const ways = [
      ["idcard", "how_idcard", "how_idcard_note", () => show("idcard", serviceId, "ticket")],
      ["phone", "how_phone", "how_phone_note", () => show("phone", serviceId)],
      ["walkin", "how_walkin", "how_walkin_note",
        () => take({ service: serviceId, source: "walk_in" })],
    ];
    if (state.setup && state.setup.priority_groups.length) {
      ways.push(["priority", "how_priority", "how_priority_note", () => show("priority", serviceId)]);
    }
    for (const [way, title, note, action] of ways) {
      const tile = button(`way way-${way}`, t(title), t(note), action);
      tile.dataset.way = way;
      grid.append(tile);
    }
    box.append(grid);
    return box;
  },

  // purpose: "ticket" (an ID-card ticket for serviceId) or "appointment" (check-in)
  idcard(serviceId, purpose) {
    const box = el("section", "idcard");
    const appointment = purpose === "appointment";
    box.append(el("h2", "prompt", appointment ? t("appointment_by_card") : t("how_idcard")));
    const wait = el("div", "card-wait");
    wait.append(el("div", "card-icon"), el("div", "card-text",
      appointment ? t("appointment_card_note") : t("card_wait")), el("div", "sub", t("card_wait_note")));
    box.append(wait);
    const submit = (identity) => {
      if (appointment) take({ source: "appointment", identity: { id_number: identity.id_number } });
      else take({ service: serviceId, source: "id_card", identity: cleanIdentity(identity) });
    };
    cardHandler = submit;
    const form = el("div", "manual");
    form.append(el("h3", "step", t("card_manual")));
    const name = el("input", "field name-field");
    name.id = "name";
    name.placeholder = t("name_placeholder");
    name.maxLength = 32;
    name.autocomplete = "off";
    const number = el("div", "display id-display");
    number.id = "id-number";
    const hint = el("div", "hint");
    const go = el("button", "primary go", appointment ? t("check_in") : t("take"));
    go.type = "button";
    go.disabled = true;
    const pad = keypad({
      layout: "id", max: 18,
      onChange: (value) => {
        number.textContent = value;
        go.disabled = value.length !== 18;
        hint.textContent = value.length && value.length !== 18 ? t("id_invalid") : "";
      },
    });
    go.addEventListener("click", () => submit({ name: name.value.trim(), id_number: pad.value }));
    const rows = el("div", "fields");
    if (!appointment) rows.append(labelled(t("name"), name));
    rows.append(labelled(t("id_number"), number));
    form.append(rows, pad.element, hint, go);
    box.append(form);
    return box;
  },

  phone(serviceId) {
    const box = el("section", "phone");
    box.append(el("h2", "prompt", t("phone_title")), el("p", "sub", t("phone_note")));
    const display = el("div", "display phone-display");
    display.id = "phone-number";
    const go = el("button", "primary go", t("take"));
    go.type = "button";
    go.disabled = true;
    const pad = keypad({
      layout: "digits", max: 11,
      onChange: (value) => {
        display.textContent = value.replace(/^(\d{3})(\d{0,4})(\d{0,4}).*/, (_, a, b, c) => [a, b, c].filter(Boolean).join(" "));
        go.disabled = !/^1\d{10}$/.test(value);
      },
    });
    go.addEventListener("click", () => take({
      service: serviceId, source: "phone", identity: { phone: pad.value } }));
    box.append(display, pad.element, go);
    return box;
  },

  priority(serviceId) {
    const box = el("section", "priority");
    box.append(el("h2", "prompt", t("priority_title")), el("h3", "step", t("priority_group")));
    const groups = el("div", "chips");
    let chosen = null;
    const display = el("div", "display password-display");
    const go = el("button", "primary go", t("take"));
    go.type = "button";
    go.disabled = true;
    const pad = keypad({
      layout: "digits", max: 16,
      onChange: (value) => {
        display.textContent = "●".repeat(value.length);
        go.disabled = !(chosen && value.length);
      },
    });
    for (const group of state.setup.priority_groups) {
      const chip = el("button", "chip", group.name);
      chip.type = "button";
      chip.dataset.group = group.id;
      chip.addEventListener("click", () => {
        chosen = group.id;
        for (const other of groups.children) other.classList.toggle("chosen", other === chip);
        go.disabled = !pad.value.length;
      });
      groups.append(chip);
    }
    go.addEventListener("click", () => take({
      service: serviceId, source: "priority", priority_group: chosen, priority_password: pad.value }));
    box.append(groups, el("h3", "step", t("priority_password")), display, pad.element, go);
    return box;
  },

  appointment() {
    const box = el("section", "appointment");
    box.append(el("h2", "prompt", t("appointment_title")));
    const byCard = button("tile by-card", t("appointment_by_card"), t("appointment_card_note"),
      () => show("idcard", null, "appointment"));
    byCard.dataset.action = "appointment-card";
    box.append(byCard, el("h3", "step", t("appointment_code")));
    const display = el("div", "display code-display");
    display.id = "appointment-code";
    const go = el("button", "primary go", t("check_in"));
    go.type = "button";
    go.disabled = true;
    const pad = keypad({
      layout: "code", max: 10,
      onChange: (value) => { display.textContent = value; go.disabled = value.length < 6; },
    });
    go.addEventListener("click", () => take({ appointment_code: pad.value }));
    box.append(display, pad.element, go);
    return box;
  },

  busy() {
    const box = el("section", "busy");
    box.append(el("div", "spinner"), el("p", "prompt", t("busy")));
    return box;
  },

  ticket(ticket, checkedIn, direction) {
    const box = el("section", "ticket");
    box.append(el("div", "ticket-label", checkedIn ? t("ticket_checked_in") : t("ticket_label")));
    const number = el("div", "ticket-number number", ticket.number);
    number.id = "ticket-number";
    const service = state.services.find((s) => s.id === ticket.service);
    box.append(number, el("div", "ticket-service", service ? service.name : ticket.service));
    const facts = el("div", "facts");
    const ahead = el("div", "fact");
    ahead.append(el("span", "fact-label", t("people_ahead")),
      el("span", "fact-value number", String(ticket.people_ahead ?? 0)), el("span", "fact-unit", t("people_unit")));
    ahead.id = "people-ahead";
    const wait = el("div", "fact");
    wait.append(el("span", "fact-label", t("wait_label")),
      el("span", "fact-value number", ticket.people_ahead ? minutes(ticket.estimated_minutes) : "0"),
      el("span", "fact-unit", t("minutes_unit")));
    wait.id = "estimate";
    facts.append(ahead, wait);
    box.append(facts);
    const text = ticket.text || { direction: "", materials: [], notice: "" };
    const where = text.direction || direction;
    if (where) box.append(block("direction", t("direction"), where));
    if (text.materials && text.materials.length) {
      const list = el("ul", "materials");
      for (const item of text.materials) list.append(el("li", null, item));
      box.append(block("materials", t("materials"), list));
    }
    if (text.notice) box.append(block("notice", t("notice"), text.notice));
    const take = el("div", "take-ticket");
    take.append(el("div", "printer-icon"), el("div", "take-text", t("take_ticket")),
      el("div", "sub", t("take_ticket_note")));
    box.append(take);
    setTimeout(() => startTicking(TICKET_SECONDS), 0);
    return box;
  },

  refused(code, problem) {
    const box = el("section", "refused");
    box.dataset.code = code;
    box.append(el("div", "refused-icon", "!"), el("h2", "prompt", t("refused")));
    let message;
    if (code === "printer_offline") message = printerProblemText(problem?.problem, problem?.elsewhere);
    else message = t(code) === code ? t("failed") : t(code);
    const text = el("p", "refused-text", message);
    text.id = "refusal";
    box.append(text);
    const again = el("button", "primary go", t("home"));
    again.type = "button";
    again.addEventListener("click", goHome);
    box.append(again);
    if (state.history.length && code !== "printer_offline") {
      const retry = el("button", "go secondary", t("back"));
      retry.type = "button";
      retry.addEventListener("click", goBack);
      box.append(retry);
    }
    return box;
  },
};

function labelled(label, field) {
  const row = el("label", "row");
  row.append(el("span", "row-label", label), field);
  return row;
}

function block(kind, title, content) {
  const node = el("div", `block block-${kind}`);
  node.append(el("div", "block-title", title));
  if (typeof content === "string") node.append(el("div", "block-body", content));
  else node.append(content);
  return node;
}

function cleanIdentity(identity) {
  const out = { id_number: String(identity.id_number || "").trim().toUpperCase() };
  if (identity.name) out.name = String(identity.name).trim();
  return out;
}

function showRefusal(code, problem) {
  state.history.push(state.current);
  state.current = { name: "refused", args: [code, problem] };
  render();
}

// ------------------------------------------------------------ taking a ticket

async function take(body) {
  const from = state.current;
  state.current = { name: "busy", args: [] };
  render();
  try {
    const ticket = await api("/tickets", { method: "POST", body });
    const direction = ticket.text && ticket.text.direction ? "" : await whereServed(ticket.service);
    state.history = [];
    state.current = { name: "ticket", args: [ticket, Boolean(body.appointment_code) || body.source === "appointment", direction] };
    render();
    refresh();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    state.current = from;
    showRefusal(error.code === "http_401" ? "unauthorized" : error.code, error.problem);
    if (error.code === "printer_offline") loadSetup();
  }
}

async function whereServed(serviceId) {
  try {
    const guide = await api(`/guides/${encodeURIComponent(serviceId)}`);
    if (!guide.windows.length) return "";
    const areas = new Map();
    for (const window of guide.windows) {
      if (!areas.has(window.area_name)) areas.set(window.area_name, []);
      areas.get(window.area_name).push(window.name);
    }
    return [...areas].map(([area, names]) => `${area} ${names.join("、")}`).join("；");
  } catch {
    return "";
  }
}

// ------------------------------------------------------------ ID cards from the reader

function identityPushed(identity) {
  if (!identity || !identity.id_number || !cardHandler) return;
  const handler = cardHandler;
  cardHandler = null;
  handler(identity);
}

window.addEventListener("smarthall:identity", (event) => identityPushed(event.detail));
window.addEventListener("message", (event) => {
  if (event.source === window && event.data && event.data.type === "smarthall.identity") {
    identityPushed(event.data.identity);
  }
});

// ------------------------------------------------------------ live data

async function refresh() {
  state.services = await api("/services");
  const name = state.current && state.current.name;
  if (name === "home" || name === "services") render({ live: true });
}

async function loadSetup() {
  try {
    state.setup = await api("/kiosk");
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    state.setup = { hall: "", kiosk: null, elsewhere: [], priority_groups: [], appointments: false };
  }
  drawSetup();
}

function drawSetup() {
  const setup = state.setup;
  if (setup.hall) document.getElementById("hall-name").textContent = `${setup.hall} · ${t("title")}`;
  document.getElementById("kiosk-name").textContent = setup.kiosk ? setup.kiosk.name : "";
  const problem = setup.kiosk && setup.kiosk.print_problem;
  printerNote.hidden = !problem;
  printerNote.textContent = problem ? printerProblemText(problem, setup.elsewhere) : "";
}

function clock() {
  const now = new Date();
  document.getElementById("clock").textContent =
    `${String(now.getHours()).padStart(2, "0")}:${String(now.getMinutes()).padStart(2, "0")}`;
}

takeTokenFromUrl();
apply();
languageSwitch(document.getElementById("language"));
backButton.addEventListener("click", goBack);
homeButton.addEventListener("click", goHome);
document.addEventListener("pointerdown", touched, { capture: true });
document.addEventListener("keydown", touched, { capture: true });
onLanguage(() => { drawSetup(); render(); });
clock();
setInterval(clock, 10000);

await Promise.all([refresh(), loadSetup()]);
goHome();
document.body.dataset.ready = "true";
const later = coalesce(() => refresh().catch(() => {}), 300);
const setupLater = coalesce(() => loadSetup().catch(() => {}), 300);
openStream({
  types: ["ticket.*", "window.*", "day.*", "device.changed"],
  onEvent: (event) => { if (event.type === "device.changed") setupLater(); else later(); },
  onStatus: (status) => { offline.hidden = status === "online"; if (status === "online") later(); },
});
