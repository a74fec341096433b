// @ts-check
/**
 * The controller joins the protocol layer to the store: it turns server events
 * into state, loads history, and offers the UI its verbs (`actions`). UI modules
 * call these verbs and never see the socket; this module never touches the DOM.
 */
import { Emitter } from './emitter.js';
import { Connection, Rest, LocalMedia, CallManager, GroupCallManager } from './protocol.js';
import { IceServers } from './protocol/peer.js';
import { Store, keyOf, targetOf } from './store.js';

/** @typedef {import('./types.js').Message} Message */
/** @typedef {import('./types.js').FileInfo} FileInfo */
/** @typedef {import('./types.js').Group} Group */
/** @typedef {import('./types.js').User} User */
/** @typedef {import('./protocol.js').KeyValueStore} KeyValueStore */

const PAGE = 50;
const TYPING_REFRESH_MS = 3000;
const TYPING_IDLE_MS = 2500;

/**
 * `incoming`: someone else's new message; `logged-out`: the token stopped
 * working; `problem`: something the user should know.
 * @typedef {{
 *   'incoming': {key: string, message: Message},
 *   'logged-out': {},
 *   'problem': {message: string},
 * }} ControllerEvents
 */

/**
 * Run `fn` over `items` with at most `n` at a time.
 * @template T @param {T[]} items @param {number} n @param {(t: T) => Promise<void>} fn
 */
async function pool(items, n, fn) {
  const queue = [...items];
  const worker = async () => {
    for (let t = queue.shift(); t !== undefined; t = queue.shift()) await fn(t).catch(() => {});
  };
  await Promise.all(Array.from({ length: Math.min(n, queue.length) }, worker));
}

/** @extends {Emitter<ControllerEvents>} */
export class Controller extends Emitter {
  /**
   * @param {{token: string, user: User, storage: KeyValueStore, wsUrl: string}} opts
   */
  constructor(opts) {
    super();
    this.token = opts.token;
    this.store = new Store();
    this.store.setMe(opts.user);
    this.rest = new Rest(() => this.token, () => this.emit('logged-out', {}));
    this.conn = new Connection({ url: opts.wsUrl, token: opts.token, storage: opts.storage });
    this.media = new LocalMedia();
    const ice = new IceServers(this.rest);
    this.calls = new CallManager(this.conn, ice, this.media, () => this.groupCalls.active);
    this.groupCalls = new GroupCallManager(this.conn, ice, this.media, () => this.calls.active);
    this.visible = true;
    /** @type {Map<string, {sentAt: number, timer: ReturnType<typeof setTimeout>|undefined}>} */
    this.typingOut = new Map();
    /** The user list has been fetched once; people unknown after that signed up later. */
    this.usersLoaded = false;
    /** @type {Set<string>} user ids being fetched */
    this.learning = new Set();
    this.#wire();
  }

  start() {
    this.conn.start();
  }

  /** The browser is back online: skip the backoff wait. */
  reconnectNow() {
    this.conn.reconnectNow();
  }

