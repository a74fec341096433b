// @ts-check
/**
 * Attention while the tab is in the background: the unread total in the title,
 * desktop notifications for messages and calls, and the connection-lost banner.
 */
import { h } from './dom.js';

/** @typedef {import('../controller.js').Controller} Controller */

const BASE_TITLE = 'Quick Meet';

export function canAskNotifications() {
  return 'Notification' in window && Notification.permission === 'default';
}

export function askNotifications() {
  if (canAskNotifications()) Notification.requestPermission().catch(() => {});
}

/**
 * @param {string} title @param {string} body @param {string} tag @param {() => void} onClick
 */
function notify(title, body, tag, onClick) {
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  try {
    const n = new Notification(title, { body, tag });
    n.onclick = () => {
      window.focus();
      onClick();
      n.close();
    };
  } catch {
    /* some browsers only allow notifications from a service worker */
  }
}

/** @param {HTMLElement} banner @param {Controller} ctrl */
export function mountNotify(banner, ctrl) {
  const { store } = ctrl;

  const updateTitle = () => {
    const n = store.totalUnread();
    document.title = document.hidden && n > 0 ? `(${n > 99 ? '99+' : n}) ${BASE_TITLE}` : BASE_TITLE;
  };
  store.on('list', updateTitle);
  document.addEventListener('visibilitychange', updateTitle);

  ctrl.on('incoming', ({ key, message }) => {
    if (!document.hidden && store.activeKey === key) return;
    if (!document.hidden) return; // the sidebar badge is enough while the tab is in front
    const c = store.conv(key);
    const who = store.name(message.from);
    const title = c.kind === 'group' ? `${who} in ${store.title(c)}` : who;
    const body = message.kind === 'file' && message.file ? '📎 ' + message.file.originalName : message.content.slice(0, 200);
    notify(title, body, key, () => ctrl.open(key));
  });

  ctrl.calls.on('incoming', (c) => {
    if (document.hidden) notify(store.name(c.peerId), c.callType === 'video' ? 'Incoming video call' : 'Incoming audio call', 'call', () => {});
  });

  // Connection banner, with a countdown and "retry now" while waiting.
  const text = h('span');
  const retry = h('button', { class: 'link', text: 'Retry now', attrs: { type: 'button' }, on: { click: () => ctrl.reconnectNow() } });
  banner.replaceChildren(text, retry);
  /** @type {ReturnType<typeof setInterval>|undefined} */
  let countdown;
  const render = () => {
    const s = store.connection;
    clearInterval(countdown);
    const lost = s.state === 'waiting' || ((s.state === 'connecting' || s.state === 'authenticating') && s.attempt > 0);
    banner.hidden = !lost;
    document.body.classList.toggle('offline', lost);
    if (!lost) return;
    retry.hidden = s.state !== 'waiting';
    const paint = () => {
      const secs = s.retryAt ? Math.max(0, Math.ceil((s.retryAt - Date.now()) / 1000)) : 0;
      text.textContent = s.state === 'waiting' ? `Connection lost. Reconnecting in ${secs}s…` : 'Connection lost. Reconnecting…';
    };
    paint();
    if (s.state === 'waiting') countdown = setInterval(paint, 1000);
  };
  store.on('connection', render);
  render();
}
