// Chinese by default with an English switch. A page registers its own strings and marks
// elements with data-i18n="key"; `t(key, params)` is for text built in code.

const STORAGE = "smarthall.language";
const strings = { zh: {}, en: {} };
const listeners = [];

export function register(table) {
  for (const lang of Object.keys(strings)) Object.assign(strings[lang], table[lang] || {});
}

export function language() {
  const stored = localStorage.getItem(STORAGE);
  return stored === "en" ? "en" : "zh";
}

export function setLanguage(lang) {
  localStorage.setItem(STORAGE, lang === "en" ? "en" : "zh");
  apply();
  for (const listener of listeners) listener(language());
}

export function onLanguage(listener) {
  listeners.push(listener);
}

export function t(key, params = {}) {
  const text = strings[language()][key] ?? strings.zh[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in params ? String(params[name]) : `{${name}}`));
}

export function apply(root = document) {
  document.documentElement.lang = language() === "en" ? "en" : "zh-CN";
  for (const element of root.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  for (const element of root.querySelectorAll("[data-i18n-placeholder]")) {
    element.placeholder = t(element.dataset.i18nPlaceholder);
  }
}

// A button that flips between 中文 and English.
export function languageSwitch(button) {
  const label = () => { button.textContent = language() === "en" ? "中文" : "English"; };
  label();
  button.addEventListener("click", () => { setLanguage(language() === "en" ? "zh" : "en"); label(); });
}

register({
  zh: { offline: "连接中断，正在重连…", online: "已连接" },
  en: { offline: "Connection lost, reconnecting…", online: "Connected" },
});
