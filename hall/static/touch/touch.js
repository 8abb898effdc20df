// The touch-query terminal (D1, D3), a landscape touch screen in the hall: the hall now
// (services with how many wait), service guides by category with their materials, steps
// and sample forms, the floor guide drawn from the floor maps, the urgent notices, and a
// case's progress by its code. Everything it reads is public; it needs no token.
//
// `?idle=<s>` (default 120) returns to the start after that long untouched.

import { api, ApiError } from "/ui/common/api.js";
import { coalesce, openStream } from "/ui/common/stream.js";
import { apply, languageSwitch, onLanguage, register, t } from "/ui/common/i18n.js";
import { keypad } from "/ui/common/keypad.js";

register({
  zh: {
    title: "自助查询", close: "关闭",
    nav_hall: "大厅概况", nav_guides: "办事指南", nav_floors: "楼层导览",
    nav_notices: "通知公告", nav_case: "办件查询",
    hall_title: "当前办理情况", waiting: "等候 {n} 人", estimate: "约 {m} 分钟",
    open: "可取号", closed: "暂停取号", windows_open: "{n} 个窗口办理",
    floors_of: "{floor}楼：{areas}",
    guides_title: "办事指南", choose_guide: "请在左侧选择事项",
    department: "实施部门", where: "办理地点", materials: "申请材料", steps: "办理流程",
    fee: "收费标准", time_limit: "承诺时限", basis: "设定依据", forms: "样表下载",
    forms_none: "暂无样表", materials_none: "暂无材料要求", free: "不收费",
    form_file: "查看样表", form_link: "网上查看：{url}",
    floors_title: "楼层导览", no_map: "本层平面图尚未绘制，下面是本层的区域和窗口",
    legend_window: "窗口", legend_feature: "设施",
    notices_title: "通知公告", notices_none: "暂无通知", until: "有效期至 {time}",
    case_title: "办件进度查询", case_prompt: "请输入办件编号（受理回执上的编号）",
    case_query: "查询", case_none: "未查询到该办件，请核对编号", case_of: "办件编号 {code}",
    level_urgent: "紧急", level_warning: "提醒", level_info: "通知",
  },
  en: {
    title: "Information", close: "Close",
    nav_hall: "The hall now", nav_guides: "Service guides", nav_floors: "Floor guide",
    nav_notices: "Notices", nav_case: "Case progress",
    hall_title: "Services now", waiting: "{n} waiting", estimate: "about {m} min",
    open: "Open", closed: "Not available", windows_open: "{n} windows",
    floors_of: "Floor {floor}: {areas}",
    guides_title: "Service guides", choose_guide: "Choose a service on the left",
    department: "Department", where: "Where", materials: "Materials", steps: "Steps",
    fee: "Fee", time_limit: "Time limit", basis: "Legal basis", forms: "Sample forms",
    forms_none: "No sample forms", materials_none: "No materials listed", free: "Free",
    form_file: "Open form", form_link: "Online: {url}",
    floors_title: "Floor guide", no_map: "No map drawn for this floor yet: its areas and windows",
    legend_window: "Window", legend_feature: "Facility",
    notices_title: "Notices", notices_none: "No notices", until: "Until {time}",
    case_title: "Case progress", case_prompt: "Enter the case number on your receipt",
    case_query: "Search", case_none: "No case with this number", case_of: "Case {code}",
    level_urgent: "Urgent", level_warning: "Warning", level_info: "Info",
  },
});

const IDLE_SECONDS = Number(new URLSearchParams(location.search).get("idle") || 120);
const SECTIONS = ["hall", "guides", "floors", "notices", "case"];
const nav = document.getElementById("nav");
const content = document.getElementById("content");
const offline = document.getElementById("offline");
const state = { section: "hall", hall: null, services: [], guides: null, guide: null,
  floors: null, floor: null, map: null, notices: [], caseCode: "", caseSteps: null };
let idleTimer = null;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function clickable(tag, className, text, onClick) {
  const node = el(tag, className, text);
  if (tag === "button") node.type = "button";
  node.addEventListener("click", onClick);
  return node;
}

