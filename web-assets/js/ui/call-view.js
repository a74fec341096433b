// @ts-check
/**
 * The 1:1 call overlay: the incoming-call card with ringtone, accept and
 * decline; then the call itself with remote video (or a big avatar with a
 * speaking ring for audio), local preview, timer and controls.
 */
import { h, avatar, toast } from './dom.js';
import { icon } from './icons.js';
import { ring } from './ringtone.js';
import { makeTile, makeTimer, makeControls } from './call-parts.js';

/** @typedef {import('../controller.js').Controller} Controller */
/** @typedef {import('../protocol/calls.js').CallState} CallState */

const ENDED_TEXT = {
  hangup: '',
  ended: 'Call ended.',
  rejected: 'Call declined.',
  declined: '',
  busy: 'They are in another call.',
  'no-answer': 'No answer.',
  missed: 'Missed call.',
  failed: 'The call could not connect.',
  'connection-lost': 'Call ended: connection to the server lost.',
  'media-error': 'Could not start the call.',
};

/**
 * @param {HTMLElement} layer  full-screen container for call UI
 * @param {Controller} ctrl
 * @param {{onIncoming: (call: CallState) => void}} hooks
 */
export function mountCallView(layer, ctrl, hooks) {
  const { store, calls } = ctrl;
  /** @type {'none'|'incoming'|'call'} */
  let mode = 'none';
  let stopRing = () => {};
  /** @type {(() => void)[]} */
  let teardown = [];
  /** @type {((c: CallState) => void)|null} */
  let update = null;

  const reset = () => {
    stopRing();
    stopRing = () => {};
    for (const fn of teardown) fn();
    teardown = [];
    update = null;
    layer.replaceChildren();
    layer.hidden = true;
  };

  /** @param {CallState} c */
  const showIncoming = (c) => {
    const u = store.users.get(c.peerId);
    const name = store.name(c.peerId);
    const accept = h('button', { class: 'accept', attrs: { type: 'button' } }, [icon(c.callType === 'video' ? 'video' : 'phone'), 'Accept']);
    const decline = h('button', { class: 'decline', attrs: { type: 'button' } }, [icon('hangup'), 'Decline']);
    accept.addEventListener('click', () => calls.accept());
    decline.addEventListener('click', () => calls.reject());
    const heading = h('h2', { text: name });
    const face = h('span', {}, [avatar(name, u?.avatarColor, 'huge pulse')]);
    const card = h('div', { class: 'incoming', attrs: { role: 'alertdialog', 'aria-label': 'Incoming call from ' + name } }, [
      face,
      heading,
      h('p', { text: c.callType === 'video' ? 'Incoming video call…' : 'Incoming audio call…' }),
      h('div', { class: 'incoming-actions' }, [decline, accept]),
    ]);
    layer.replaceChildren(card);
    layer.hidden = false;
    // A caller who signed up after we loaded the user list is fetched meanwhile.
    teardown.push(
      store.on('list', () => {
        const n = store.name(c.peerId);
        if (heading.textContent === n) return;
        heading.textContent = n;
        card.setAttribute('aria-label', 'Incoming call from ' + n);
        face.replaceChildren(avatar(n, store.users.get(c.peerId)?.avatarColor, 'huge pulse'));
      }),
    );
    stopRing = ring('incoming');
    accept.focus();
  };

  /** @param {CallState} c */
  const showCall = (c) => {
    const u = store.users.get(c.peerId);
    const name = store.name(c.peerId);
    const me = store.me;
    const remote = makeTile({ name, color: u?.avatarColor });
    const local = makeTile({ name: me ? me.displayName || me.username : 'You', color: me?.avatarColor, local: true });
    const timer = makeTimer();
    const controls = makeControls(ctrl, () => calls.hangup());
    const status = h('span', { class: 'call-status' });
    const heading = h('strong', { text: name });
    teardown.push(
      store.on('list', () => {
        heading.textContent = store.name(c.peerId);
        remote.rename(store.name(c.peerId), store.users.get(c.peerId)?.avatarColor);
      }),
    );
    layer.replaceChildren(
      h('section', { class: 'call-view one', attrs: { 'aria-label': 'Call with ' + name } }, [
        h('header', { class: 'call-head' }, [heading, status, timer.el]),
        h('div', { class: 'stage' }, [remote.el, local.el]),
        controls.el,
      ]),
    );
    layer.hidden = false;
    teardown.push(() => remote.destroy(), () => local.destroy(), () => timer.stop(), controls.destroy);
    update = (s) => {
      const ringing = s.phase === 'ringing';
      status.textContent = ringing ? 'Calling…' : s.phase === 'connecting' ? 'Connecting…' : '';
      timer.set(s.startedAt);
      remote.update(s.remoteStream, s.remoteMedia);
      local.update(ctrl.media.stream, ctrl.media.flags);
      layer.classList.toggle('audio-only', !s.remoteMedia.video && !s.remoteMedia.screen && !ctrl.media.flags.video);
    };
    if (c.phase === 'ringing') stopRing = ring('outgoing');
    update(c);
  };

  calls.on('change', (c) => {
    if (!c) {
      mode = 'none';
      reset();
      return;
    }
    const want = c.direction === 'incoming' && c.phase === 'ringing' ? 'incoming' : 'call';
    if (want !== mode) {
      reset();
      mode = want;
      if (want === 'incoming') showIncoming(c);
      else showCall(c);
    } else if (c.phase !== 'ringing') {
      stopRing();
    }
    if (update) update(c);
  });
  calls.on('incoming', (c) => hooks.onIncoming(c));
  calls.on('ended', ({ reason, message }) => {
    const text = message || ENDED_TEXT[/** @type {keyof typeof ENDED_TEXT} */ (reason)] || '';
    if (text) toast(text, reason === 'failed' || reason === 'media-error' ? 'error' : 'info');
  });
  reset();
}
