// @ts-check
/**
 * Pieces shared by the 1:1 and group call views: a participant tile (video or
 * avatar, name, mute/camera indicators, speaking ring, and its own audio
 * element), the control bar (mute, camera, screen, devices, hang-up) and a timer.
 */
import { h, avatar, iconButton, toast } from './dom.js';
import { icon } from './icons.js';
import { duration } from './format.js';
import { watchSpeaking } from './speaking.js';
import { openDialog } from './dialog.js';

/** @typedef {import('../types.js').MediaFlags} MediaFlags */
/** @typedef {import('../controller.js').Controller} Controller */

/** @param {unknown} err */
const msg = (err) => (err instanceof Error ? err.message : String(err));

/**
 * @param {{name: string, color?: string, local?: boolean}} who
 */
export function makeTile(who) {
  const video = h('video', { class: 'tile-video' });
  video.autoplay = true;
  video.playsInline = true;
  video.muted = true; // sound goes through the audio element (remote) or nowhere (local)
  const audio = who.local ? null : h('audio');
  if (audio) audio.autoplay = true;
  const micOff = h('span', { class: 'ind', attrs: { title: 'Muted', 'aria-label': 'Muted' } }, [icon('micOff')]);
  const camOff = h('span', { class: 'ind', attrs: { title: 'Camera off', 'aria-label': 'Camera off' } }, [icon('camOff')]);
  const sharing = h('span', { class: 'ind', attrs: { title: 'Sharing screen', 'aria-label': 'Sharing screen' } }, [icon('screen')]);
  const state = h('span', { class: 'tile-state' });
  const nameEl = h('span', { text: who.local ? who.name + ' (you)' : who.name });
  const avatarBox = h('div', { class: 'tile-avatar' }, [avatar(who.name, who.color, 'huge')]);
  const el = h('div', { class: 'tile' + (who.local ? ' local' : '') }, [
    video,
    avatarBox,
    h('div', { class: 'tile-label' }, [nameEl, state, micOff, camOff, sharing]),
    audio,
  ]);
  let shown = { name: who.name, color: who.color };
  /** @type {MediaStream|null} */
  let current = null;
  let stopSpeaking = () => {};

  return {
    el,
    /**
     * @param {MediaStream|null} stream
     * @param {MediaFlags} flags
     * @param {string} [status] e.g. "connecting…"
     */
    update(stream, flags, status = '') {
      if (stream !== current) {
        current = stream;
        video.srcObject = stream;
        if (audio) audio.srcObject = stream;
        stopSpeaking();
        stopSpeaking = stream ? watchSpeaking(stream, (on) => el.classList.toggle('speaking', on)) : () => {};
      }
      // A new track may join an existing stream; re-attach so the element picks it up.
      if (stream && video.paused && stream.getVideoTracks().length) video.play().catch(() => {});
      const showVideo = !!stream && stream.getVideoTracks().length > 0 && (flags.video || flags.screen);
      el.classList.toggle('has-video', showVideo);
      el.classList.toggle('mirrored', !!who.local && !flags.screen);
      micOff.hidden = flags.audio;
      camOff.hidden = flags.video || flags.screen;
      sharing.hidden = !flags.screen;
      state.textContent = status;
    },
    /** The person's name or colour became known. @param {string} name @param {string} [color] */
    rename(name, color) {
      if (name === shown.name && color === shown.color) return;
      shown = { name, color };
      nameEl.textContent = who.local ? name + ' (you)' : name;
      avatarBox.replaceChildren(avatar(name, color, 'huge'));
    },
    destroy() {
      stopSpeaking();
      video.srcObject = null;
      if (audio) audio.srcObject = null;
      el.remove();
    },
  };
}

/** A clock that counts up from `startedAt`. */
export function makeTimer() {
  const el = h('span', { class: 'call-timer', attrs: { 'aria-label': 'Call duration' } });
  /** @type {number|null} */
  let since = null;
  const tick = () => {
    el.textContent = since ? duration(Date.now() - since) : '';
  };
  const timer = setInterval(tick, 1000);
  return {
    el,
    /** @param {number|null} startedAt */
    set(startedAt) {
      since = startedAt;
      tick();
    },
    stop: () => clearInterval(timer),
  };
}

/**
 * @param {Controller} ctrl
 * @param {() => void} onHangup
 */
export function makeControls(ctrl, onHangup) {
  const media = ctrl.media;
  /** @param {Promise<unknown>|unknown} p */
  const guard = (p) => Promise.resolve(p).catch((e) => toast(msg(e), 'error'));
  const mute = iconButton(icon('mic'), 'Mute', () => media.setAudio(!media.flags.audio), 'toggle');
  const cam = iconButton(icon('cam'), 'Turn camera off', () => guard(media.setVideo(!media.flags.video)), 'toggle');
  const screen = iconButton(icon('screen'), 'Share screen', () => guard(media.flags.screen ? media.stopScreen() : media.startScreen()), 'toggle');
  screen.hidden = !navigator.mediaDevices || typeof navigator.mediaDevices.getDisplayMedia !== 'function';
  const devices = iconButton(icon('settings'), 'Choose microphone and camera', () => guard(openDevices(ctrl)));
  const hang = iconButton(icon('hangup'), 'Hang up', onHangup, 'hangup');
  const el = h('div', { class: 'call-controls', attrs: { role: 'toolbar', 'aria-label': 'Call controls' } }, [mute, cam, screen, devices, hang]);

  /** @param {HTMLButtonElement} b @param {boolean} on @param {import('./icons.js').IconName} i @param {string} label */
  const set = (b, on, i, label) => {
    b.replaceChildren(icon(i));
    b.setAttribute('aria-label', label);
    b.title = label;
    b.setAttribute('aria-pressed', String(on));
  };
  const update = () => {
    const f = media.flags;
    set(mute, !f.audio, f.audio ? 'mic' : 'micOff', f.audio ? 'Mute' : 'Unmute');
    set(cam, !f.video, f.video ? 'cam' : 'camOff', f.video ? 'Turn camera off' : 'Turn camera on');
    set(screen, f.screen, 'screen', f.screen ? 'Stop sharing' : 'Share screen');
  };
  const off = media.on('change', update);
  update();
  return { el, update, destroy: off };
}

/** Device picker for microphone and camera. @param {Controller} ctrl */
async function openDevices(ctrl) {
  const all = await ctrl.media.devices();
  /** @param {'audioinput'|'videoinput'} kind @param {string} label */
  const select = (kind, label) => {
    const current = kind === 'audioinput' ? ctrl.media.audioTrack : ctrl.media.cameraTrack;
    const currentId = current ? current.getSettings().deviceId : ctrl.media.deviceIds[kind];
    const sel = h('select', { attrs: { id: 'dev-' + kind } });
    const list = all.filter((d) => d.kind === kind);
    list.forEach((d, i) => {
      const o = h('option', { text: d.label || `${label} ${i + 1}`, attrs: { value: d.deviceId } });
      o.selected = d.deviceId === currentId;
      sel.append(o);
    });
    sel.disabled = !list.length;
    sel.addEventListener('change', () => ctrl.media.useDevice(kind, sel.value).catch((e) => toast(msg(e), 'error')));
    return h('div', { class: 'field' }, [h('label', { text: label, attrs: { for: 'dev-' + kind } }), sel]);
  };
  openDialog('Devices', [select('audioinput', 'Microphone'), select('videoinput', 'Camera')]);
}
