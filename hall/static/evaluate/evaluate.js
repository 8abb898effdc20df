// The window's evaluation terminal (D10), a small landscape tablet (~1280×800) facing the
// citizen: idle it shows the window and the clerk; when the window asks for a rating
// (`evaluation.requested` on the event stream, from the call terminal's
// `terminal.evaluate` or the virtual caller's POST /windows/{w}/evaluation-request) it
// shows the ticket number, the window and the clerk, five big buttons from 非常满意 to
// 非常不满意 and reason chips; the rating goes to POST /tickets/{id}/evaluation as the
// window's device (its token, `?token=`); then thanks, and back to idle.
//
// `?window=<id>` names the window. `?thanks=<s>` (default 6) is how long the thanks stay,
// `?timeout=<s>` (default 120) how long an unanswered request stays up.

import { api, ApiError, takeTokenFromUrl } from "/ui/common/api.js";
import { coalesce, openStream } from "/ui/common/stream.js";
import { apply, languageSwitch, onLanguage, register, t } from "/ui/common/i18n.js";

register({
  zh: {
    title: "服务评价", staff: "工作人员：{name}", window_missing: "请在地址中指定 window 参数",
    idle_title: "欢迎您对我们的服务进行评价", idle_note: "业务办理结束后，请在此屏幕上评价",
    ask: "请您对本次服务进行评价", ticket: "号码 {number}",
    r5: "非常满意", r4: "满意", r3: "基本满意", r2: "不满意", r1: "非常不满意",
    reasons_good: "您满意的是（可多选）", reasons_bad: "您不满意的是（可多选）",
    submit: "提交评价", thanks: "感谢您的评价！", thanks_note: "您的意见将帮助我们改进服务",
    already_rated: "本次服务已评价，感谢您！", failed: "评价未能提交，请重试",
    good_1: "热情周到", good_2: "办事高效", good_3: "业务熟练", good_4: "讲解清楚", good_5: "环境舒适",
    bad_1: "态度不好", bad_2: "等候时间长", bad_3: "办事效率低", bad_4: "业务不熟练",
    bad_5: "材料要求不清", bad_6: "多次跑腿",
  },
  en: {
    title: "Rate our service", staff: "Staff: {name}", window_missing: "Add ?window=<id> to the address",
    idle_title: "Tell us how we did", idle_note: "When your business is done, rate it here",
    ask: "How was your service today?", ticket: "Ticket {number}",
    r5: "Very satisfied", r4: "Satisfied", r3: "Fair", r2: "Unsatisfied", r1: "Very unsatisfied",
    reasons_good: "What went well? (any)", reasons_bad: "What went wrong? (any)",
    submit: "Send rating", thanks: "Thank you!", thanks_note: "Your opinion helps us do better",
    already_rated: "This service was rated already. Thank you!", failed: "Not sent, please try again",
    good_1: "Friendly", good_2: "Quick", good_3: "Knowledgeable", good_4: "Clear explanations",
    good_5: "Pleasant hall",
    bad_1: "Unfriendly", bad_2: "Long wait", bad_3: "Slow", bad_4: "Not knowledgeable",
    bad_5: "Unclear requirements", bad_6: "Had to come back",
  },
});

const params = new URLSearchParams(location.search);
const windowId = params.get("window");
const THANKS_SECONDS = Number(params.get("thanks") || 6);
const REQUEST_SECONDS = Number(params.get("timeout") || 120);
// Opened from the virtual caller's rating link: one ticket, rated with the one-off
// token the caller was given (no device token on this screen).
const GRANT = params.get("grant");
const GOOD = ["good_1", "good_2", "good_3", "good_4", "good_5"];
const BAD = ["bad_1", "bad_2", "bad_3", "bad_4", "bad_5", "bad_6"];
const COLOURS = { 5: "#1f8a4c", 4: "#5aa63c", 3: "#c9a400", 2: "#e07b00", 1: "#c4161c" };

const screen = document.getElementById("screen");
const offline = document.getElementById("offline");
const state = { window: null, request: null, rating: null, reasons: new Set(), view: "idle", message: "" };
let timer = null;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

// A face whose mouth bends with the rating: 5 a wide smile, 1 a frown.
function face(rating) {
  const bend = (rating - 3) * 9;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 100 100");
  svg.setAttribute("class", "face");
  svg.innerHTML = `<circle cx="50" cy="50" r="46" fill="${COLOURS[rating]}"/>
    <circle cx="34" cy="40" r="6" fill="#fff"/><circle cx="66" cy="40" r="6" fill="#fff"/>
    <path d="M28 ${68 - bend / 2} Q50 ${68 + bend} 72 ${68 - bend / 2}" stroke="#fff"
      stroke-width="7" fill="none" stroke-linecap="round"/>`;
  return svg;
}

function later(seconds, fn) {
  clearTimeout(timer);
  timer = setTimeout(fn, seconds * 1000);
}

function goIdle() {
  clearTimeout(timer);
  state.request = null;
  state.rating = null;
  state.reasons = new Set();
  state.view = "idle";
  render();
}

function render() {
  drawHeader();
  screen.dataset.view = state.view;
  screen.replaceChildren(VIEWS[state.view]());
}

