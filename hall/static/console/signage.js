// Signage (D8): urgent notices pushed to every window screen and hall board (and
// withdrawn), the schedules of what screen groups show when (created, edited and
// deleted here, with a small form for a first screen group, notice item or layout so an
// empty hall can get its first schedule), and what each screen shows now.
import { api } from "/ui/common/api.js";
import { t } from "/ui/common/i18n.js";
import { clock, el, failed, table, toast, weekdaysText, when } from "./dom.js";

const DURATIONS = [15, 30, 60, 120, 240, 480, 1440];
const WEEKDAYS = [1, 2, 3, 4, 5, 6, 7];
const PLAYS = { media: ["notice", "image", "video", "queue", "calling"], ticker: ["notice"] };
// Ready-made layouts (PUT /signage/layouts/{id}); regions in per cent of the screen.
const PRESETS = {
  media_ticker: [
    { id: "main", kind: "media", x: 0, y: 0, w: 100, h: 90 },
    { id: "ticker", kind: "ticker", x: 0, y: 90, w: 100, h: 10 }],
  calling_media: [
    { id: "main", kind: "media", x: 0, y: 0, w: 70, h: 90 },
    { id: "calls", kind: "calling", x: 70, y: 0, w: 30, h: 90 },
    { id: "ticker", kind: "ticker", x: 0, y: 90, w: 100, h: 10 }],
  queue_clock: [
    { id: "queue", kind: "queue", x: 0, y: 0, w: 100, h: 85 },
    { id: "clock", kind: "clock", x: 0, y: 85, w: 30, h: 15 },
    { id: "ticker", kind: "ticker", x: 30, y: 85, w: 70, h: 15 }],
};

function newId(prefix) {
  return `${prefix}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 5)}`;
}

function blankSchedule() {
  return { id: null, name: "", group: "", layout: "", playlist: {}, priority: 0, weekdays: [],
    start: "", end: "", start_date: "", end_date: "", enabled: true };
}

// A refusal of the API in the manager's words, and the form field it concerns.
export function refusal(error) {
  const problem = error.problem || {};
  if (error.code === "invalid_content") {
    const field = String(problem.field || "");
    const key = field.startsWith("playlist") ? "playlist" : field;
    const known = ["group", "layout", "start", "end", "end_date", "weekdays", "playlist"];
    return { field: key, message: known.includes(key) ? t(`bad_${key}`) : t("bad_content") };
  }
  if (error.code === "in_use") {
    return { field: null, message: t("in_use", { names: (problem.schedules || []).join("、") }) };
  }
  if (error.code === "breaks_schedule") {
    return { field: null, message: t("breaks_schedule", { name: problem.schedule || "" }) };
  }
  if (error.code === "validation_failed") {
    const where = (problem.errors || []).map((e) => [].concat(e.loc ?? e.field ?? e.path ?? [])
      .filter((x) => x !== "body").join(".")).filter(Boolean);
    return { field: where[0] || null, message: t("bad_input", { fields: where.join("、") || "—" }) };
  }
  return { field: null, message: t("failed", { reason: error.message || String(error) }) };
}

