// @ts-check
/**
 * Files inside messages. Downloads need the Authorization header, so files are
 * fetched as blobs (lazily, when they scroll into view) and shown through object
 * URLs: images inline with a click-to-enlarge viewer, audio and video in players,
 * anything else as a card with name, size and a download button.
 */
import { h, toast } from './dom.js';
import { icon } from './icons.js';
import { fileSize } from './format.js';
import { openDialog } from './dialog.js';

/** @typedef {import('../types.js').FileInfo} FileInfo */
/** @typedef {(url: string) => Promise<Blob>} FetchBlob */

/** url → object URL, so re-renders and repeated files cost nothing. */
/** @type {Map<string, Promise<string>>} */
const cache = new Map();

/** @param {FetchBlob} fetchBlob @param {string} url */
function objectUrl(fetchBlob, url) {
  let p = cache.get(url);
  if (!p) {
    p = fetchBlob(url).then((b) => URL.createObjectURL(b));
    p.catch(() => cache.delete(url));
    cache.set(url, p);
  }
  return p;
}

/** Forget every object URL (logout). */
export function releaseAll() {
  for (const p of cache.values()) p.then((u) => URL.revokeObjectURL(u), () => {});
  cache.clear();
}

/** @type {IntersectionObserver|null} */
let observer = null;
/** @type {WeakMap<Element, () => void>} */
const onVisible = new WeakMap();

/** Run `load` once `el` is near the viewport. @param {Element} el @param {() => void} load */
function whenVisible(el, load) {
  if (!('IntersectionObserver' in window)) {
    load();
    return;
  }
  observer ||= new IntersectionObserver(
    (entries) => {
      for (const e of entries) {
        if (!e.isIntersecting) continue;
        observer?.unobserve(e.target);
        const fn = onVisible.get(e.target);
        onVisible.delete(e.target);
        if (fn) fn();
      }
    },
    { rootMargin: '400px 0px' },
  );
  onVisible.set(el, load);
  observer.observe(el);
}

/** @param {FileInfo} file @param {FetchBlob} fetchBlob */
export function renderFile(file, fetchBlob) {
  const type = file.mimeType || '';
  if (type.startsWith('image/')) return imageEl(file, fetchBlob);
  if (type.startsWith('audio/') || type.startsWith('video/')) return playerEl(file, fetchBlob, type.startsWith('video/'));
  return cardEl(file, fetchBlob);
}

/** @param {FileInfo} file @param {FetchBlob} fetchBlob */
function imageEl(file, fetchBlob) {
  const img = h('img', { class: 'att-img', attrs: { alt: file.originalName, decoding: 'async' } });
  const btn = h('button', { class: 'att-img-btn loading', attrs: { type: 'button', 'aria-label': 'Enlarge ' + file.originalName } }, [img]);
  whenVisible(btn, () =>
    objectUrl(fetchBlob, file.url).then(
      (u) => {
        img.src = u;
        btn.classList.remove('loading');
      },
      () => btn.replaceWith(cardEl(file, fetchBlob)),
    ),
  );
  btn.addEventListener('click', () => {
    if (!img.src) return;
    const big = h('img', { class: 'lightbox-img', attrs: { alt: file.originalName, src: img.src } });
    const { dlg } = openDialog(file.originalName, [big, downloadButton(file, fetchBlob)]);
    dlg.classList.add('lightbox');
  });
  return btn;
}

/** @param {FileInfo} file @param {FetchBlob} fetchBlob @param {boolean} video */
function playerEl(file, fetchBlob, video) {
  const player = video ? h('video', { class: 'att-video' }) : h('audio', { class: 'att-audio' });
  player.controls = true;
  player.preload = 'metadata';
  if (player instanceof HTMLVideoElement) player.playsInline = true;
  const wrap = h('div', { class: 'att-media' }, [player, h('small', { class: 'att-caption', text: `${file.originalName} · ${fileSize(file.size)}` })]);
  whenVisible(wrap, () =>
    objectUrl(fetchBlob, file.url).then(
      (u) => (player.src = u),
      () => wrap.replaceWith(cardEl(file, fetchBlob)),
    ),
  );
  return wrap;
}

/** @param {FileInfo} file @param {FetchBlob} fetchBlob */
function cardEl(file, fetchBlob) {
  return h('div', { class: 'att-card' }, [
    icon('file'),
    h('span', { class: 'att-meta' }, [h('span', { class: 'att-name', text: file.originalName }), h('small', { text: fileSize(file.size) })]),
    downloadButton(file, fetchBlob),
  ]);
}

/** @param {FileInfo} file @param {FetchBlob} fetchBlob */
function downloadButton(file, fetchBlob) {
  const btn = h('button', { class: 'icon-btn', attrs: { type: 'button', 'aria-label': 'Download ' + file.originalName, title: 'Download' } }, [icon('download')]);
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    try {
      const u = await objectUrl(fetchBlob, file.url);
      const a = h('a', { attrs: { href: u, download: file.originalName } });
      document.body.append(a);
      a.click();
      a.remove();
    } catch (err) {
      toast(err instanceof Error ? err.message : 'Download failed.', 'error');
    } finally {
      btn.disabled = false;
    }
  });
  return btn;
}
