// The web client's clientIds: unique, UUIDv7-shaped and sorted by creation time, so the
// server's (sender, clientId) idempotency index grows at its end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newClientId } from '../../web-assets/js/protocol/wire.js';

test('clientIds are unique UUIDv7s that sort in the order they were made', async () => {
  const before = Date.now();
  const ids = [];
  for (let i = 0; i < 2000; i++) ids.push(newClientId());
  await new Promise((r) => setTimeout(r, 5));
  const later = newClientId();
  const after = Date.now();
  assert.equal(new Set(ids).size, ids.length);
  for (const id of [...ids, later]) {
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const ms = parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
    assert.ok(ms >= before && ms <= after, `${id} carries ${ms}, made between ${before} and ${after}`);
  }
  // Keys of different milliseconds sort by time (within one, the order is random).
  assert.ok(ids.every((id) => id < later), 'a later key sorts after every earlier one');
  const msOf = (/** @type {string} */ id) => id.slice(0, 13);
  for (let i = 1; i < ids.length; i++) assert.ok(msOf(ids[i - 1]) <= msOf(ids[i]));
});
