// @ts-check
/**
 * The sidebar: who I am, one conversation list (DMs and groups) newest first with
 * previews, unread badges and online dots, and user search that opens a DM.
 */
import { h, avatar, batched, iconButton, reconcile, clear } from './dom.js';
import { icon } from './icons.js';
import { shortWhen } from './format.js';
import { openCreateGroup, openBrowseGroups } from './groups.js';

/** @typedef {import('../controller.js').Controller} Controller */
/** @typedef {import('../store.js').Conversation} Conversation */
/** @typedef {import('../types.js').User} User */

/**
 * @param {HTMLElement} root
 * @param {Controller} ctrl
 * @param {{onLogout: () => void, onEnableNotifications: () => void, canNotify: () => boolean}} hooks
 */
export function mountSidebar(root, ctrl, hooks) {
  const { store } = ctrl;
  const meBox = h('div', { class: 'me' });
  const bell = iconButton(icon('bell'), 'Enable desktop notifications', () => {
    hooks.onEnableNotifications();
    bell.hidden = !hooks.canNotify();
  });
  bell.hidden = !hooks.canNotify();
  const head = h('header', { class: 'side-head' }, [
    meBox,
    h('div', { class: 'side-actions' }, [
      bell,
      iconButton(icon('plus'), 'New group', () => openCreateGroup(ctrl)),
      iconButton(icon('users'), 'Browse groups', () => openBrowseGroups(ctrl)),
      iconButton(icon('logout'), 'Log out', hooks.onLogout),
    ]),
  ]);
  const search = h('input', {
    class: 'search',
    attrs: { type: 'search', placeholder: 'Search people', 'aria-label': 'Search people', autocomplete: 'off' },
  });
  const list = h('ul', { class: 'conv-list', attrs: { 'aria-label': 'Conversations' } });
  const results = h('ul', { class: 'conv-list', attrs: { 'aria-label': 'Search results' } });
  results.hidden = true;
  const empty = h('p', { class: 'empty', text: 'No conversations yet. Search for someone to start one.' });
  root.replaceChildren(head, h('div', { class: 'search-box' }, [icon('search'), search]), list, empty, results);

  const renderMe = () => {
    const me = store.me;
    if (!me) return;
    meBox.replaceChildren(avatar(me.displayName || me.username, me.avatarColor), h('div', { class: 'me-text' }, [
      h('strong', { text: me.displayName || me.username, attrs: { title: me.displayName || me.username } }),
      h('small', { text: '@' + me.username }),
    ]));
  };

  /** @type {Map<string, {li: HTMLLIElement, sig: string}>} */
  const rows = new Map();

  /** @param {Conversation} c */
  const preview = (c) => {
    const typers = store.typers(c.key);
    if (typers.length) return { who: '', text: c.kind === 'group' ? `${store.name(typers[0])} is typing…` : 'typing…', typing: true, file: false };
    const m = store.lastMessage(c);
    if (!m) return { who: '', text: c.kind === 'group' ? 'No messages yet' : '', typing: false, file: false };
    const file = m.kind === 'file' && !!m.file;
    const who = store.me && m.from === store.me.id ? 'You: ' : c.kind === 'group' ? store.name(m.from) + ': ' : '';
    // A paperclip icon rather than an emoji, which not every system has a font for.
    return { who, text: m.content.replace(/\s+/g, ' ').slice(0, 120), typing: false, file };
  };

  /** @param {Conversation} c */
  const row = (c) => {
    const title = store.title(c);
    const user = c.kind === 'dm' ? store.users.get(c.id) : undefined;
    const online = c.kind === 'dm' && store.online.has(c.id);
    const p = preview(c);
    const last = store.lastMessage(c);
    const active = store.activeKey === c.key;
    const sig = JSON.stringify([title, user?.avatarColor, online, p, last?.createdAt, c.unread, active]);
    const old = rows.get(c.key);
    if (old && old.sig === sig) return old.li;
    const av = avatar(title, user?.avatarColor, c.kind === 'group' ? 'group' : '');
    const li = h('li', {}, [
      h('button', {
        class: 'conv' + (active ? ' active' : '') + (c.unread ? ' unread' : ''),
        attrs: { type: 'button', 'aria-current': active ? 'true' : 'false' },
        on: { click: () => ctrl.open(c.key) },
      }, [
        h('span', { class: 'avatar-wrap' }, [av, online ? h('span', { class: 'dot', attrs: { 'aria-label': 'online' } }) : null]),
        h('span', { class: 'conv-main' }, [
          h('span', { class: 'conv-top' }, [
            h('span', { class: 'conv-title', text: title }),
            last ? h('time', { class: 'conv-time', text: shortWhen(last.createdAt), attrs: { datetime: last.createdAt } }) : null,
          ]),
          h('span', { class: 'conv-bottom' }, [
            h('span', { class: 'conv-preview' + (p.typing ? ' typing' : '') }, [p.who, p.file ? icon('attach') : null, p.text]),
            c.unread ? h('span', { class: 'badge', text: c.unread > 99 ? '99+' : String(c.unread), attrs: { 'aria-label': `${c.unread} unread` } }) : null,
          ]),
        ]),
      ]),
    ]);
    rows.set(c.key, { li, sig });
    return li;
  };

  const renderList = batched(() => {
    const convs = store.conversationList();
    reconcile(list, convs.map(row));
    empty.hidden = convs.length > 0 || !results.hidden;
  });

  /** @type {ReturnType<typeof setTimeout>|undefined} */
  let debounce;
  let seq = 0;
  const runSearch = async () => {
    const q = search.value.trim();
    const mine = ++seq;
    if (!q) {
      results.hidden = true;
      list.hidden = false;
      renderList();
      return;
    }
    let users;
    try {
      users = await ctrl.searchUsers(q.slice(0, 64));
    } catch (err) {
      users = /** @type {User[]} */ ([]);
    }
    if (mine !== seq) return;
    clear(results);
    const me = store.me ? store.me.id : '';
    const found = users.filter((u) => u.id !== me);
    if (!found.length) results.append(h('li', { class: 'empty', text: 'Nobody matches.' }));
    for (const u of found) {
      const online = store.online.has(u.id);
      results.append(h('li', {}, [
        h('button', {
          class: 'conv',
          attrs: { type: 'button' },
          on: {
            click: () => {
              search.value = '';
              runSearch();
              ctrl.open('u:' + u.id);
            },
          },
        }, [
          h('span', { class: 'avatar-wrap' }, [avatar(u.displayName || u.username, u.avatarColor), online ? h('span', { class: 'dot' }) : null]),
          h('span', { class: 'conv-main' }, [
            h('span', { class: 'conv-title', text: u.displayName || u.username }),
            h('span', { class: 'conv-preview', text: '@' + u.username }),
          ]),
        ]),
      ]));
    }
    results.hidden = false;
    list.hidden = true;
    empty.hidden = true;
  };
  search.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(runSearch, 250);
  });
  search.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      search.value = '';
      runSearch();
    }
  });

  store.on('me', renderMe);
  store.on('list', renderList);
  store.on('typing', renderList);
  store.on('active', renderList);
  // Typing indicators expire without an event.
  setInterval(renderList, 3000);
  renderMe();
  renderList();
}
