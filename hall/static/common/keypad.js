// An on-screen keypad for touch screens without a keyboard (kiosk, touch query):
// digits for phone numbers and passwords, digits and X for ID numbers, and the
// appointment-code alphabet (no I, O, 0, 1) for codes, and every letter, digit and -
// for case numbers. The keypad keeps the value and
// tells the page on every key.

import { register, t } from "./i18n.js";

register({
  zh: { keypad_back: "删除", keypad_clear: "清空" },
  en: { keypad_back: "Delete", keypad_clear: "Clear" },
});

const LAYOUTS = {
  digits: ["1", "2", "3", "4", "5", "6", "7", "8", "9", "clear", "0", "back"],
  id: ["1", "2", "3", "4", "5", "6", "7", "8", "9", "X", "0", "back"],
  code: [..."ABCDEFGHJKLMNPQRSTUVWXYZ23456789", "clear", "back"],
  alnum: [..."1234567890ABCDEFGHIJKLMNOPQRSTUVWXYZ-", "clear", "back"],
};

export function keypad({ layout = "digits", max = 32, value = "", onChange = () => {} } = {}) {
  let current = value;
  const element = document.createElement("div");
  element.className = `keypad keypad-${layout}`;
  for (const key of LAYOUTS[layout]) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.key = key;
    button.className = key.length > 1 ? `key key-${key}` : "key";
    button.textContent = key === "back" ? t("keypad_back") : key === "clear" ? t("keypad_clear") : key;
    button.addEventListener("click", () => {
      if (key === "back") current = current.slice(0, -1);
      else if (key === "clear") current = "";
      else if (current.length < max) current += key;
      onChange(current);
    });
    element.append(button);
  }
  return {
    element,
    get value() { return current; },
    set value(text) { current = text; onChange(current); },
  };
}
