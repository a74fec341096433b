// @ts-check
/**
 * The app's state: people, groups, presence, and one conversation per DM peer or
 * group with its messages, unread count and who is typing. It is fed by the
 * controller and read by the UI; it knows neither the socket nor the DOM.
 */
import { Emitter } from './emitter.js';

/** @typedef {import('./types.js').User} User */
/** @typedef {import('./types.js').Group} Group */
/** @typedef {import('./types.js').Message} Message */
/** @typedef {import('./types.js').OutboxEntry} OutboxEntry */
/** @typedef {import('./types.js').Target} Target */
/** @typedef {import('./protocol.js').ConnStatus} ConnStatus */
/** @typedef {import('./protocol.js').ReadEvent} ReadEvent */

/**
 * @typedef {object} Conversation
 * @property {string} key          `u:<userId>` or `g:<groupId>`
 * @property {'dm'|'group'} kind
 * @property {string} id           the peer's user id or the group id
 * @property {Message[]} messages  oldest→newest, unique by id
 * @property {boolean} loaded      the newest page has been fetched
 * @property {boolean} hasMore     older pages exist on the server
 * @property {boolean} loadingOlder
 * @property {number} unread
 * @property {number} lastAt       epoch ms of the last activity, for ordering
 * @property {Map<string, number>} typing  userId → expiry (epoch ms)
 */

/**
 * @typedef {object} StoreEvents
 * @property {User} me
 * @property {{}} list            conversation order, previews, unread, presence or names changed
 * @property {string} messages    the key whose messages changed
 * @property {string} typing      the key whose typing set changed
 * @property {string|null} active
 * @property {ConnStatus} connection
 * @property {{}} groups
 */

const TYPING_TTL_MS = 6000;

/** @param {Target} t */
export function keyOf(t) {
  return 'groupId' in t ? 'g:' + t.groupId : 'u:' + t.to;
}

/** @param {string} key @returns {Target} */
export function targetOf(key) {
  return key.startsWith('g:') ? { groupId: key.slice(2) } : { to: key.slice(2) };
}

/** @param {Message} m */
function time(m) {
  const t = Date.parse(m.createdAt);
  return Number.isFinite(t) ? t : 0;
}

/** @extends {Emitter<StoreEvents>} */
export class Store extends Emitter {
  constructor() {
    super();
    /** @type {User|null} */
    this.me = null;
    /** @type {Map<string, User>} */
    this.users = new Map();
    /** @type {Map<string, Group>} my groups */
    this.groups = new Map();
    /** @type {Set<string>} */
    this.online = new Set();
    /** @type {Map<string, Conversation>} */
    this.convs = new Map();
    /** @type {OutboxEntry[]} */
    this.outbox = [];
    /** @type {string|null} */
    this.activeKey = null;
    /** @type {ConnStatus} */
    this.connection = { state: 'idle', attempt: 0 };
  }

  /** @param {User} user */
  setMe(user) {
    this.me = user;
    this.users.set(user.id, user);
    this.emit('me', user);
  }

  /** @param {User[]} users */
  setUsers(users) {
    for (const u of users) this.users.set(u.id, u);
    this.emit('list', {});
  }

  /** @param {User} u */
  upsertUser(u) {
    this.users.set(u.id, u);
    this.emit('list', {});
  }

  /** @param {string} id */
  name(id) {
    const u = this.users.get(id);
    return u ? u.displayName || u.username : 'Someone';
  }

  /** @param {Group[]} groups */
  setGroups(groups) {
    this.groups = new Map(groups.map((g) => [g.id, g]));
    for (const g of groups) this.conv('g:' + g.id, Date.parse(g.createdAt) || 0);
    this.emit('groups', {});
    this.emit('list', {});
  }

  /** @param {Group} g */
  upsertGroup(g) {
    const mine = this.me && g.members.includes(this.me.id);
    if (mine) {
      this.groups.set(g.id, g);
      this.conv('g:' + g.id, Date.parse(g.createdAt) || 0);
    } else {
      this.groups.delete(g.id);
      this.convs.delete('g:' + g.id);
      if (this.activeKey === 'g:' + g.id) this.setActive(null);
    }
    this.emit('groups', {});
    this.emit('list', {});
  }

  /** Get or create a conversation. @param {string} key @param {number} [since] */
  conv(key, since = 0) {
    let c = this.convs.get(key);
    if (!c) {
      c = {
        key,
        kind: key.startsWith('g:') ? 'group' : 'dm',
        id: key.slice(2),
        messages: [],
        loaded: false,
        hasMore: true,
        loadingOlder: false,
        unread: 0,
        lastAt: since,
        typing: new Map(),
      };
      this.convs.set(key, c);
    }
    return c;
  }

  /** The conversation a message belongs to, from my point of view. @param {Message} m */
  keyOfMessage(m) {
    if (m.groupId) return 'g:' + m.groupId;
    const me = this.me ? this.me.id : '';
    return 'u:' + (m.from === me ? m.to : m.from);
  }

