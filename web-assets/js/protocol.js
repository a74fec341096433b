// @ts-check
/**
 * The WebSocket half of PROTOCOL.md: one `Connection` that authenticates, matches
 * `ref`s to acks, reconnects with exponential backoff, catches up with `sync`, and
 * keeps an outbox (./protocol/outbox.js) so an unacknowledged message is resent with the same `clientId`
 * (the server dedupes it) until it is stored. It has no DOM access: everything it
 * knows leaves through typed events. REST lives in ./protocol/rest.js and
 * RTCPeerConnection handling in ./protocol/calls.js and ./protocol/group-calls.js;
 * they are re-exported here so the app imports the whole protocol layer from one place.
 */
import { Emitter } from './emitter.js';
import { Outbox } from './protocol/outbox.js';
import { ProtocolError } from './protocol/wire.js';

export { ProtocolError, newClientId } from './protocol/wire.js';

export { Rest, ApiError } from './protocol/rest.js';
export { LocalMedia } from './protocol/media.js';
export { CallManager } from './protocol/calls.js';
export { GroupCallManager } from './protocol/group-calls.js';

/** @typedef {import('./types.js').User} User */
/** @typedef {import('./types.js').Message} Message */
/** @typedef {import('./types.js').OutboxEntry} OutboxEntry */
/** @typedef {import('./types.js').Target} Target */
/** @typedef {import('./types.js').WireError} WireError */

/** Largest frame we send; the server closes the socket past 64 KiB. */
const MAX_FRAME_BYTES = 60 * 1024;
const AUTH_TIMEOUT_MS = 10_000;
const SEND_TIMEOUT_MS = 15_000;
const MAX_SYNC_PAGES = 20;


/**
 * @typedef {object} ConnStatus
 * @property {'idle'|'connecting'|'authenticating'|'open'|'waiting'|'closed'} state
 * @property {number} attempt  failed attempts since the last `ready`
 * @property {number} [retryAt] epoch ms of the next attempt while `waiting`
 */

/**
 * @typedef {object} ReadEvent
 * @property {string} by
 * @property {string} [userId]
 * @property {string} [groupId]
 * @property {string} upTo
 * @property {string} readAt
 */

/** @typedef {{from: string, to?: string, groupId?: string}} TypingEvent */

/**
 * Events a Connection emits. Signaling events keep their wire names and payloads.
 * `ready.resumed` is true on a reconnect; `unauthorized`: the token was refused
 * (4401); `synced`: one page of missed messages; `resync-needed`: sync could not
 * catch up, reload from REST.
 * @typedef {{
 *   'status': ConnStatus,
 *   'ready': {user: User, resumed: boolean},
 *   'unauthorized': {},
 *   'users:online-list': {users: string[]},
 *   'user:online': {userId: string},
 *   'user:offline': {userId: string, lastSeen: string},
 *   'typing:start': TypingEvent,
 *   'typing:stop': TypingEvent,
 *   'message:receive': {message: Message},
 *   'message:group:receive': {message: Message},
 *   'message:read': ReadEvent,
 *   'synced': {messages: Message[]},
 *   'resync-needed': {},
 *   'outbox': {entries: OutboxEntry[]},
 *   'sent': {clientId: string, message: Message},
 *   'server-error': WireError,
 *   'call:offer': any,
 *   'call:answer': any,
 *   'call:ice-candidate': any,
 *   'call:reject': any,
 *   'call:end': any,
 *   'group-call:existing-peers': any,
 *   'group-call:peer-joined': any,
 *   'group-call:peer-left': any,
 *   'group-call:offer': any,
 *   'group-call:answer': any,
 *   'group-call:ice-candidate': any,
 *   'media:state': any,
 * }} ConnEvents
 */

/** Minimal Web Storage shape, injected so this module never reaches for globals it does not need. */
/** @typedef {{getItem(k: string): string|null, setItem(k: string, v: string): void, removeItem(k: string): void}} KeyValueStore */


/** @extends {Emitter<ConnEvents>} */
export class Connection extends Emitter {
  /**
   * @param {{url: string, token: string, storage?: KeyValueStore}} opts
   */
  constructor(opts) {
    super();
    this.url = opts.url;
    this.token = opts.token;
    /** @type {ConnStatus} */
    this.status = { state: 'idle', attempt: 0 };
    /** @type {User|null} */
    this.user = null;
    /** Newest message seen, by createdAt; the `since` of the next sync. @type {{id: string, at: number}|null} */
    this.lastSeen = null;
    /** Unsent messages; they survive reconnects and reloads. */
    this.outbox = new Outbox(this, opts.storage || null);
    /** @type {WebSocket|null} */
    this.ws = null;
    this.nextRef = 0;
    /** @type {Map<number, {resolve: (d: any) => void, reject: (e: Error) => void, timer: ReturnType<typeof setTimeout>}>} */
    this.pending = new Map();
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    this.retryTimer = undefined;
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    this.authTimer = undefined;
    this.stopped = true;
    this.everReady = false;
  }

