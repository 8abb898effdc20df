// Calls spoken through the browser's speech synthesis (D13): Mandarin first, then each
// further language the board is set to. One utterance at a time, in order: a burst of
// calls is read out one after the other, never over each other.
//
// A screen without voices (headless Chromium, a kiosk PC with no speech pack) may never
// fire `end` for an utterance, so each one also has a deadline after which the next
// starts; the board works the same with or without sound.

const MAX_PENDING = 8;

function windowNumber(name) {
  const match = /^(\d+)号窗口(.*)$/.exec(name || "");
  return match ? `${match[1]}${match[2] ? ` ${match[2]}` : ""}` : name;
}

export function callText(lang, number, windowName) {
  if (lang.startsWith("en")) return `Number ${number}, please go to window ${windowNumber(windowName)}`;
  return `请${number}号到${windowName}办理`;
}

export function createAnnouncer({ languages = ["zh-CN"], rate = 0.9 } = {}) {
  const synth = typeof window !== "undefined" ? window.speechSynthesis : undefined;
  const pending = [];
  const spoken = [];
  let busy = false;

  function next() {
    busy = false;
    const item = pending.shift();
    if (item) say(item);
  }

  function say({ text, lang }) {
    busy = true;
    spoken.push({ text, lang });
    if (!synth || typeof SpeechSynthesisUtterance === "undefined") {
      setTimeout(next, 0);
      return;
    }
    const utterance = new SpeechSynthesisUtterance(text);
    utterance.lang = lang;
    utterance.rate = rate;
    const voice = (synth.getVoices?.() || []).find((v) => v.lang === lang)
      || (synth.getVoices?.() || []).find((v) => v.lang.startsWith(lang.slice(0, 2)));
    if (voice) utterance.voice = voice;
    let done = false;
    const finish = () => { if (!done) { done = true; clearTimeout(deadline); next(); } };
    const deadline = setTimeout(finish, 1500 + text.length * 350);
    utterance.onend = finish;
    utterance.onerror = finish;
    try {
      synth.speak(utterance);
    } catch {
      finish();
    }
  }

  return {
    languages,
    spoken,
    // A call (or a recall: the same words again) in every language, queued.
    announce(number, windowName) {
      for (const lang of languages) {
        if (pending.length >= MAX_PENDING) pending.shift();
        pending.push({ text: callText(lang, number, windowName), lang });
      }
      if (!busy) next();
    },
  };
}
