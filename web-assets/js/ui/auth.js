// @ts-check
/**
 * Login and signup forms with inline, per-field errors. The form only collects
 * and validates; `submit` (from app.js) talks to the server and throws ApiError.
 */
import { h } from './dom.js';

/** @typedef {{mode: 'login'|'signup', username: string, password: string, displayName: string}} AuthFields */

const USERNAME = /^[A-Za-z0-9_.-]{3,32}$/;

/** Count characters as the server does (Unicode scalar values). @param {string} s */
const chars = (s) => [...s].length;

/**
 * @param {HTMLElement} root
 * @param {(f: AuthFields) => Promise<void>} submit
 */
export function renderAuth(root, submit) {
  /** @type {'login'|'signup'} */
  let mode = 'login';

  const field = (/** @type {string} */ id, /** @type {string} */ label, /** @type {Record<string,string>} */ attrs) => {
    const input = h('input', { attrs: { id, name: id, ...attrs, 'aria-describedby': id + '-err' } });
    const err = h('p', { class: 'field-error', attrs: { id: id + '-err', 'aria-live': 'polite' } });
    const wrap = h('div', { class: 'field' }, [h('label', { text: label, attrs: { for: id } }), input, err]);
    return { input, err, wrap };
  };
  const user = field('username', 'Username', { autocomplete: 'username', required: '', autocapitalize: 'none', spellcheck: 'false' });
  const name = field('displayName', 'Display name (optional)', { autocomplete: 'name', maxlength: '64' });
  const pass = field('password', 'Password', { type: 'password', autocomplete: 'current-password', required: '' });
  const formErr = h('p', { class: 'form-error', attrs: { role: 'alert' } });
  const title = h('h1', { text: 'Sign in' });
  const submitBtn = h('button', { class: 'primary', text: 'Sign in', attrs: { type: 'submit' } });
  const switchText = h('span');
  const switchBtn = h('button', { class: 'link', attrs: { type: 'button' } });

  const form = h('form', { class: 'auth-card', attrs: { novalidate: '' } }, [
    h('div', { class: 'brand' }, [h('span', { class: 'brand-mark', text: 'QM', attrs: { 'aria-hidden': 'true' } }), h('span', { text: 'Quick Meet' })]),
    title,
    user.wrap,
    name.wrap,
    pass.wrap,
    formErr,
    submitBtn,
    h('p', { class: 'auth-switch' }, [switchText, ' ', switchBtn]),
  ]);

  const setMode = (/** @type {'login'|'signup'} */ m) => {
    mode = m;
    const signup = m === 'signup';
    title.textContent = signup ? 'Create an account' : 'Sign in';
    submitBtn.textContent = signup ? 'Create account' : 'Sign in';
    switchText.textContent = signup ? 'Already have an account?' : 'New here?';
    switchBtn.textContent = signup ? 'Sign in' : 'Create an account';
    name.wrap.hidden = !signup;
    pass.input.setAttribute('autocomplete', signup ? 'new-password' : 'current-password');
    for (const f of [user, name, pass]) f.err.textContent = '';
    formErr.textContent = '';
  };
  switchBtn.addEventListener('click', () => setMode(mode === 'login' ? 'signup' : 'login'));

  /** @returns {boolean} */
  const validate = () => {
    let ok = true;
    const u = user.input.value.trim();
    const p = pass.input.value;
    user.err.textContent = '';
    pass.err.textContent = '';
    if (!u) {
      user.err.textContent = 'Enter your username.';
      ok = false;
    } else if (mode === 'signup' && !USERNAME.test(u)) {
      user.err.textContent = '3–32 characters: letters, digits, _ . -';
      ok = false;
    }
    if (!p) {
      pass.err.textContent = 'Enter your password.';
      ok = false;
    } else if (mode === 'signup' && (chars(p) < 8 || chars(p) > 256)) {
      pass.err.textContent = 'Use 8 to 256 characters.';
      ok = false;
    }
    for (const f of [user, pass]) f.input.setAttribute('aria-invalid', f.err.textContent ? 'true' : 'false');
    return ok;
  };

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    formErr.textContent = '';
    if (!validate()) return;
    submitBtn.disabled = true;
    try {
      await submit({ mode, username: user.input.value.trim(), password: pass.input.value, displayName: name.input.value.trim() });
    } catch (err) {
      const code = err && typeof err === 'object' && 'code' in err ? err.code : '';
      const msg = err instanceof Error ? err.message : String(err);
      if (code === 'username_taken' || (mode === 'signup' && err && typeof err === 'object' && 'status' in err && err.status === 409)) {
        user.err.textContent = 'That username is taken.';
        user.input.setAttribute('aria-invalid', 'true');
        user.input.focus();
      } else if (mode === 'login' && err && typeof err === 'object' && 'status' in err && err.status === 401) {
        formErr.textContent = 'Wrong username or password.';
      } else {
        formErr.textContent = msg;
      }
    } finally {
      submitBtn.disabled = false;
    }
  });

  setMode('login');
  root.replaceChildren(h('div', { class: 'auth-page' }, [form]));
  user.input.focus();
}
