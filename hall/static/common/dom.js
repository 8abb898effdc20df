// Building elements, and redrawing a live view without losing what the user is doing.
// Every page's own helpers build on these two.

// An element's listeners, by event type. Each element listens through `dispatch`, so
// `redraw` can keep an element that looks the same and hand it the new listeners.
const listeners = new WeakMap();

function dispatch(event) {
  return listeners.get(event.currentTarget)?.[event.type]?.call(event.currentTarget, event);
}

// Listens as addEventListener does, through the table `redraw` hands over.
export function on(node, type, listener) {
  listeners.set(node, { ...listeners.get(node), [type]: listener });
  node.addEventListener(type, dispatch);
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) on(node, key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  node.append(...nodes(children));
  return node;
}

// Children as given to el and redraw: nested one level, nulls and false left out, the
// rest made text.
function nodes(children) {
  return children.flat().filter((c) => c !== null && c !== undefined && c !== false)
    .map((c) => (c instanceof Node ? c : document.createTextNode(String(c))));
}

// Puts `children` in `root` as replaceChildren would, but keeps every element that would
// look the same (tag and attributes), changing only what differs inside it. A live view
// redraws whenever the hall changes; a manager's click that lands mid-redraw must still
// reach its button (a button swapped between mouse down and mouse up gets no click), and
// a field being typed in keeps its text and focus.
export function redraw(root, ...children) {
  patch(root, nodes(children));
}

function patch(parent, fresh) {
  const old = [...parent.childNodes];
  if (old.length !== fresh.length) { parent.replaceChildren(...fresh); return; }
  fresh.forEach((node, i) => {
    const kept = old[i];
    if (kept.nodeType === Node.TEXT_NODE && node.nodeType === Node.TEXT_NODE) {
      if (kept.data !== node.data) kept.data = node.data;
    } else if (kept instanceof Element && node instanceof Element && sameShell(kept, node)) {
      const handed = listeners.get(node);
      if (handed) {
        listeners.set(kept, handed);
        for (const type of Object.keys(handed)) kept.addEventListener(type, dispatch);
      } else {
        listeners.delete(kept);
      }
      patch(kept, [...node.childNodes]);
    } else {
      parent.replaceChild(node, kept);
    }
  });
}

function sameShell(a, b) {
  if (a.tagName !== b.tagName || a.attributes.length !== b.attributes.length) return false;
  for (const { name, value } of b.attributes) if (a.getAttribute(name) !== value) return false;
  return true;
}