  #wire() {
    const { conn, store } = this;
    conn.on('status', (s) => store.setConnection(s));
    conn.on('unauthorized', () => this.emit('logged-out', {}));
    conn.on('ready', ({ user, resumed }) => {
      store.setMe(user);
      if (!resumed) this.#loadAll();
      else this.#markActiveRead();
    });
    conn.on('resync-needed', () => this.#loadAll());
    conn.on('users:online-list', (d) => store.setOnline(d.users || []));
    conn.on('user:online', (d) => {
      store.setPresence(d.userId, true);
      this.#learnUser(d.userId);
    });
    conn.on('user:offline', (d) => store.setPresence(d.userId, false, d.lastSeen));
    conn.on('message:receive', (d) => this.#onLive(d.message));
    conn.on('message:group:receive', (d) => this.#onLive(d.message));
    conn.on('synced', ({ messages }) => {
      for (const m of messages) store.addMessages(store.keyOfMessage(m), [m]);
      this.#refreshUnread().then(() => this.#markActiveRead());
    });
    conn.on('sent', ({ message }) => store.addMessages(store.keyOfMessage(message), [message]));
    conn.on('outbox', ({ entries }) => store.setOutbox(entries));
    conn.on('message:read', (ev) => store.applyRead(ev));
    conn.on('server-error', (e) => console.warn('server error event', e));
    for (const type of /** @type {const} */ (['typing:start', 'typing:stop'])) {
      conn.on(type, (d) => {
        if (!store.me || d.from === store.me.id) return;
        const key = d.groupId ? 'g:' + d.groupId : 'u:' + d.from;
        store.setTyping(key, d.from, type === 'typing:start');
        this.#learnUser(d.from);
      });
    }
    // Callers and call peers may have signed up after our user list was loaded.
    conn.on('call:offer', (d) => this.#learnUser(d && d.from));
    conn.on('group-call:peer-joined', (d) => this.#learnUser(d && d.userId));
    conn.on('group-call:existing-peers', (d) => {
      for (const id of (d && d.peers) || []) this.#learnUser(id);
    });
  }

  /**
   * Fetch someone we have not heard of (they signed up after the user list was
   * loaded), so names and colours show instead of "Someone".
   * @param {unknown} id
   */
  #learnUser(id) {
    if (typeof id !== 'string' || !id || !this.usersLoaded) return;
    if (this.store.users.has(id) || this.learning.has(id)) return;
    this.learning.add(id);
    this.rest
      .user(id)
      .then((u) => this.store.upsertUser(u))
      .catch((err) => console.warn('user', id, err))
      .finally(() => this.learning.delete(id));
  }

  /** First load (and reload after a failed resync): people, groups, previews, unread. */
  async #loadAll() {
    const { rest, store } = this;
    try {
      const [users, groups] = await Promise.all([rest.users(), rest.myGroups()]);
      store.setUsers(users);
      this.usersLoaded = true;
      store.setGroups(groups);
      const me = store.me ? store.me.id : '';
      /** @type {import('./types.js').Target[]} */
      const targets = [
        ...groups.map((g) => ({ groupId: g.id })),
        ...users.filter((u) => u.id !== me).map((u) => ({ to: u.id })),
      ];
      // No conversation-list endpoint: the newest message of each DM and group
      // gives the sidebar its order and previews.
      await pool(targets, 6, async (t) => {
        const page = await rest.history(t, { limit: 1 });
        for (const m of page.messages) this.conn.noteSeen(m);
        if (page.messages.length) store.addMessages(keyOf(t), page.messages);
      });
      await this.#refreshUnread();
      if (store.activeKey) await this.#loadNewest(store.activeKey);
      this.#markActiveRead();
    } catch (err) {
      this.#problem(err);
    }
  }

  async #refreshUnread() {
    try {
      const counts = await this.rest.unreadCounts();
      for (const c of this.store.convs.values()) c.unread = 0;
      for (const [id, n] of Object.entries(counts.users || {})) this.store.conv('u:' + id).unread = n;
      for (const [id, n] of Object.entries(counts.groups || {})) this.store.conv('g:' + id).unread = n;
      this.store.emit('list', {});
    } catch (err) {
      console.warn('unread counts', err);
    }
  }

  /** @param {Message|undefined} m */
  async #onLive(m) {
    if (!m || !m.id) return;
    const { store } = this;
    if (m.groupId && !store.groups.has(m.groupId)) {
      // Someone added us to a group: learn its name before showing it.
      try {
        store.upsertGroup(await this.rest.group(m.groupId));
      } catch {
        return;
      }
    }
    this.#learnUser(m.from);
    const key = store.keyOfMessage(m);
    const fresh = store.addMessages(key, [m]);
    if (!fresh.length || !store.me || m.from === store.me.id) return;
    if (key === store.activeKey && this.visible) this.#markRead(key);
    else store.setUnread(key, store.conv(key).unread + 1);
    this.emit('incoming', { key, message: m });
  }

