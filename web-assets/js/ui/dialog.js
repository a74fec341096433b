// @ts-check
/** Modal dialogs on the native <dialog> element (focus trap and Esc for free). */
import { h } from './dom.js';
import { icon } from './icons.js';

/**
 * Open a modal with a title and body; returns the dialog and a close function.
 * @param {string} title
 * @param {Node[]} body
 * @param {() => void} [onClose]
 */
export function openDialog(title, body, onClose) {
  const closeBtn = h('button', { class: 'icon-btn', attrs: { type: 'button', 'aria-label': 'Close', title: 'Close' } }, [icon('close')]);
  const dlg = h('dialog', { class: 'dialog', attrs: { 'aria-label': title } }, [
    h('header', { class: 'dialog-head' }, [h('h2', { text: title }), closeBtn]),
    h('div', { class: 'dialog-body' }, body),
  ]);
  const close = () => dlg.close();
  closeBtn.addEventListener('click', close);
  dlg.addEventListener('close', () => {
    dlg.remove();
    if (onClose) onClose();
  });
  dlg.addEventListener('click', (e) => {
    if (e.target === dlg) close(); // click on the backdrop
  });
  document.body.append(dlg);
  dlg.showModal();
  return { dlg, close };
}
