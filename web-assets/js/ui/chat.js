// @ts-check
/**
 * The chat pane: header with presence and call buttons, the message history
 * (older pages load on scroll-up, day separators, bubbles, ticks, pending and
 * failed sends), the typing line and the composer.
 */
import { h, avatar, batched, iconButton, reconcile } from './dom.js';
import { icon } from './icons.js';
import { dayKey, dayLabel, lastSeenText } from './format.js';
import { renderMessage, renderPending, tickState, updateTicks } from './message.js';
import { mountComposer } from './composer.js';
import { openGroupInfo } from './groups.js';

/** @typedef {import('../controller.js').Controller} Controller */

/**
 * @param {HTMLElement} root
 * @param {Controller} ctrl
 * @param {{onBack: () => void, startCall: (peerId: string, type: 'audio'|'video') => void, joinGroupCall: (groupId: string) => void}} hooks
 */
export function mountChat(root, ctrl, hooks) {
  const { store } = ctrl;
  const back = iconButton(icon('back'), 'Back to conversations', hooks.onBack, 'back');
  const headAvatar = h('span', { class: 'avatar-wrap' });
  const title = h('h2', { class: 'chat-title' });
  const status = h('p', { class: 'chat-status', attrs: { 'aria-live': 'polite' } });
  const actions = h('div', { class: 'chat-actions' });
  const head = h('header', { class: 'chat-head' }, [back, headAvatar, h('div', { class: 'chat-head-text' }, [title, status]), actions]);
  const list = h('div', { class: 'msg-list' });
  const scroller = h('div', { class: 'messages', attrs: { role: 'log', 'aria-label': 'Messages', tabindex: '0' } }, [list]);
  const typingLine = h('p', { class: 'typing-line', attrs: { 'aria-live': 'polite' } });
  const composerBox = h('div', { class: 'composer' });
  const placeholder = h('div', { class: 'chat-empty' }, [
    h('span', { class: 'brand-mark big', text: 'QM', attrs: { 'aria-hidden': 'true' } }),
    h('p', { text: 'Pick a conversation, or search for someone to start one.' }),
  ]);
  const pane = h('div', { class: 'chat-pane' }, [head, scroller, typingLine, composerBox]);
  root.replaceChildren(placeholder, pane);
  const composer = mountComposer(composerBox, pane, ctrl);

  /** @type {string|null} */
  let key = null;
  /** element cache for the open conversation: item key → element and what it shows */
  /** @type {Map<string, {el: HTMLElement, sig: string, tick?: string}>} */
  let cache = new Map();
  let stick = true; // follow new messages while the view is at the bottom
  let firstId = '';

  let headSig = '';
  const renderHead = () => {
    if (!key) return;
    const c = store.conv(key);
    const name = store.title(c);
    const typers = store.typers(key);
    const inCall = ctrl.calls.active || ctrl.groupCalls.active;
    const u = store.users.get(c.id);
    const sig = JSON.stringify([key, name, typers, inCall, store.online.has(c.id), u?.lastSeen, store.groups.get(c.id)?.members.length, ctrl.groupCalls.groupId]);
    if (sig === headSig) return; // rebuilding buttons would steal focus
    headSig = sig;
    title.textContent = name;
    if (c.kind === 'dm') {
      const online = store.online.has(c.id);
      headAvatar.replaceChildren(avatar(name, u?.avatarColor), online ? h('span', { class: 'dot' }) : '');
      status.textContent = typers.length ? 'typing…' : online ? 'online' : lastSeenText(u ? u.lastSeen : null);
      actions.replaceChildren(
        iconButton(icon('phone'), 'Audio call', () => hooks.startCall(c.id, 'audio')),
        iconButton(icon('video'), 'Video call', () => hooks.startCall(c.id, 'video')),
      );
    } else {
      const g = store.groups.get(c.id);
      headAvatar.replaceChildren(avatar(name, undefined, 'group'));
      status.textContent = typers.length
        ? typers.map((id) => store.name(id)).join(', ') + (typers.length > 1 ? ' are typing…' : ' is typing…')
        : `${g ? g.members.length : 0} members`;
      const here = ctrl.groupCalls.groupId === c.id;
      const join = h('button', { class: 'pill', attrs: { type: 'button' } }, [icon('video'), here ? 'In call' : 'Join call']);
      join.disabled = inCall;
      join.addEventListener('click', () => hooks.joinGroupCall(c.id));
      actions.replaceChildren(join, iconButton(icon('users'), 'Members', () => openGroupInfo(ctrl, c.id)));
    }
    for (const b of actions.querySelectorAll('.icon-btn')) {
      if (c.kind === 'dm') /** @type {HTMLButtonElement} */ (b).disabled = inCall;
    }
  };

  const renderTyping = () => {
    if (!key) return;
    const typers = store.typers(key);
    typingLine.textContent = typers.length
      ? (store.conv(key).kind === 'group' ? typers.map((id) => store.name(id)).join(', ') + ' ' : '') + 'typing…'
      : '';
    renderHead();
  };

  const renderMessages = () => {
    if (!key) return;
    const c = store.conv(key);
    const prevHeight = scroller.scrollHeight;
    const prevTop = scroller.scrollTop;
    const oldFirst = firstId;
    /** @type {HTMLElement[]} */
    const items = [];
    /** @type {Map<string, {el: HTMLElement, sig: string, tick?: string}>} */
    const next = new Map();
    /** @param {string} k @param {string} sig @param {() => HTMLElement} make */
    const take = (k, sig, make) => {
      let e = cache.get(k);
      if (!e || e.sig !== sig) e = { el: make(), sig };
      next.set(k, e);
      items.push(e.el);
      return e;
    };
    if (c.hasMore && c.loaded) take('older', '', () => h('p', { class: 'older', text: 'Loading earlier messages…' }));
    if (c.loaded && !c.hasMore && c.messages.length) take('start', '', () => h('p', { class: 'older', text: 'This is the beginning of the conversation.' }));
    let day = '';
    const group = c.kind === 'group';
    const me = store.me ? store.me.id : '';
    for (const m of c.messages) {
      const d = dayKey(m.createdAt);
      if (d !== day) {
        day = d;
        take('d:' + d, dayLabel(m.createdAt), () => h('div', { class: 'day-sep', attrs: { role: 'separator' } }, [h('span', { text: dayLabel(m.createdAt) })]));
      }
      const e = take('m:' + m.id, m.content, () => renderMessage(ctrl, m, { showSender: group }));
      if (m.from === me) {
        const t = tickState(ctrl, m);
        if (e.tick && e.tick !== t) updateTicks(ctrl, e.el, m);
        e.tick = t;
      }
    }
    for (const p of store.pendingFor(key)) {
      take('p:' + p.clientId, p.status + (p.error || ''), () => renderPending(ctrl, p));
    }
    cache = next;
    reconcile(list, items);
    firstId = c.messages[0] ? c.messages[0].id : '';
    if (oldFirst && firstId !== oldFirst && !stick) {
      scroller.scrollTop = prevTop + (scroller.scrollHeight - prevHeight); // keep the reader's place
    } else if (stick) {
      scroller.scrollTop = scroller.scrollHeight;
    }
    // A short history does not scroll, so nothing would ever ask for more.
    if (c.loaded && c.hasMore && scroller.scrollHeight <= scroller.clientHeight + 40) ctrl.loadOlder(key);
  };

  const renderAll = () => {
    pane.hidden = !key;
    placeholder.hidden = !!key;
    if (!key) return;
    renderHead();
    renderTyping();
    renderMessages();
  };

  const messagesSoon = batched(renderMessages);
  const headSoon = batched(renderHead);

  scroller.addEventListener('scroll', () => {
    stick = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
    if (key && scroller.scrollTop < 150) ctrl.loadOlder(key);
  });
  // Images and players change height as they load: stay at the bottom if we were.
  new ResizeObserver(() => {
    if (stick) scroller.scrollTop = scroller.scrollHeight;
  }).observe(list);

  store.on('active', (k) => {
    key = k;
    cache = new Map();
    firstId = '';
    stick = true;
    list.replaceChildren();
    composer.setKey(k);
    renderAll();
    if (k) composer.focus();
  });
  store.on('messages', (k) => {
    if (k !== key) return;
    // My own new message always scrolls into view.
    const pending = store.pendingFor(k).length;
    if (pending) stick = true;
    messagesSoon();
  });
  store.on('typing', (k) => k === key && renderTyping());
  store.on('list', () => {
    headSoon();
    messagesSoon(); // presence changes turn "sent" ticks into "delivered"
  });
  store.on('groups', headSoon);
  ctrl.calls.on('change', headSoon);
  ctrl.groupCalls.on('change', headSoon);
  setInterval(() => key && renderTyping(), 3000);
  renderAll();
}