export function mount(root, ctx) {
  let content = { schedules: [], groups: [], layouts: [], notices: [] };
  let screens = [];
  let draft = { text: "", level: "urgent", minutes: 60 };
  let editing = blankSchedule();     // the schedule in the form (id null: a new one)
  let scheduleError = null;          // {field, message} of the last refusal
  let armedDelete = null;            // schedule id whose delete button asks to confirm
  let extra = null;                  // "group" | "item" | "layout": the small form open
  let extraError = null;

  async function saveSchedule(form) {
    const f = form.elements;
    const playlist = {};
    for (const box of form.querySelectorAll("input[data-region]:checked")) {
      (playlist[box.dataset.region] ||= []).push(box.value);
    }
    const body = {
      name: f.name.value.trim() || f.layout.selectedOptions[0]?.text || "计划",
      group: f.group.value, layout: f.layout.value, playlist,
      priority: Number(f.priority.value || 0),
      weekdays: WEEKDAYS.filter((d) => f[`wd-${d}`].checked),
      start: f.start.value || null, end: f.end.value || null,
      start_date: f.start_date.value || null, end_date: f.end_date.value || null,
      enabled: f.enabled.checked,
    };
    const id = editing.id || newId("s");
    editing = { ...body, id: editing.id, start: body.start || "", end: body.end || "",
      start_date: body.start_date || "", end_date: body.end_date || "" };
    try {
      await api(`/signage/schedules/${encodeURIComponent(id)}`, { method: "PUT", body });
      toast(t(editing.id ? "schedule_saved" : "schedule_created", { name: body.name }));
      editing = blankSchedule();
      scheduleError = null;
      await load();
    } catch (error) {
      scheduleError = refusal(error);
      render();
    }
  }

  async function deleteSchedule(s) {
    if (armedDelete !== s.id) {
      armedDelete = s.id;
      render();
      return;
    }
    armedDelete = null;
    try {
      await api(`/signage/schedules/${encodeURIComponent(s.id)}`, { method: "DELETE" });
      toast(t("schedule_deleted", { name: s.name }));
      if (editing.id === s.id) editing = blankSchedule();
      scheduleError = null;
      await load();
    } catch (error) {
      scheduleError = refusal(error);
      render();
    }
  }

  function edit(s) {
    editing = { ...blankSchedule(), ...s, start: s.start || "", end: s.end || "",
      start_date: s.start_date || "", end_date: s.end_date || "" };
    scheduleError = null;
    armedDelete = null;
    render();
    const name = root.querySelector("#schedule-form input[name=name]");
    name?.scrollIntoView({ block: "nearest" });
    name?.focus();
  }

  async function saveExtra(form) {
    const f = form.elements;
    const name = f.name.value.trim();
    let path;
    let body;
    if (extra === "group") {
      path = `/signage/groups/${newId("g")}`;
      body = { name, kinds: f.kind.value ? [f.kind.value] : [],
        areas: f.area.value ? [f.area.value] : [] };
    } else if (extra === "item") {
      path = `/signage/items/${newId("i")}`;
      body = { kind: "notice", title: name, text: f.text.value.trim() || name };
    } else {
      path = `/signage/layouts/${newId("l")}`;
      body = { name, regions: PRESETS[f.preset.value] };
    }
    try {
      const stored = await api(path, { method: "PUT", body });
      if (extra === "group") editing.group = stored.id;
      if (extra === "layout") editing.layout = stored.id;
      toast(t("saved_name", { name }));
      extra = null;
      extraError = null;
      await load();
    } catch (error) {
      extraError = refusal(error);
      render();
    }
  }

  async function load() {
    [content, screens] = await Promise.all([api("/signage"), api("/signage/screens")]);
    render();
  }

  async function push() {
    const text = draft.text.trim();
    if (!text) return;
    try {
      await api("/signage/notices", { method: "POST",
        body: { text, level: draft.level, minutes: Number(draft.minutes) } });
      draft.text = "";
      toast(t("pushed"));
      await load();
    } catch (error) {
      failed(error);
    }
  }

  async function withdraw(notice) {
    try {
      await api(`/signage/notices/${encodeURIComponent(notice.id)}`, { method: "DELETE" });
      toast(t("withdrawn"));
      await load();
    } catch (error) {
      failed(error);
    }
  }

  function duration(minutes) {
    return minutes < 60 ? t("minutes_n", { n: minutes }) : t("hours_n", { n: minutes / 60 });
  }

  function named(list, id) {
    return list.find((x) => x.id === id)?.name ?? id;
  }

  function days(s) {
    const parts = [s.weekdays.length ? weekdaysText(s.weekdays.map((d) => d - 1)) : t("every_day")];
    if (s.start_date) parts.push(t("from_date", { d: s.start_date }));
    if (s.end_date) parts.push(t("to_date", { d: s.end_date }));
    return parts.join(" ");
  }

  function render() {
    const form = el("form", { class: "panel form", id: "notice-form",
      onsubmit: (e) => { e.preventDefault(); push(); } },
      el("h3", {}, t("notices")),
      el("textarea", { name: "text", rows: 3, maxlength: 200, required: true,
        "aria-label": t("notice_text"), placeholder: t("notice_text"),
        oninput: (e) => { draft.text = e.target.value; } }),
      el("div", { class: "row" },
        el("label", { for: "notice-level" }, t("level")),
        el("select", { id: "notice-level", name: "level",
          onchange: (e) => { draft.level = e.target.value; } },
          ["urgent", "warning", "info"].map((l) => el("option",
            { value: l, selected: l === draft.level }, t(`level_${l}`))))),
      el("div", { class: "row" },
        el("label", { for: "notice-minutes" }, t("duration")),
        el("select", { id: "notice-minutes", name: "minutes",
          onchange: (e) => { draft.minutes = Number(e.target.value); } },
          DURATIONS.map((m) => el("option", { value: m, selected: m === draft.minutes }, duration(m))))),
      el("div", { class: "row" },
        el("button", { class: "primary", type: "submit", id: "push-notice" }, t("push_notice"))),
      el("ul", { class: "notice-list", id: "notices" }, content.notices.length
        ? content.notices.map((n) => el("li", { dataset: { notice: n.id, level: n.level } },
          el("span", { class: `tag ${n.level === "info" ? "" : n.level === "warning" ? "warn" : "bad"}` },
            t(`level_${n.level}`)),
          el("span", { class: "text" }, n.text),
          el("span", { class: "until" }, t("until", { time: when(n.expires_at) })),
          el("button", { type: "button", dataset: { withdraw: n.id }, onclick: () => withdraw(n) },
            t("withdraw"))))
        : el("li", { class: "muted" }, t("no_notices"))));
    form.elements.text.value = draft.text;
    const schedules = table([
      { key: "name", label: t("col_schedule"), cell: (s) => el("span", {}, el("strong", {}, s.name),
        " ", el("span", { class: "code" }, s.id)) },
      { key: "group", label: t("col_group"), cell: (s) => named(content.groups, s.group) },
      { key: "layout", label: t("col_layout"), cell: (s) => named(content.layouts, s.layout) },
      { key: "days", label: t("col_days"), cell: days },
      { key: "time", label: t("col_time"), cell: (s) => s.start || s.end
        ? `${s.start || "00:00"}–${s.end || "24:00"}` : t("whole_day") },
      { key: "priority", label: t("col_priority"), num: true, cell: (s) => s.priority },
      { key: "enabled", label: t("col_enabled"), cell: (s) => el("span",
        { class: `tag ${s.enabled ? "good" : ""}` }, t(s.enabled ? "enabled" : "disabled")) },
      { key: "actions", label: t("col_actions"), cell: (s) => el("span", { class: "actions" },
        el("button", { type: "button", dataset: { edit: s.id }, onclick: () => edit(s) }, t("edit")),
        el("button", { type: "button", class: armedDelete === s.id ? "danger" : null,
          dataset: { delete: s.id }, onclick: () => deleteSchedule(s) },
        t(armedDelete === s.id ? "confirm_delete" : "delete"))) },
    ], content.schedules, { empty: t("no_schedules"),
      rowAttrs: (s) => ({ class: s.id === editing.id ? "editing" : null,
        dataset: { schedule: s.id } }) });
    const screenTable = table([
      { key: "device", label: t("col_device"), cell: (s) => el("span", { class: "code" }, s.device) },
      { key: "kind", label: t("col_kind"), cell: (s) => t(`kind_${s.kind}`) },
      { key: "area", label: t("col_area"), cell: (s) => s.area ? ctx.areaName(s.area) : "—" },
      { key: "now", label: t("col_now"), cell: (s) => s.schedule
        ? named(content.schedules, s.schedule) : "—" },
      { key: "until", label: t("until", { time: "" }).trim(), cell: (s) => clock(s.until) },
    ], screens, { empty: t("no_screens") });
    root.replaceChildren(
      el("header", {}, el("h2", {}, t("signage_title")), el("span", { class: "spacer" }),
        el("button", { type: "button", onclick: () => load().catch(failed) }, t("refresh"))),
      el("div", { class: "columns" }, el("div", { class: "stack" }, scheduleForm(), extraForm(), form),
        el("div", { class: "stack" },
          el("section", { class: "panel" }, el("header", { class: "panel-head" },
            el("h3", {}, t("schedules")), el("span", { class: "spacer" }),
            el("button", { type: "button", id: "new-schedule", onclick: () => {
              editing = blankSchedule(); scheduleError = null; render(); } }, t("new_schedule"))),
          schedules),
          el("section", { class: "panel" }, el("h3", {}, t("screens")), screenTable))));
  }

  function invalid(field) {
    return scheduleError && scheduleError.field === field ? "true" : null;
  }

  function choice(name, list, selected, label) {
    return el("select", { name, id: `schedule-${name}`, "aria-label": label,
      "aria-invalid": invalid(name), onchange: (e) => { editing[name] = e.target.value; render(); } },
    el("option", { value: "", selected: !selected }, t("choose")),
    list.map((x) => el("option", { value: x.id, selected: x.id === selected }, x.name)));
  }

  function playlistRows() {
    const layout = content.layouts.find((l) => l.id === editing.layout);
    if (!layout) return [];
    return layout.regions.filter((r) => PLAYS[r.kind]).map((r) => {
      const items = content.items.filter((i) => PLAYS[r.kind].includes(i.kind));
      const chosen = editing.playlist?.[r.id] || [];
      return el("div", { class: "row" },
        el("label", { for: `playlist-${r.id}` }, t(`region_${r.kind}`)),
        items.length
          ? el("span", { class: "days", id: `playlist-${r.id}`, "aria-invalid": invalid("playlist") },
            items.map((i) => el("label", { class: "day" }, el("input", { type: "checkbox",
              value: i.id, dataset: { region: r.id }, checked: chosen.includes(i.id),
              onchange: (e) => { const now = editing.playlist?.[r.id] || [];
                editing.playlist = { ...editing.playlist, [r.id]: e.target.checked
                  ? [...now, i.id] : now.filter((x) => x !== i.id) }; } }),
            i.title || i.text || i.id)))
          : el("span", { class: "hint" }, t("no_items")));
    });
  }

  function extraForm() {
    if (!extra) return null;
    const areas = ctx.data?.areas || [];
    return el("form", { class: "panel form extra", id: `new-${extra}-form`,
      onsubmit: (e) => { e.preventDefault(); saveExtra(e.target); } },
    el("h3", {}, t(`new_${extra}`)),
    el("div", { class: "row" }, el("label", { for: "extra-name" }, t("col_name")),
      el("input", { id: "extra-name", name: "name", required: true, maxlength: 100 })),
    extra === "group" ? [
      el("div", { class: "row" }, el("label", { for: "extra-kind" }, t("col_kind")),
        el("select", { id: "extra-kind", name: "kind" },
          el("option", { value: "" }, t("all_screens")),
          ["window_screen", "hall_board"].map((k) => el("option", { value: k }, t(`kind_${k}`))))),
      el("div", { class: "row" }, el("label", { for: "extra-area" }, t("area")),
        el("select", { id: "extra-area", name: "area" }, el("option", { value: "" }, t("all_areas")),
          areas.map((a) => el("option", { value: a.id }, a.name))))] : null,
    extra === "item" ? el("div", { class: "row" }, el("label", { for: "extra-text" }, t("notice_text")),
      el("input", { id: "extra-text", name: "text", maxlength: 500, required: true })) : null,
    extra === "layout" ? el("div", { class: "row" }, el("label", { for: "extra-preset" }, t("preset")),
      el("select", { id: "extra-preset", name: "preset" },
        Object.keys(PRESETS).map((k) => el("option", { value: k }, t(`preset_${k}`))))) : null,
    el("p", { class: "error", id: "extra-error", role: "alert" }, extraError?.message || ""),
    el("div", { class: "row" },
      el("button", { class: "primary", type: "submit", id: "extra-save" }, t("save")),
      el("button", { type: "button", onclick: () => { extra = null; extraError = null; render(); } },
        t("cancel"))));
  }

  function scheduleForm() {
    const e = editing;
    const form = el("form", { class: "panel form", id: "schedule-form",
      dataset: { editing: e.id || "" }, onsubmit: (ev) => { ev.preventDefault(); saveSchedule(ev.target); } },
    el("h3", {}, e.id ? t("edit_schedule", { name: e.name }) : t("new_schedule")),
    el("div", { class: "row" }, el("label", { for: "schedule-name" }, t("col_name")),
      el("input", { id: "schedule-name", name: "name", maxlength: 100, value: e.name,
        placeholder: t("schedule_name_hint"), oninput: (ev) => { editing.name = ev.target.value; } })),
    el("div", { class: "row" }, el("label", { for: "schedule-group" }, t("col_group")),
      choice("group", content.groups, e.group, t("col_group")),
      el("button", { type: "button", class: "link", id: "add-group",
        onclick: () => { extra = "group"; extraError = null; render(); } }, t("add_new"))),
    el("div", { class: "row" }, el("label", { for: "schedule-layout" }, t("col_layout")),
      choice("layout", content.layouts, e.layout, t("col_layout")),
      el("button", { type: "button", class: "link", id: "add-layout",
        onclick: () => { extra = "layout"; extraError = null; render(); } }, t("add_new"))),
    playlistRows(),
    el("div", { class: "row" }, el("label", {}, t("weekdays_label")),
      el("span", { class: "days", "aria-invalid": invalid("weekdays") }, WEEKDAYS.map((d) =>
        el("label", { class: "day" }, el("input", { type: "checkbox", name: `wd-${d}`,
          checked: e.weekdays.includes(d), onchange: (ev) => { editing.weekdays = ev.target.checked
            ? [...editing.weekdays, d].sort() : editing.weekdays.filter((x) => x !== d); } }),
        t(`wd${d - 1}`))))),
    el("div", { class: "row" }, el("label", { for: "schedule-start" }, t("col_time")),
      el("input", { type: "time", id: "schedule-start", name: "start", value: e.start,
        "aria-invalid": invalid("start"), oninput: (ev) => { editing.start = ev.target.value; } }),
      "–",
      el("input", { type: "time", id: "schedule-end", name: "end", value: e.end,
        "aria-invalid": invalid("end"), oninput: (ev) => { editing.end = ev.target.value; } }),
      el("span", { class: "hint" }, t("time_hint"))),
    el("div", { class: "row" }, el("label", { for: "schedule-start-date" }, t("date_range")),
      el("input", { type: "date", id: "schedule-start-date", name: "start_date", value: e.start_date,
        oninput: (ev) => { editing.start_date = ev.target.value; } }),
      "–",
      el("input", { type: "date", id: "schedule-end-date", name: "end_date", value: e.end_date,
        "aria-invalid": invalid("end_date"), oninput: (ev) => { editing.end_date = ev.target.value; } })),
    el("div", { class: "row" }, el("label", { for: "schedule-priority" }, t("col_priority")),
      el("input", { type: "number", id: "schedule-priority", name: "priority", min: -1000, max: 1000,
        step: 1, value: e.priority, class: "short",
        oninput: (ev) => { editing.priority = ev.target.value; } }),
      el("label", { class: "day" }, el("input", { type: "checkbox", name: "enabled", id: "schedule-enabled",
        checked: e.enabled, onchange: (ev) => { editing.enabled = ev.target.checked; } }), t("enabled"))),
    el("p", { class: "error", id: "schedule-error", role: "alert" }, scheduleError?.message || ""),
    el("div", { class: "row" },
      el("button", { class: "primary", type: "submit", id: "save-schedule" },
        t(e.id ? "save_schedule" : "create_schedule")),
      e.id ? el("button", { type: "button", id: "cancel-edit", onclick: () => {
        editing = blankSchedule(); scheduleError = null; render(); } }, t("cancel")) : null,
      el("span", { class: "spacer" }),
      el("button", { type: "button", class: "link", id: "add-item",
        onclick: () => { extra = "item"; extraError = null; render(); } }, t("new_item"))));
    return form;
  }

  return {
    async show() { await load(); },
    relabel() { render(); },
  };
}
