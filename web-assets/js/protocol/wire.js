// @ts-check
/** Small wire-level pieces shared by the socket and the outbox. No DOM access. */

/** A failed request over the socket: an error ack, a timeout or a lost connection. */
export class ProtocolError extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
  }
}

/**
 * An idempotency key in the UUIDv7 layout: the creation time in milliseconds, then random
 * bits. Keys made later sort later, so the server's (sender, clientId) index grows at its
 * end; random keys would rewrite an index page per message (about 40% fewer durable sends
 * per second under load, see docs/performance.md).
 * @returns {string}
 */
export function newClientId() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  let ms = Date.now();
  for (let i = 5; i >= 0; i--) {
    b[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  b[6] = (b[6] & 0x0f) | 0x70;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