  /**
   * Merge messages into their conversation (dedupe by id, keep time order).
   * @param {string} key
   * @param {Message[]} msgs
   * @param {{hasMore?: boolean, newestPage?: boolean}} [page] set when msgs is a history page
   * @returns {Message[]} the messages that were new
   */
  addMessages(key, msgs, page) {
    const c = this.conv(key);
    const known = new Set(c.messages.map((m) => m.id));
    const fresh = msgs.filter((m) => !known.has(m.id));
    if (fresh.length) {
      c.messages = c.messages.concat(fresh).sort((a, b) => time(a) - time(b));
      const last = c.messages[c.messages.length - 1];
      c.lastAt = Math.max(c.lastAt, time(last));
      let typingChanged = false;
      for (const m of fresh) typingChanged = c.typing.delete(m.from) || typingChanged;
      if (typingChanged) this.emit('typing', key); // a message ends its author's typing
    }
    if (page) {
      // A refreshed newest page says nothing about older pages we already hold.
      const wasLoaded = c.loaded;
      if (page.newestPage) c.loaded = true;
      if (page.hasMore !== undefined && !(page.newestPage && wasLoaded)) c.hasMore = page.hasMore;
    }
    this.emit('messages', key);
    this.emit('list', {});
    return fresh;
  }

  /** @param {Conversation} c */
  lastMessage(c) {
    return c.messages[c.messages.length - 1] || null;
  }

  /** Apply a `message:read` event to ticks and unread counts. @param {ReadEvent} ev */
  applyRead(ev) {
    const me = this.me ? this.me.id : '';
    if (ev.groupId) {
      const c = this.convs.get('g:' + ev.groupId);
      if (!c) return;
      if (ev.by === me) c.unread = 0;
      this.#markUpTo(c, ev.upTo, (m) => {
        if (m.from !== ev.by && !(m.readBy || []).includes(ev.by)) m.readBy = [...(m.readBy || []), ev.by];
      });
      this.emit('messages', c.key);
    } else if (ev.userId) {
      if (ev.by === me) {
        const c = this.convs.get('u:' + ev.userId);
        if (c) c.unread = 0;
      } else if (ev.userId === me) {
        const c = this.convs.get('u:' + ev.by);
        if (!c) return;
        this.#markUpTo(c, ev.upTo, (m) => {
          if (m.from === me && !m.readAt) m.readAt = ev.readAt;
        });
        this.emit('messages', c.key);
      }
    }
    this.emit('list', {});
  }

  /**
   * Run `fn` on every message up to and including `upTo` (all of them when the
   * server names a message we have not loaded: it is newer than everything here).
   * @param {Conversation} c @param {string} upTo @param {(m: Message) => void} fn
   */
  #markUpTo(c, upTo, fn) {
    const i = c.messages.findIndex((m) => m.id === upTo);
    const end = i < 0 ? c.messages.length : i + 1;
    for (let j = 0; j < end; j++) fn(c.messages[j]);
  }

  /** @param {string} key @param {string} userId @param {boolean} on */
  setTyping(key, userId, on) {
    const c = this.conv(key);
    if (on) c.typing.set(userId, Date.now() + TYPING_TTL_MS);
    else c.typing.delete(userId);
    this.emit('typing', key);
  }

  /** Who is typing in a conversation now (expired entries are dropped). @param {string} key */
  typers(key) {
    const c = this.convs.get(key);
    if (!c) return [];
    const now = Date.now();
    for (const [id, until] of c.typing) if (until < now) c.typing.delete(id);
    return [...c.typing.keys()];
  }

  /** @param {OutboxEntry[]} entries */
  setOutbox(entries) {
    const touched = new Set([...this.outbox, ...entries].map((e) => keyOf(e.target)));
    this.outbox = [...entries];
    for (const key of touched) this.emit('messages', key);
  }

  /** @param {string} key */
  pendingFor(key) {
    return this.outbox.filter((e) => keyOf(e.target) === key);
  }

  /** @param {string} key @param {number} n */
  setUnread(key, n) {
    this.conv(key).unread = n;
    this.emit('list', {});
  }

  totalUnread() {
    let n = 0;
    for (const c of this.convs.values()) n += c.unread;
    return n;
  }

  /** @param {string|null} key */
  setActive(key) {
    this.activeKey = key;
    if (key) this.conv(key);
    this.emit('active', key);
    this.emit('list', {});
  }

  /** @param {string[]} ids */
  setOnline(ids) {
    this.online = new Set(ids);
    this.emit('list', {});
  }

  /** @param {string} id @param {boolean} on @param {string} [lastSeen] */
  setPresence(id, on, lastSeen) {
    if (on) this.online.add(id);
    else this.online.delete(id);
    const u = this.users.get(id);
    if (u) this.users.set(id, { ...u, online: on, lastSeen: lastSeen || u.lastSeen });
    this.emit('list', {});
  }

  /** @param {ConnStatus} s */
  setConnection(s) {
    this.connection = s;
    this.emit('connection', s);
  }

  /**
   * The sidebar list: every group, and every DM with history, unread or open;
   * newest activity first.
   * @returns {Conversation[]}
   */
  conversationList() {
    return [...this.convs.values()]
      .filter((c) => c.kind === 'group' ? this.groups.has(c.id) : c.messages.length > 0 || c.unread > 0 || c.key === this.activeKey)
      .sort((a, b) => b.lastAt - a.lastAt || a.key.localeCompare(b.key));
  }

  /** @param {Conversation} c */
  title(c) {
    if (c.kind === 'group') return this.groups.get(c.id)?.name || 'Group';
    return this.name(c.id);
  }
}