function drawHeader() {
  const w = state.window;
  document.getElementById("window-name").textContent = w ? w.name : "";
  document.getElementById("staff-name").textContent =
    w && w.staff_name ? t("staff", { name: w.staff_name }) : "";
}

const VIEWS = {
  idle() {
    const box = el("section", "idle");
    box.append(el("div", "idle-window", state.window ? state.window.name : ""));
    if (state.window && state.window.staff_name) {
      box.append(el("div", "idle-staff", t("staff", { name: state.window.staff_name })));
    }
    const faces = el("div", "idle-faces");
    for (const rating of [5, 4, 3, 2, 1]) faces.append(face(rating));
    box.append(faces, el("h2", "idle-title", t("idle_title")), el("p", "idle-note", t("idle_note")));
    return box;
  },

  ask() {
    const box = el("section", "ask");
    const head = el("div", "ask-head");
    const number = el("span", "ticket-number number", t("ticket", { number: state.request.number }));
    number.id = "ticket-number";
    head.append(el("h2", "ask-title", t("ask")), number);
    box.append(head);
    const ratings = el("div", "ratings");
    for (const rating of [5, 4, 3, 2, 1]) {
      const button = el("button", `rating${state.rating === rating ? " chosen" : ""}`);
      button.type = "button";
      button.dataset.rating = String(rating);
      button.style.setProperty("--colour", COLOURS[rating]);
      button.append(face(rating), el("span", "rating-label", t(`r${rating}`)));
      button.addEventListener("click", () => {
        if (state.rating !== rating) state.reasons = new Set();
        state.rating = rating;
        later(REQUEST_SECONDS, goIdle);
        render();
      });
      ratings.append(button);
    }
    box.append(ratings);
    const reasons = el("div", "reasons");
    if (state.rating !== null) {
      const good = state.rating >= 4;
      reasons.append(el("div", "reasons-title", t(good ? "reasons_good" : "reasons_bad")));
      const chips = el("div", "chips");
      for (const key of good ? GOOD : BAD) {
        const chip = el("button", `chip${state.reasons.has(key) ? " chosen" : ""}`, t(key));
        chip.type = "button";
        chip.dataset.reason = key;
        chip.addEventListener("click", () => {
          if (state.reasons.has(key)) state.reasons.delete(key);
          else state.reasons.add(key);
          chip.classList.toggle("chosen", state.reasons.has(key));
        });
        chips.append(chip);
      }
      const submit = el("button", "primary submit", t("submit"));
      submit.type = "button";
      submit.id = "submit";
      submit.addEventListener("click", send);
      reasons.append(chips, submit);
      if (state.message) reasons.append(el("div", "error", state.message));
    }
    box.append(reasons);
    return box;
  },

  thanks() {
    const box = el("section", "thanks");
    box.append(face(5), el("h2", "thanks-title", state.message || t("thanks")),
      el("p", "idle-note", t("thanks_note")));
    return box;
  },
};

async function send() {
  const request = state.request;
  // Reasons are stored in Chinese whatever the screen's language: they are read in the hall.
  const reasons = [...state.reasons].map((key) => REASON_TEXT[key]);
  try {
    await api(`/tickets/${encodeURIComponent(request.ticket_id)}/evaluation`, {
      method: "POST",
      body: GRANT ? { rating: state.rating, reasons, token: GRANT } : { rating: state.rating, reasons },
    });
    thank("");
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.code === "already_rated") { thank(t("already_rated")); return; }
    state.message = t("failed");
    render();
  }
}

const REASON_TEXT = {
  good_1: "热情周到", good_2: "办事高效", good_3: "业务熟练", good_4: "讲解清楚", good_5: "环境舒适",
  bad_1: "态度不好", bad_2: "等候时间长", bad_3: "办事效率低", bad_4: "业务不熟练",
  bad_5: "材料要求不清", bad_6: "多次跑腿",
};

function thank(message) {
  state.view = "thanks";
  state.message = message;
  render();
  later(THANKS_SECONDS, goIdle);
}

function requested(event) {
  state.request = { ticket_id: event.ticket_id, number: event.number };
  state.rating = null;
  state.reasons = new Set();
  state.message = "";
  state.view = "ask";
  render();
  later(REQUEST_SECONDS, goIdle);
}

async function loadWindow() {
  const hall = await api("/hall");
  state.window = hall.windows.find((w) => w.id === windowId) || null;
  if (state.view === "idle") render();
  else drawHeader();
}

takeTokenFromUrl();
apply();
languageSwitch(document.getElementById("language"));
onLanguage(render);
if (!windowId) {
  screen.textContent = t("window_missing");
} else {
  await loadWindow();
  render();
  if (GRANT && params.get("ticket")) {
    requested({ ticket_id: params.get("ticket"), number: params.get("number") || "" });
  }
  document.body.dataset.ready = "true";
  const windowChanged = coalesce(() => loadWindow().catch(() => {}), 300);
  openStream({
    types: ["evaluation.*", "window.*"],
    onEvent: (event) => {
      if (event.type === "evaluation.requested" && event.window_id === windowId) requested(event);
      else if (event.type === "evaluation.recorded" && state.request
               && event.ticket_id === state.request.ticket_id && state.view === "ask") thank("");
      else if (event.type.startsWith("window.")) windowChanged();
    },
    onStatus: (status) => { offline.hidden = status === "online"; if (status === "online") windowChanged(); },
  });
}
