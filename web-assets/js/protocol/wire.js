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

/** @returns {string} a random idempotency key */
export function newClientId() {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}