function timeText(iso) {
  const date = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

// ------------------------------------------------------------ navigation

function drawNav() {
  nav.replaceChildren(...SECTIONS.map((section) => {
    const tile = clickable("button", `nav-tile nav-${section}${state.section === section ? " active" : ""}`,
      t(`nav_${section}`), () => open(section));
    tile.dataset.section = section;
    tile.prepend(el("span", "nav-icon"));
    return tile;
  }));
}

async function open(section) {
  state.section = section;
  if (section === "guides" && !state.guides) state.guides = await api("/guides");
  if (section === "floors" && !state.floors) {
    state.floors = await api("/floors");
    if (state.floors.length) await openFloor(state.floors[0].floor, false);
  }
  if (section === "notices") state.notices = await api("/signage/notices");
  render();
}

async function openFloor(floor, draw = true) {
  state.floor = floor;
  state.map = await api(`/floors/${floor}`);
  if (draw) render();
}

async function openGuide(serviceId) {
  state.guide = await api(`/guides/${encodeURIComponent(serviceId)}`);
  render();
}

function render() {
  drawNav();
  content.dataset.section = state.section;
  content.replaceChildren(SECTIONS_VIEW[state.section]());
  apply(content);
}

function touched() {
  clearTimeout(idleTimer);
  idleTimer = setTimeout(() => {
    state.guide = null;
    state.caseCode = "";
    state.caseSteps = null;
    closeViewer();
    if (state.section !== "hall") open("hall");
  }, IDLE_SECONDS * 1000);
}

// ------------------------------------------------------------ the sections

const SECTIONS_VIEW = {
  hall() {
    const box = el("section", "hall-now");
    box.append(el("h2", "section-title", t("hall_title")));
    const grid = el("div", "service-grid");
    for (const service of state.services) {
      const card = el("div", `service-card${service.open ? "" : " closed"}`);
      card.dataset.service = service.id;
      card.append(el("div", "service-name", service.name), el("div", "service-category", service.category));
      const line = service.open
        ? `${t("waiting", { n: service.waiting })}${service.waiting ? ` · ${t("estimate", { m: Math.max(1, Math.round(service.estimated_minutes || 0)) })}` : ""}`
        : t("closed");
      card.append(el("div", "service-line", line));
      grid.append(card);
    }
    box.append(grid);
    if (state.hall) {
      const floors = new Map();
      for (const area of state.hall.areas) {
        if (!floors.has(area.floor)) floors.set(area.floor, []);
        floors.get(area.floor).push(area.name);
      }
      const list = el("div", "floor-lines");
      for (const [floor, areas] of [...floors].sort((a, b) => a[0] - b[0])) {
        list.append(el("div", "floor-line", t("floors_of", { floor, areas: areas.join("、") })));
      }
      box.append(list);
    }
    return box;
  },

  guides() {
    const box = el("section", "guides");
    const list = el("div", "guide-list");
    for (const category of state.guides || []) {
      list.append(el("div", "guide-category", category.name));
      for (const brief of category.guides) {
        const item = clickable("button", `guide-item${state.guide && state.guide.service === brief.service ? " active" : ""}`,
          brief.name, () => openGuide(brief.service));
        item.dataset.guide = brief.service;
        list.append(item);
      }
    }
    box.append(list, state.guide ? guideDetail(state.guide) : el("div", "guide-detail empty", t("choose_guide")));
    return box;
  },

  floors() {
    const box = el("section", "floors");
    const tabs = el("div", "floor-tabs");
    for (const floor of state.floors || []) {
      const tab = clickable("button", `floor-tab${floor.floor === state.floor ? " active" : ""}`, floor.name,
        () => openFloor(floor.floor));
      tab.dataset.floor = String(floor.floor);
      tabs.append(tab);
    }
    box.append(tabs);
    if (state.map) box.append(floorMap(state.map));
    return box;
  },

  notices() {
    const box = el("section", "notices");
    box.append(el("h2", "section-title", t("notices_title")));
    if (!state.notices.length) box.append(el("p", "empty", t("notices_none")));
    for (const notice of state.notices) {
      const card = el("article", `notice level-${notice.level}`);
      card.append(el("span", "notice-level", t(`level_${notice.level}`)), el("div", "notice-text", notice.text),
        el("div", "notice-until", t("until", { time: timeText(notice.expires_at) })));
      box.append(card);
    }
    return box;
  },

  case() {
    const box = el("section", "case");
    const form = el("div", "case-form");
    form.append(el("h2", "section-title", t("case_title")), el("p", "muted", t("case_prompt")));
    const display = el("div", "case-display");
    display.id = "case-code";
    display.textContent = state.caseCode;
    const go = clickable("button", "primary case-go", t("case_query"), () => queryCase(pad.value));
    go.disabled = !state.caseCode;
    const pad = keypad({
      layout: "alnum", max: 40, value: state.caseCode,
      onChange: (value) => { state.caseCode = value; display.textContent = value; go.disabled = !value; },
    });
    form.append(display, pad.element, go);
    box.append(form, caseResult());
    return box;
  },
};

function guideDetail(guide) {
  const box = el("article", "guide-detail");
  box.dataset.service = guide.service;
  box.append(el("h2", "guide-name", guide.name));
  const facts = el("dl", "facts");
  const fact = (label, value) => {
    if (!value) return;
    facts.append(el("dt", null, label), el("dd", null, value));
  };
  fact(t("department"), guide.department);
  const where = guide.direction || guide.windows.map((w) => `${w.area_name} ${w.name}`).join("、");
  fact(t("where"), where);
  fact(t("time_limit"), guide.time_limit);
  fact(t("fee"), guide.fee || t("free"));
  box.append(facts);
  if (guide.summary) box.append(el("p", "guide-summary", guide.summary));
  const columns = el("div", "guide-columns");
  const materials = el("div", "guide-block materials");
  materials.append(el("h3", null, t("materials")));
  if (!guide.materials.length) materials.append(el("p", "muted", t("materials_none")));
  const list = el("ol", "material-list");
  for (const item of guide.materials) {
    const row = el("li", null, item.name);
    if (item.note) row.append(el("span", "note", `（${item.note}）`));
    list.append(row);
  }
  materials.append(list);
  columns.append(materials);
  const right = el("div", "guide-block");
  if (guide.steps.length) {
    right.append(el("h3", null, t("steps")));
    const steps = el("ol", "steps");
    for (const step of guide.steps) steps.append(el("li", null, step));
    right.append(steps);
  }
  right.append(el("h3", null, t("forms")));
  if (!guide.forms.length) right.append(el("p", "muted", t("forms_none")));
  for (const form of guide.forms) {
    const row = el("div", "form-row");
    row.dataset.form = form.id;
    row.append(el("span", "form-title", form.title));
    if (form.kind === "file") {
      row.append(clickable("button", "form-open", t("form_file"), () => openViewer(form)));
    } else {
      row.append(el("span", "form-url", t("form_link", { url: form.url })));
    }
    right.append(row);
  }
  columns.append(right);
  box.append(columns);
  if (guide.basis) box.append(el("p", "basis", `${t("basis")}：${guide.basis}`));
  return box;
}

// The floor as the manager drew it (areas as rectangles, windows as points, features as
// labelled marks), or, before anyone drew it, its areas side by side with their windows.
function floorMap(map) {
  const ns = "http://www.w3.org/2000/svg";
  const make = (name, attrs, text) => {
    const node = document.createElementNS(ns, name);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const wrap = el("div", "map-wrap");
  let width = map.width;
  let height = map.height;
  let areas = map.areas.filter((a) => a.shape);
  let windows = map.windows.filter((w) => w.position);
  if (!width || !areas.length) {
    wrap.append(el("p", "muted map-note", t("no_map")));
    width = 1000;
    height = 560;
    const cell = width / Math.max(1, map.areas.length);
    areas = map.areas.map((a, i) => ({ ...a, shape: { x: i * cell + 20, y: 20, w: cell - 40, h: height - 40 } }));
    windows = map.windows.map((w) => {
      const area = areas.find((a) => a.id === w.area);
      const mine = map.windows.filter((o) => o.area === w.area);
      const index = mine.indexOf(w);
      const step = (area.shape.h - 120) / Math.max(1, mine.length);
      return { ...w, position: { x: area.shape.x + area.shape.w / 2, y: area.shape.y + 110 + step * (index + 0.5) } };
    });
  }
  const unit = Math.max(width, height) / 100;
  const svg = make("svg", { viewBox: `0 0 ${width} ${height}`, class: "floor-map", role: "img" });
  svg.append(make("rect", { x: 0, y: 0, width, height, class: "map-floor", rx: unit }));
  areas.forEach((area, index) => {
    const group = make("g", { class: `map-area tone-${index % 4}`, "data-area": area.id });
    const { x, y, w, h } = area.shape;
    group.append(make("rect", { x, y, width: w, height: h, rx: unit * 0.8 }));
    group.append(make("text", { x: x + w / 2, y: y + unit * 5, "font-size": unit * 3.6, class: "area-label" }, area.name));
    svg.append(group);
  });
  for (const window of windows) {
    const group = make("g", { class: "map-window", "data-window": window.id });
    const { x, y } = window.position;
    group.append(make("circle", { cx: x, cy: y, r: unit * 1.6 }));
    group.append(make("text", { x, y: y + unit * 4.2, "font-size": unit * 2.4, class: "window-label" }, window.name));
    const services = window.services.map((s) => s.name).join("、");
    group.append(make("title", {}, `${window.name}：${services}`));
    svg.append(group);
  }
  for (const feature of map.features || []) {
    const group = make("g", { class: `map-feature feature-${feature.kind}` });
    group.append(make("rect", { x: feature.x - unit * 1.4, y: feature.y - unit * 1.4, width: unit * 2.8, height: unit * 2.8, rx: unit * 0.5 }));
    const below = feature.y + unit * 4.4 <= height;
    group.append(make("text", { x: feature.x, y: below ? feature.y + unit * 4 : feature.y - unit * 2,
      "font-size": unit * 2.2, class: "feature-label" }, feature.label));
    svg.append(group);
  }
  wrap.append(svg);
  const legend = el("div", "legend");
  for (const window of map.windows) {
    const row = el("div", "legend-row");
    row.append(el("span", "legend-window", window.name),
      el("span", "legend-services", window.services.map((s) => s.name).join("、")));
    legend.append(row);
  }
  wrap.append(legend);
  return wrap;
}

async function queryCase(code) {
  state.caseCode = code;
  try {
    state.caseSteps = await api(`/cases/${encodeURIComponent(code)}`);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    state.caseSteps = [];
  }
  render();
}

function caseResult() {
  const box = el("div", "case-result");
  box.id = "case-result";
  if (state.caseSteps === null) return box;
  if (!state.caseSteps.length) {
    box.append(el("p", "case-none", t("case_none")));
    return box;
  }
  box.append(el("h3", "case-of", t("case_of", { code: state.caseSteps[0].case_id })));
  const timeline = el("ol", "timeline");
  state.caseSteps.forEach((step, index) => {
    const item = el("li", `step${index === state.caseSteps.length - 1 ? " latest" : ""}`);
    item.append(el("div", "step-status", step.status), el("div", "step-time", timeText(step.at)));
    if (step.message) item.append(el("div", "step-message", step.message));
    timeline.append(item);
  });
  box.append(timeline);
  return box;
}

// ------------------------------------------------------------ sample forms

const viewer = document.getElementById("viewer");
function openViewer(form) {
  document.getElementById("viewer-title").textContent = form.title;
  document.getElementById("viewer-frame").src = form.url;
  viewer.hidden = false;
}
function closeViewer() {
  viewer.hidden = true;
  document.getElementById("viewer-frame").src = "about:blank";
}
document.getElementById("viewer-close").addEventListener("click", closeViewer);

// ------------------------------------------------------------ live data

async function refreshHall() {
  const [hall, services] = await Promise.all([api("/hall"), api("/services")]);
  state.hall = hall;
  state.services = services;
  document.getElementById("hall-name").textContent = `${hall.hall.name} · ${t("title")}`;
  if (state.section === "hall") render();
}

async function refreshNotices() {
  state.notices = await api("/signage/notices");
  if (state.section === "notices") render();
}

function clock() {
  const now = new Date();
  document.getElementById("clock").textContent =
    `${String(now.getHours()).padStart(2, "0")}:${String(now.getMinutes()).padStart(2, "0")}`;
}

apply();
languageSwitch(document.getElementById("language"));
onLanguage(() => { if (state.hall) document.getElementById("hall-name").textContent = `${state.hall.hall.name} · ${t("title")}`; render(); });
document.addEventListener("pointerdown", touched, { capture: true });
clock();
setInterval(clock, 10000);
await refreshHall();
render();
document.body.dataset.ready = "true";
const hallLater = coalesce(() => refreshHall().catch(() => {}), 500);
const noticesLater = coalesce(() => refreshNotices().catch(() => {}), 200);
openStream({
  types: ["ticket.*", "window.*", "day.*", "signage.*"],
  onEvent: (event) => { if (event.type.startsWith("signage.")) noticesLater(); else hallLater(); },
  onStatus: (status) => { offline.hidden = status === "online"; if (status === "online") hallLater(); },
});
