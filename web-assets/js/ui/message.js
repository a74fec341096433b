// @ts-check
/**
 * One chat bubble: own or other side, sender name in groups, text or file,
 * time, and the delivery ticks (sent, delivered, read) or the pending/failed
 * state of an unsent message with retry.
 */
import { h } from './dom.js';
import { icon } from './icons.js';
import { clock } from './format.js';
import { renderFile } from './attachments.js';

/** @typedef {import('../controller.js').Controller} Controller */
/** @typedef {import('../types.js').Message} Message */
/** @typedef {import('../types.js').OutboxEntry} OutboxEntry */

/**
 * Tick state of my own stored message. There is no delivery event in the
 * protocol: a DM counts as delivered once the recipient has been online since it
 * was stored (the server pushes to every open connection).
 * @param {Controller} ctrl @param {Message} m
 * @returns {'sent'|'delivered'|'read'}
 */
export function tickState(ctrl, m) {
  const { store } = ctrl;
  if (m.groupId) {
    const g = store.groups.get(m.groupId);
    const readers = (m.readBy || []).filter((id) => id !== m.from);
    const others = g ? g.members.filter((id) => id !== m.from).length : Infinity;
    if (others > 0 && readers.length >= others) return 'read';
    return readers.length ? 'delivered' : 'sent';
  }
  if (m.readAt) return 'read';
  const to = m.to || '';
  if (store.online.has(to)) return 'delivered';
  const u = store.users.get(to);
  if (u && u.lastSeen && Date.parse(u.lastSeen) >= Date.parse(m.createdAt)) return 'delivered';
  return 'sent';
}

const TICK_LABEL = { sent: 'Sent', delivered: 'Delivered', read: 'Read' };

/** @param {'sent'|'delivered'|'read'} state @param {Message} m */
function ticks(state, m) {
  const label = m.groupId && state !== 'sent' ? `Read by ${(m.readBy || []).length}` : TICK_LABEL[state];
  return h('span', { class: 'ticks ' + state, attrs: { role: 'img', 'aria-label': label, title: label } }, [icon(state === 'sent' ? 'check' : 'checks')]);
}

/** @param {Controller} ctrl @param {Message|OutboxEntry} m */
function body(ctrl, m) {
  /** @type {Node[]} */
  const parts = [];
  if (m.kind === 'file' && m.file) {
    parts.push(renderFile(m.file, (u) => ctrl.fetchBlob(u)));
    if (m.content && m.content !== m.file.originalName) parts.push(h('p', { class: 'text', text: m.content }));
  } else {
    parts.push(h('p', { class: 'text', text: m.content }));
  }
  return parts;
}

/**
 * A stored message.
 * @param {Controller} ctrl @param {Message} m @param {{showSender: boolean}} opts
 */
export function renderMessage(ctrl, m, opts) {
  const mine = !!ctrl.store.me && m.from === ctrl.store.me.id;
  const meta = h('span', { class: 'meta' }, [h('time', { text: clock(m.createdAt), attrs: { datetime: m.createdAt } })]);
  if (mine) meta.append(ticks(tickState(ctrl, m), m));
  return h('div', { class: 'msg ' + (mine ? 'mine' : 'theirs'), data: { id: m.id } }, [
    h('div', { class: 'bubble' }, [
      opts.showSender && !mine ? h('span', { class: 'sender', text: ctrl.store.name(m.from) }) : null,
      ...body(ctrl, m),
      meta,
    ]),
  ]);
}

/** A message still in the outbox. @param {Controller} ctrl @param {OutboxEntry} e */
export function renderPending(ctrl, e) {
  const failed = e.status === 'failed';
  const meta = h('span', { class: 'meta' }, [
    h('time', { text: clock(e.createdAt), attrs: { datetime: e.createdAt } }),
    h('span', { class: 'ticks pending', attrs: { role: 'img', 'aria-label': failed ? 'Not sent' : 'Sending', title: failed ? 'Not sent' : 'Sending' } }, [icon(failed ? 'alert' : 'clock')]),
  ]);
  /** @type {(Node|null)[]} */
  const extra = [];
  if (failed) {
    extra.push(h('div', { class: 'failed-bar' }, [
      h('span', { text: e.error ? 'Not sent: ' + e.error : 'Not sent.' }),
      h('button', { class: 'link', text: 'Retry', attrs: { type: 'button' }, on: { click: () => ctrl.retry(e.clientId) } }),
      h('button', { class: 'link', text: 'Delete', attrs: { type: 'button' }, on: { click: () => ctrl.discard(e.clientId) } }),
    ]));
  }
  return h('div', { class: 'msg mine' + (failed ? ' failed' : ' sending'), data: { client: e.clientId } }, [
    h('div', { class: 'bubble' }, [...body(ctrl, e), meta]),
    ...extra,
  ]);
}

/**
 * Refresh the ticks of a rendered own message in place, so a playing video in
 * the same bubble keeps playing when a read receipt arrives.
 * @param {Controller} ctrl @param {HTMLElement} el @param {Message} m
 */
export function updateTicks(ctrl, el, m) {
  const old = el.querySelector('.ticks');
  if (old) old.replaceWith(ticks(tickState(ctrl, m), m));
}
