// @ts-check
/**
 * Entry point and owner of the page: restores the session from localStorage (or
 * shows login/signup), then builds the shell and mounts the UI modules around
 * one Controller. Logout calls the server, forgets the token and reloads.
 */
import { Rest } from './protocol.js';
import { Controller } from './controller.js';
import { h, toast } from './ui/dom.js';
import { renderAuth } from './ui/auth.js';
import { mountSidebar } from './ui/sidebar.js';
import { mountChat } from './ui/chat.js';
import { mountCallView } from './ui/call-view.js';
import { mountGroupCallView } from './ui/group-call-view.js';
import { mountNotify, askNotifications, canAskNotifications } from './ui/notify.js';
import { unlockAudio } from './ui/ringtone.js';
import { releaseAll } from './ui/attachments.js';

/** @typedef {import('./types.js').User} User */

const TOKEN_KEY = 'qm.token';
const root = /** @type {HTMLElement} */ (document.getElementById('app'));

/** @param {unknown} err */
const msg = (err) => (err instanceof Error ? err.message : String(err));

async function boot() {
  const token = localStorage.getItem(TOKEN_KEY);
  if (!token) {
    showLogin();
    return;
  }
  try {
    const user = await new Rest(() => token).me();
    startSession(token, user);
  } catch (err) {
    if (err && typeof err === 'object' && 'status' in err && err.status === 401) {
      localStorage.removeItem(TOKEN_KEY);
      showLogin();
    } else {
      showUnreachable(msg(err));
    }
  }
}

/** @param {string} reason */
function showUnreachable(reason) {
  const retry = h('button', { class: 'primary', text: 'Try again', attrs: { type: 'button' }, on: { click: () => boot() } });
  root.replaceChildren(h('div', { class: 'auth-page' }, [h('div', { class: 'auth-card' }, [h('h1', { text: 'Quick Meet' }), h('p', { text: reason }), retry])]));
  retry.focus();
}

function showLogin() {
  document.body.className = 'signed-out';
  const rest = new Rest(() => null);
  renderAuth(root, async (f) => {
    const res = f.mode === 'login' ? await rest.login(f.username, f.password) : await rest.signup(f.username, f.password, f.displayName || undefined);
    localStorage.setItem(TOKEN_KEY, res.token);
    startSession(res.token, res.user);
  });
}

/** @param {string} token @param {User} user */
function startSession(token, user) {
  document.body.className = 'signed-in';
  const ctrl = new Controller({ token, user, storage: localStorage, wsUrl: `wss://${location.host}/ws` });

  const sidebar = h('aside', { class: 'sidebar', attrs: { 'aria-label': 'Conversations' } });
  const chat = h('main', { class: 'chat', attrs: { id: 'main' } });
  const banner = h('div', { class: 'banner', attrs: { role: 'status' } });
  const callLayer = h('div', { class: 'call-layer' });
  const groupCallLayer = h('div', { class: 'call-layer' });
  root.replaceChildren(banner, h('div', { class: 'shell' }, [sidebar, chat]), callLayer, groupCallLayer);

  let ending = false;
  /** @param {boolean} tellServer */
  const endSession = async (tellServer) => {
    if (ending) return;
    ending = true;
    if (tellServer) await ctrl.logout();
    else ctrl.stop();
    localStorage.removeItem(TOKEN_KEY);
    releaseAll();
    location.reload();
  };

  mountSidebar(sidebar, ctrl, {
    onLogout: () => endSession(true),
    onEnableNotifications: askNotifications,
    canNotify: canAskNotifications,
  });
  mountChat(chat, ctrl, {
    onBack: () => ctrl.open(null),
    startCall: (peerId, type) => ctrl.calls.start(peerId, type).catch((e) => toast(msg(e), 'error')),
    joinGroupCall: (groupId) => ctrl.groupCalls.join(groupId, { video: true }).catch((e) => toast(msg(e), 'error')),
  });
  mountCallView(callLayer, ctrl, { onIncoming: () => {} });
  mountGroupCallView(groupCallLayer, ctrl);
  mountNotify(banner, ctrl);

  ctrl.on('logged-out', () => endSession(false));
  ctrl.on('problem', ({ message }) => toast(message, 'error'));
  ctrl.store.on('active', (key) => document.body.classList.toggle('show-chat', !!key));

  ctrl.setVisible(!document.hidden);
  document.addEventListener('visibilitychange', () => ctrl.setVisible(!document.hidden));
  window.addEventListener('online', () => ctrl.reconnectNow());
  const unlock = () => {
    unlockAudio();
    window.removeEventListener('pointerdown', unlock);
    window.removeEventListener('keydown', unlock);
  };
  window.addEventListener('pointerdown', unlock);
  window.addEventListener('keydown', unlock);
  window.addEventListener('beforeunload', (e) => {
    if (ctrl.calls.active || ctrl.groupCalls.active) e.preventDefault();
  });

  ctrl.start();
}

boot();
