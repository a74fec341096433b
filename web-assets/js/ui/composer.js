// @ts-check
/**
 * The message composer: Enter sends, Shift+Enter adds a line, drafts are kept per
 * conversation, and files come from the attach button, drag-and-drop or pasted
 * images. Each upload shows a progress bar with cancel, then becomes a file message.
 */
import { h, iconButton, toast } from './dom.js';
import { icon } from './icons.js';
import { fileSize } from './format.js';

/** @typedef {import('../controller.js').Controller} Controller */

const MAX_FILE = 50 * 1024 * 1024;
const MAX_CHARS = 10_000;

/**
 * @param {HTMLElement} root      where the composer lives
 * @param {HTMLElement} dropZone  the element that accepts dropped files
 * @param {Controller} ctrl
 * @returns {{setKey: (key: string|null) => void, focus: () => void}}
 */
export function mountComposer(root, dropZone, ctrl) {
  /** @type {string|null} */
  let key = null;
  /** @type {Map<string, string>} */
  const drafts = new Map();

  const input = h('textarea', {
    class: 'composer-input',
    attrs: { rows: '1', placeholder: 'Write a message', 'aria-label': 'Message', maxlength: String(MAX_CHARS), enterkeyhint: 'send' },
  });
  const picker = h('input', { attrs: { type: 'file', multiple: '', hidden: '', 'aria-hidden': 'true', tabindex: '-1' } });
  const sendBtn = iconButton(icon('send'), 'Send', () => send(), 'send');
  const attachBtn = iconButton(icon('attach'), 'Attach files', () => picker.click());
  const uploads = h('ul', { class: 'uploads', attrs: { 'aria-label': 'Uploads' } });
  root.replaceChildren(uploads, h('div', { class: 'composer-row' }, [attachBtn, input, sendBtn, picker]));

  const grow = () => {
    input.style.height = 'auto';
    input.style.height = Math.min(input.scrollHeight, 200) + 'px';
    input.style.overflowY = input.scrollHeight > 200 ? 'auto' : 'hidden';
  };

  const send = () => {
    if (!key) return;
    const text = input.value;
    if (!text.trim()) return;
    if ([...text].length > MAX_CHARS) {
      toast(`Messages are limited to ${MAX_CHARS} characters.`, 'error');
      return;
    }
    ctrl.sendText(key, text);
    input.value = '';
    drafts.delete(key);
    grow();
    input.focus();
  };

  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  input.addEventListener('input', () => {
    grow();
    if (!key) return;
    drafts.set(key, input.value);
    if (input.value.trim()) ctrl.typing(key);
    else ctrl.stopTyping(key);
  });

  /** @param {Iterable<File>} files */
  const uploadAll = (files) => {
    if (!key) return;
    for (const f of files) uploadOne(key, f);
  };

  /** @param {string} target @param {File} file */
  const uploadOne = (target, file) => {
    const name = file.name || `pasted-${new Date().toISOString().replace(/[:.]/g, '-')}.${(file.type.split('/')[1] || 'bin').replace(/[^a-z0-9]/gi, '')}`;
    if (file.size > MAX_FILE) {
      toast(`${name} is larger than 50 MB.`, 'error');
      return;
    }
    const bar = h('progress', { attrs: { max: '100', value: '0', 'aria-label': 'Uploading ' + name } });
    const label = h('small', { text: fileSize(file.size) });
    const up = ctrl.upload(file, name, (loaded, total) => {
      bar.value = total ? Math.round((loaded / total) * 100) : 0;
      label.textContent = `${fileSize(loaded)} / ${fileSize(total)}`;
    });
    const cancel = iconButton(icon('close'), 'Cancel upload of ' + name, () => up.abort());
    const row = h('li', { class: 'upload' }, [h('span', { class: 'upload-name', text: name }), bar, label, cancel]);
    uploads.append(row);
    up.promise.then(
      (info) => {
        row.remove();
        ctrl.sendFile(target, info);
      },
      (err) => {
        row.remove();
        if (err && err.code !== 'aborted') toast(`${name}: ${err.message || 'upload failed'}`, 'error');
      },
    );
  };

  picker.addEventListener('change', () => {
    if (picker.files) uploadAll([...picker.files]);
    picker.value = '';
  });

  input.addEventListener('paste', (e) => {
    const files = e.clipboardData ? [...e.clipboardData.files] : [];
    if (!files.length) return;
    e.preventDefault();
    uploadAll(files);
  });

  let depth = 0;
  dropZone.addEventListener('dragenter', (e) => {
    if (!key || !e.dataTransfer || !e.dataTransfer.types.includes('Files')) return;
    e.preventDefault();
    depth++;
    dropZone.classList.add('dropping');
  });
  dropZone.addEventListener('dragover', (e) => {
    if (key && e.dataTransfer && e.dataTransfer.types.includes('Files')) e.preventDefault();
  });
  dropZone.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (!depth) dropZone.classList.remove('dropping');
  });
  dropZone.addEventListener('drop', (e) => {
    depth = 0;
    dropZone.classList.remove('dropping');
    if (!e.dataTransfer || !e.dataTransfer.files.length) return;
    e.preventDefault();
    uploadAll([...e.dataTransfer.files]);
  });

  return {
    setKey(k) {
      if (key && key !== k) ctrl.stopTyping(key);
      key = k;
      input.value = (k && drafts.get(k)) || '';
      grow();
    },
    focus() {
      if (window.matchMedia('(pointer: fine)').matches) input.focus();
    },
  };
}
