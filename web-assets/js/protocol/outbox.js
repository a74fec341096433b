// @ts-check
/**
 * The outbox: chat messages that are not yet acknowledged as stored. Each has a
 * `clientId` that stays the same on every resend, so the server's dedupe makes a
 * resend after a lost ack harmless. Entries are sent one at a time (stored in the
 * order typed), retried automatically after transient failures and reconnects,
 * kept in storage across reloads, and marked failed (with manual retry) when the
 * server refuses them. No DOM access.
 */
import { ProtocolError, newClientId } from './wire.js';

/** @typedef {import('../types.js').Message} Message */
/** @typedef {import('../types.js').OutboxEntry} OutboxEntry */
/** @typedef {import('../types.js').Target} Target */
/** @typedef {import('../types.js').FileInfo} FileInfo */
/** @typedef {import('../protocol.js').Connection} Connection */
/** @typedef {import('../protocol.js').KeyValueStore} KeyValueStore */

const SEND_TIMEOUT_MS = 15_000;
const MAX_AUTO_ATTEMPTS = 5;
/** Codes after which resending the same frame may succeed. */
const TRANSIENT = new Set(['timeout', 'connection_lost', 'not_connected', 'rate_limited', 'internal']);

export class Outbox {
  /** @param {Connection} conn @param {KeyValueStore|null} storage */
  constructor(conn, storage) {
    this.conn = conn;
    this.storage = storage;
    /** @type {OutboxEntry[]} */
    this.entries = [];
    /** @type {string|null} */
    this.key = null;
    this.flushing = false;
  }

  /**
   * Queue a chat message; it is sent now if connected, else after reconnect.
   * @param {Target} target
   * @param {{content: string, kind?: 'text'|'file', fileId?: string, file?: FileInfo}} body
   * @returns {OutboxEntry}
   */
  enqueue(target, body) {
    /** @type {OutboxEntry} */
    const entry = {
      clientId: newClientId(),
      target,
      content: body.content,
      kind: body.kind || 'text',
      fileId: body.fileId,
      file: body.file,
      createdAt: new Date().toISOString(),
      status: 'queued',
      attempts: 0,
    };
    this.entries.push(entry);
    this.#changed();
    this.flush();
    return entry;
  }

  /** Try a failed entry again, with the same clientId. @param {string} clientId */
  retry(clientId) {
    const e = this.entries.find((x) => x.clientId === clientId);
    if (!e || e.status === 'sending') return;
    e.status = 'queued';
    e.attempts = 0;
    e.error = undefined;
    this.#changed();
    this.flush();
  }

  /** Drop an unsent entry (not one in flight). @param {string} clientId */
  discard(clientId) {
    const before = this.entries.length;
    this.entries = this.entries.filter((x) => x.clientId !== clientId || x.status === 'sending');
    if (this.entries.length !== before) this.#changed();
  }

  /** A stored message carrying one of our clientIds settles that entry. @param {Message|undefined} m */
  settle(m) {
    if (!m || !m.clientId) return;
    const i = this.entries.findIndex((x) => x.clientId === m.clientId);
    if (i < 0) return;
    this.entries.splice(i, 1);
    this.#changed();
    this.conn.emit('sent', { clientId: m.clientId, message: m });
  }

  /** Restore what a previous page load of this user left unsent. @param {string} userId */
  load(userId) {
    const key = 'qm.outbox.' + userId;
    if (this.key === key) return;
    this.key = key;
    if (!this.storage || this.entries.length) return;
    try {
      const saved = JSON.parse(this.storage.getItem(key) || '[]');
      if (Array.isArray(saved) && saved.length) {
        this.entries = saved.map((e) => ({ ...e, status: e.status === 'failed' ? 'failed' : 'queued' }));
        this.conn.emit('outbox', { entries: this.entries });
      }
    } catch {
      this.storage.removeItem(key);
    }
  }

  /** Send queued entries one at a time while connected. */
  async flush() {
    if (this.flushing) return;
    this.flushing = true;
    try {
      let entry;
      while (this.conn.status.state === 'open' && (entry = this.entries.find((x) => x.status === 'queued'))) {
        if (await this.#send(entry)) {
          setTimeout(() => this.flush(), 3000);
          break;
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  /** @param {OutboxEntry} entry @returns {Promise<boolean>} true when flushing should pause */
  async #send(entry) {
    entry.status = 'sending';
    entry.attempts += 1;
    this.#changed();
    const isGroup = 'groupId' in entry.target;
    /** @type {Record<string, unknown>} */
    const data = { ...entry.target, content: entry.content, kind: entry.kind, clientId: entry.clientId };
    if (entry.fileId) data.fileId = entry.fileId;
    try {
      const ack = await this.conn.request(isGroup ? 'message:group:send' : 'message:send', data, SEND_TIMEOUT_MS);
      const message = /** @type {Message} */ (ack.message);
      if (this.entries.includes(entry)) {
        this.entries.splice(this.entries.indexOf(entry), 1);
        this.#changed();
        this.conn.emit('sent', { clientId: entry.clientId, message });
      }
      return false;
    } catch (err) {
      if (!this.entries.includes(entry)) return false; // settled by sync meanwhile
      const code = err instanceof ProtocolError ? err.code : 'internal';
      if (TRANSIENT.has(code) && entry.attempts < MAX_AUTO_ATTEMPTS) {
        entry.status = 'queued';
        if (code === 'timeout') this.conn.restart(); // resent after the next `ready`
      } else {
        entry.status = 'failed';
        entry.error = err instanceof Error ? err.message : String(err);
      }
      this.#changed();
      return code === 'rate_limited' || code === 'internal';
    }
  }

  #changed() {
    if (this.key && this.storage) {
      if (this.entries.length) this.storage.setItem(this.key, JSON.stringify(this.entries));
      else this.storage.removeItem(this.key);
    }
    this.conn.emit('outbox', { entries: this.entries });
  }
}
