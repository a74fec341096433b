// @ts-check
/**
 * The group call view: a grid of up to six tiles (me and each peer) with video
 * or avatar, mute/camera indicators from `media:state`, speaking rings, a timer
 * and the shared controls.
 */
import { h, toast } from './dom.js';
import { makeTile, makeTimer, makeControls } from './call-parts.js';

/** @typedef {import('../controller.js').Controller} Controller */
/** @typedef {import('../protocol/group-calls.js').GroupCallState} GroupCallState */

/** @param {HTMLElement} layer @param {Controller} ctrl */
export function mountGroupCallView(layer, ctrl) {
  const { store, groupCalls } = ctrl;
  /** @type {{grid: HTMLElement, title: HTMLElement, status: HTMLElement, timer: ReturnType<typeof makeTimer>, controls: ReturnType<typeof makeControls>, local: ReturnType<typeof makeTile>, tiles: Map<string, ReturnType<typeof makeTile>>}|null} */
  let view = null;

  const close = () => {
    if (!view) return;
    view.timer.stop();
    view.controls.destroy();
    view.local.destroy();
    for (const t of view.tiles.values()) t.destroy();
    view = null;
    layer.replaceChildren();
    layer.hidden = true;
  };

  const open = () => {
    const me = store.me;
    const local = makeTile({ name: me ? me.displayName || me.username : 'You', color: me?.avatarColor, local: true });
    const grid = h('div', { class: 'grid' }, [local.el]);
    const title = h('strong');
    const status = h('span', { class: 'call-status' });
    const timer = makeTimer();
    const controls = makeControls(ctrl, () => groupCalls.leave());
    layer.replaceChildren(h('section', { class: 'call-view group', attrs: { 'aria-label': 'Group call' } }, [
      h('header', { class: 'call-head' }, [title, status, timer.el]),
      grid,
      controls.el,
    ]));
    layer.hidden = false;
    view = { grid, title, status, timer, controls, local, tiles: new Map() };
  };

  /** @param {GroupCallState|null} s */
  const render = (s) => {
    if (!s) {
      close();
      return;
    }
    if (!view) open();
    const v = /** @type {NonNullable<typeof view>} */ (view);
    v.title.textContent = store.groups.get(s.groupId)?.name || 'Group call';
    v.status.textContent = s.phase === 'joining' ? 'Joining…' : s.participants.length ? '' : 'Waiting for others…';
    v.timer.set(s.phase === 'active' ? s.startedAt : null);
    v.local.update(ctrl.media.stream, ctrl.media.flags);
    const seen = new Set();
    for (const p of s.participants) {
      seen.add(p.userId);
      let tile = v.tiles.get(p.userId);
      if (!tile) {
        tile = makeTile({ name: store.name(p.userId), color: store.users.get(p.userId)?.avatarColor });
        v.tiles.set(p.userId, tile);
        v.grid.append(tile.el);
      }
      const st = p.state === 'connected' ? '' : p.state === 'failed' ? 'connection failed' : 'connecting…';
      tile.update(p.stream, p.media, st);
    }
    for (const [id, tile] of v.tiles) {
      if (!seen.has(id)) {
        tile.destroy();
        v.tiles.delete(id);
      }
    }
    v.grid.dataset.count = String(v.tiles.size + 1);
  };

  groupCalls.on('change', render);
  // Names of people who signed up after our user list was loaded arrive later.
  store.on('list', () => {
    if (view) for (const [id, tile] of view.tiles) tile.rename(store.name(id), store.users.get(id)?.avatarColor);
  });
  groupCalls.on('ended', ({ reason, message }) => {
    if (message) toast(message, 'error');
    else if (reason === 'connection-lost') toast('Left the call: connection to the server lost.', 'error');
  });
  layer.hidden = true;
}
