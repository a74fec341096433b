// @ts-check
/**
 * DOM helpers for every UI module: elements are built with createElement and
 * text with textContent, never from HTML strings, so user content cannot inject
 * markup.
 */

/**
 * @typedef {object} Props
 * @property {string} [class]
 * @property {string} [text]
 * @property {Record<string, string>} [attrs]   plain attributes (aria-*, type, …)
 * @property {Record<string, string>} [data]    data-* attributes
 * @property {Record<string, (e: any) => void>} [on]
 */

/**
 * Create an element.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Props} [props]
 * @param {(Node|string|null|undefined|false)[]} [children]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, props = {}, children = []) {
  const el = document.createElement(tag);
  if (props.class) el.className = props.class;
  if (props.text !== undefined) el.textContent = props.text;
  if (props.attrs) for (const [k, v] of Object.entries(props.attrs)) el.setAttribute(k, v);
  if (props.data) for (const [k, v] of Object.entries(props.data)) el.dataset[k] = v;
  if (props.on) for (const [k, fn] of Object.entries(props.on)) el.addEventListener(k, fn);
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return el;
}

/** Remove every child. @param {Element} el */
export function clear(el) {
  el.replaceChildren();
}

/**
 * A button with an icon and an accessible label.
 * @param {Node} icon @param {string} label @param {(e: MouseEvent) => void} onClick @param {string} [cls]
 */
export function iconButton(icon, label, onClick, cls = '') {
  return h('button', { class: 'icon-btn ' + cls, attrs: { type: 'button', 'aria-label': label, title: label }, on: { click: onClick } }, [icon]);
}

/**
 * Put `items` into `parent` in order, moving only what is out of place, so
 * playing media and scroll anchors survive re-renders.
 * @param {Element} parent @param {Element[]} items
 */
export function reconcile(parent, items) {
  let cursor = parent.firstElementChild;
  for (const el of items) {
    if (el === cursor) {
      cursor = cursor.nextElementSibling;
    } else {
      parent.insertBefore(el, cursor);
    }
  }
  while (cursor) {
    const next = cursor.nextElementSibling;
    cursor.remove();
    cursor = next;
  }
}

/** Schedule `fn` once per animation frame however often it is asked. @param {() => void} fn */
export function batched(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      fn();
    });
  };
}

/**
 * A round avatar with initials on the user's colour (set through CSSOM, which
 * the CSP allows, unlike style attributes).
 * @param {string} name @param {string} [color] @param {string} [cls]
 */
export function avatar(name, color, cls = '') {
  const el = h('span', { class: 'avatar ' + cls, text: initials(name), attrs: { 'aria-hidden': 'true' } });
  if (color && /^#[0-9a-fA-F]{3,8}$/.test(color)) el.style.setProperty('--avatar', color);
  return el;
}

/** @param {string} name */
export function initials(name) {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  const first = parts[0] ? [...parts[0]][0] : '?';
  const second = parts.length > 1 ? [...parts[parts.length - 1]][0] : '';
  return (first + (second || '')).toUpperCase();
}

/** Show a short message at the bottom of the screen. @param {string} message @param {'info'|'error'} [kind] */
export function toast(message, kind = 'info') {
  let host = document.getElementById('toasts');
  if (!host) {
    host = h('div', { attrs: { id: 'toasts', role: 'status', 'aria-live': 'polite' } });
    document.body.append(host);
  }
  const t = h('div', { class: 'toast ' + kind, text: message });
  host.append(t);
  setTimeout(() => t.remove(), 5000);
}