  /** @param {unknown} err */
  #problem(err) {
    this.emit('problem', { message: err instanceof Error ? err.message : String(err) });
  }

  // --- verbs for the UI -------------------------------------------------

  /** Open a conversation (null closes it) and load its newest page. @param {string|null} key */
  async open(key) {
    this.store.setActive(key);
    if (!key) return;
    if (!this.store.conv(key).loaded) await this.#loadNewest(key);
    this.#markActiveRead();
  }

  /** @param {string} key */
  async #loadNewest(key) {
    try {
      const page = await this.rest.history(targetOf(key), { limit: PAGE });
      for (const m of page.messages) this.conn.noteSeen(m);
      this.store.addMessages(key, page.messages, { newestPage: true, hasMore: page.hasMore });
    } catch (err) {
      this.#problem(err);
    }
  }

  /** Fetch the page before the oldest loaded message. @param {string} key */
  async loadOlder(key) {
    const c = this.store.conv(key);
    if (c.loadingOlder || !c.hasMore || !c.loaded) return;
    c.loadingOlder = true;
    try {
      const before = c.messages[0] ? c.messages[0].id : undefined;
      const page = await this.rest.history(targetOf(key), { before, limit: PAGE });
      this.store.addMessages(key, page.messages, { hasMore: page.hasMore });
    } catch (err) {
      this.#problem(err);
    } finally {
      c.loadingOlder = false;
    }
  }

  /** The page became visible or hidden. @param {boolean} visible */
  setVisible(visible) {
    this.visible = visible;
    if (visible) this.#markActiveRead();
  }

  #markActiveRead() {
    const key = this.store.activeKey;
    if (key && this.visible && this.store.conv(key).unread > 0) this.#markRead(key);
  }

  /** @param {string} key */
  #markRead(key) {
    const t = targetOf(key);
    const sent = this.conn.send('message:read', 'groupId' in t ? { groupId: t.groupId } : { userId: t.to });
    if (sent) this.store.setUnread(key, 0);
  }

  /** @param {string} key @param {string} text */
  sendText(key, text) {
    const content = text.trim() ? text : '';
    if (!content) return;
    this.stopTyping(key);
    this.conn.outbox.enqueue(targetOf(key), { content, kind: 'text' });
  }

  /**
   * Send an uploaded file. Content is 1+ characters on the wire, so a file without
   * caption carries its original name as content (the UI hides that duplicate).
   * @param {string} key @param {FileInfo} file @param {string} [caption]
   */
  sendFile(key, file, caption) {
    const content = caption && caption.trim() ? caption : file.originalName || 'file';
    this.conn.outbox.enqueue(targetOf(key), { content, kind: 'file', fileId: file.id, file });
  }

  /** @param {string} clientId */
  retry(clientId) {
    this.conn.outbox.retry(clientId);
  }
  /** @param {string} clientId */
  discard(clientId) {
    this.conn.outbox.discard(clientId);
  }

  /** Call on each keystroke; sends typing:start at most every few seconds. @param {string} key */
  typing(key) {
    const t = targetOf(key);
    const st = this.typingOut.get(key) || { sentAt: 0, timer: undefined };
    const now = Date.now();
    if (now - st.sentAt > TYPING_REFRESH_MS && this.conn.send('typing:start', t)) st.sentAt = now;
    clearTimeout(st.timer);
    st.timer = setTimeout(() => this.stopTyping(key), TYPING_IDLE_MS);
    this.typingOut.set(key, st);
  }

  /** @param {string} key */
  stopTyping(key) {
    const st = this.typingOut.get(key);
    if (!st) return;
    clearTimeout(st.timer);
    this.typingOut.delete(key);
    this.conn.send('typing:stop', targetOf(key));
  }

  /** @param {string} q */
  searchUsers(q) {
    return this.rest.searchUsers(q).then((users) => {
      for (const u of users) if (!this.store.users.has(u.id)) this.store.users.set(u.id, u);
      return users;
    });
  }

  /** @param {string} name @param {string} description @param {string[]} members */
  async createGroup(name, description, members) {
    const g = await this.rest.createGroup(name, description, members);
    this.store.upsertGroup(g);
    return g;
  }

  allGroups() {
    return this.rest.allGroups();
  }

  /** @param {string} id */
  async joinGroup(id) {
    this.store.upsertGroup(await this.rest.joinGroup(id));
  }

  /** @param {string} id */
  async leaveGroup(id) {
    if (this.groupCalls.groupId === id) this.groupCalls.leave();
    this.store.upsertGroup(await this.rest.leaveGroup(id));
  }

  /** @param {string} groupId @param {string} userId */
  async addMember(groupId, userId) {
    this.store.upsertGroup(await this.rest.addMember(groupId, userId));
  }

  /** @param {Blob} file @param {string} name @param {(loaded: number, total: number) => void} onProgress */
  upload(file, name, onProgress) {
    return this.rest.upload(file, name, onProgress);
  }

  /** @param {string} url @param {AbortSignal} [signal] */
  fetchBlob(url, signal) {
    return this.rest.fetchBlob(url, signal);
  }

  /** Log out everywhere this token is used, then stop. */
  async logout() {
    this.calls.hangup();
    this.groupCalls.leave();
    try {
      await this.rest.logout();
    } catch (err) {
      console.warn('logout', err);
    }
    this.conn.stop();
  }

  /** Drop the session locally without calling the server (token already dead). */
  stop() {
    this.calls.hangup();
    this.groupCalls.leave();
    this.conn.stop();
  }
}