  /** Connect, and keep reconnecting until stop(). */
  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.#connect();
  }

  /** Close for good (logout). Pending requests fail with `connection_lost`. */
  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close(1000, 'bye');
    this.#setStatus('closed');
  }

  /** Drop the socket and start over (a silent server usually means a dead socket). */
  restart() {
    if (this.ws) this.ws.close(4000, 'restart');
  }

  /** Skip the backoff wait (e.g. the browser just came back online). */
  reconnectNow() {
    if (this.stopped || this.status.state !== 'waiting') return;
    clearTimeout(this.retryTimer);
    this.#connect();
  }

  /** @param {ConnStatus['state']} state @param {number} [retryAt] */
  #setStatus(state, retryAt) {
    this.status = { state, attempt: this.status.attempt, retryAt };
    this.emit('status', this.status);
  }

  #connect() {
    this.#setStatus('connecting');
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      console.error('WebSocket construction failed', err);
      this.#scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.#setStatus('authenticating');
      // Always authenticate explicitly: the token in hand is the session the user sees.
      ws.send(JSON.stringify({ type: 'auth', data: { token: this.token } }));
      this.authTimer = setTimeout(() => ws.close(4000, 'no ready'), AUTH_TIMEOUT_MS);
    };
    ws.onmessage = (ev) => {
      if (this.ws === ws && typeof ev.data === 'string') this.#onFrame(ev.data);
    };
    ws.onclose = (ev) => {
      if (this.ws === ws) this.#onClose(ev.code);
    };
  }

  /** @param {number} code */
  #onClose(code) {
    clearTimeout(this.authTimer);
    this.ws = null;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new ProtocolError('connection_lost', 'The connection was lost.'));
    }
    this.pending.clear();
    if (code === 4401) {
      this.stopped = true;
      this.#setStatus('closed');
      this.emit('unauthorized', {});
      return;
    }
    if (this.stopped) {
      this.#setStatus('closed');
      return;
    }
    this.#scheduleReconnect();
  }

  #scheduleReconnect() {
    const attempt = this.status.attempt;
    const base = Math.min(30_000, 500 * 2 ** attempt);
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.status.attempt = attempt + 1;
    this.#setStatus('waiting', Date.now() + delay);
    this.retryTimer = setTimeout(() => this.#connect(), delay);
  }

  /** @param {string} text */
  #onFrame(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      console.warn('ignoring a frame that is not JSON');
      return;
    }
    if (!frame || typeof frame.type !== 'string') return;
    const data = frame.data || {};
    switch (frame.type) {
      case 'ack': {
        const p = this.pending.get(frame.ref);
        if (!p) return;
        this.pending.delete(frame.ref);
        clearTimeout(p.timer);
        if (frame.error) p.reject(new ProtocolError(String(frame.error.code), String(frame.error.message)));
        else p.resolve(data);
        return;
      }
      case 'ready': {
        clearTimeout(this.authTimer);
        this.status.attempt = 0;
        this.user = data.user;
        const resumed = this.everReady;
        this.everReady = true;
        this.outbox.load(data.user.id);
        this.#setStatus('open');
        this.emit('ready', { user: data.user, resumed });
        this.#afterReady(resumed);
        return;
      }
      case 'ping':
        // Only if the server pings in JSON rather than with WebSocket ping frames.
        this.send('pong', {});
        return;
      case 'error':
        this.emit('server-error', data);
        return;
      case 'message:receive':
      case 'message:group:receive':
        if (data.message) this.noteSeen(data.message);
        this.outbox.settle(data.message);
        break;
    }
    // @ts-ignore: server event names are checked by the typedef at the subscriber
    this.emit(frame.type, data);
  }

  /** @param {boolean} resumed */
  async #afterReady(resumed) {
    if (resumed) {
      if (this.lastSeen) await this.#sync();
      else this.emit('resync-needed', {});
    }
    this.outbox.flush();
  }

  /** Fetch what was missed while disconnected, page by page. */
  async #sync() {
    if (!this.lastSeen) return;
    for (let page = 0; page < MAX_SYNC_PAGES; page++) {
      let ack;
      try {
        ack = await this.request('sync', { since: this.lastSeen.id }, SEND_TIMEOUT_MS);
      } catch (err) {
        console.warn('sync failed', err);
        if (err instanceof ProtocolError && err.code !== 'connection_lost') this.emit('resync-needed', {});
        return;
      }
      /** @type {Message[]} */
      const messages = ack.messages || [];
      for (const m of messages) {
        this.noteSeen(m);
        this.outbox.settle(m);
      }
      this.emit('synced', { messages });
      if (!ack.hasMore || messages.length === 0) return;
    }
    this.emit('resync-needed', {});
  }

  /**
   * Remember a message as seen so the next sync starts after it. Compares creation
   * times (never the opaque ids), so feeding older messages is harmless.
   * @param {Message} m
   */
  noteSeen(m) {
    const at = Date.parse(m.createdAt);
    if (!Number.isFinite(at)) return;
    if (!this.lastSeen || at >= this.lastSeen.at) this.lastSeen = { id: m.id, at };
  }

  /**
   * Send a frame with a `ref` and wait for its ack.
   * @param {string} type
   * @param {object} data
   * @param {number} [timeoutMs]
   * @returns {Promise<any>} the ack's data
   */
  request(type, data, timeoutMs = 10_000) {
    const ws = this.ws;
    if (!ws || this.status.state !== 'open') {
      return Promise.reject(new ProtocolError('not_connected', 'Not connected to the server.'));
    }
    const ref = ++this.nextRef;
    const text = JSON.stringify({ type, data, ref });
    if (new TextEncoder().encode(text).length > MAX_FRAME_BYTES) {
      return Promise.reject(new ProtocolError('too_large', 'That is too large to send.'));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        reject(new ProtocolError('timeout', 'The server did not answer in time.'));
      }, timeoutMs);
      this.pending.set(ref, { resolve, reject, timer });
      ws.send(text);
    });
  }

  /**
   * Fire-and-forget frame (typing, read marks, signaling). False when not connected.
   * @param {string} type
   * @param {object} data
   */
  send(type, data) {
    if (!this.ws || this.status.state !== 'open') return false;
    const text = JSON.stringify({ type, data });
    if (text.length > MAX_FRAME_BYTES) return false;
    this.ws.send(text);
    return true;
  }
}
