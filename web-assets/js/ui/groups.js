// @ts-check
/** Group dialogs: create, browse and join, and the member panel (add member, leave). */
import { h, avatar, clear, toast } from './dom.js';
import { openDialog } from './dialog.js';

/** @typedef {import('../controller.js').Controller} Controller */
/** @typedef {import('../types.js').User} User */

/** @param {unknown} err */
const msg = (err) => (err instanceof Error ? err.message : String(err));

/**
 * A person row with a trailing control.
 * @param {Controller} ctrl @param {User} u @param {Node|null} trailing @param {string} [tag]
 */
function personRow(ctrl, u, trailing, tag) {
  const name = u.displayName || u.username;
  return h('li', { class: 'person' }, [
    h('span', { class: 'avatar-wrap' }, [avatar(name, u.avatarColor, 'small'), ctrl.store.online.has(u.id) ? h('span', { class: 'dot' }) : null]),
    h('span', { class: 'person-name' }, [h('span', { text: name }), h('small', { text: ' @' + u.username + (tag ? ' · ' + tag : '') })]),
    trailing,
  ]);
}

/** @param {Controller} ctrl */
export function openCreateGroup(ctrl) {
  const name = h('input', { attrs: { id: 'g-name', required: '', maxlength: '100', autocomplete: 'off' } });
  const desc = h('textarea', { attrs: { id: 'g-desc', rows: '2', maxlength: '500' } });
  const filter = h('input', { attrs: { type: 'search', placeholder: 'Filter people', 'aria-label': 'Filter people' } });
  const people = h('ul', { class: 'people pick' });
  const err = h('p', { class: 'form-error', attrs: { role: 'alert' } });
  /** @type {Set<string>} */
  const chosen = new Set();
  const me = ctrl.store.me ? ctrl.store.me.id : '';

  const renderPeople = () => {
    const q = filter.value.trim().toLowerCase();
    const users = [...ctrl.store.users.values()]
      .filter((u) => u.id !== me && (!q || u.username.toLowerCase().includes(q) || (u.displayName || '').toLowerCase().includes(q)))
      .sort((a, b) => (a.displayName || a.username).localeCompare(b.displayName || b.username))
      .slice(0, 200);
    clear(people);
    for (const u of users) {
      const box = h('input', { attrs: { type: 'checkbox', 'aria-label': 'Add ' + (u.displayName || u.username) } });
      box.checked = chosen.has(u.id);
      box.addEventListener('change', () => (box.checked ? chosen.add(u.id) : chosen.delete(u.id)));
      people.append(h('label', {}, [personRow(ctrl, u, box)]));
    }
  };
  filter.addEventListener('input', renderPeople);

  const create = h('button', { class: 'primary', text: 'Create group', attrs: { type: 'submit' } });
  const form = h('form', { class: 'stack' }, [
    h('div', { class: 'field' }, [h('label', { text: 'Name', attrs: { for: 'g-name' } }), name]),
    h('div', { class: 'field' }, [h('label', { text: 'Description (optional)', attrs: { for: 'g-desc' } }), desc]),
    h('fieldset', {}, [h('legend', { text: 'Members' }), filter, people]),
    err,
    create,
  ]);
  const { close } = openDialog('New group', [form]);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    if (!name.value.trim()) {
      err.textContent = 'Give the group a name.';
      name.focus();
      return;
    }
    create.disabled = true;
    try {
      const g = await ctrl.createGroup(name.value.trim(), desc.value.trim(), [...chosen]);
      close();
      ctrl.open('g:' + g.id);
    } catch (e2) {
      err.textContent = msg(e2);
    } finally {
      create.disabled = false;
    }
  });
  renderPeople();
  name.focus();
}

/** @param {Controller} ctrl */
export async function openBrowseGroups(ctrl) {
  const list = h('ul', { class: 'people' }, [h('li', { class: 'empty', text: 'Loading…' })]);
  const { close } = openDialog('Groups', [list]);
  let groups;
  try {
    groups = await ctrl.allGroups();
  } catch (err) {
    list.replaceChildren(h('li', { class: 'form-error', text: msg(err) }));
    return;
  }
  const me = ctrl.store.me ? ctrl.store.me.id : '';
  clear(list);
  if (!groups.length) list.append(h('li', { class: 'empty', text: 'No groups yet. Create the first one.' }));
  for (const g of groups) {
    const member = g.members.includes(me);
    const btn = h('button', { class: member ? '' : 'primary', text: member ? 'Open' : 'Join', attrs: { type: 'button' } });
    btn.addEventListener('click', async () => {
      btn.disabled = true;
      try {
        if (!member) await ctrl.joinGroup(g.id);
        close();
        ctrl.open('g:' + g.id);
      } catch (err) {
        toast(msg(err), 'error');
        btn.disabled = false;
      }
    });
    list.append(h('li', { class: 'person' }, [
      avatar(g.name, undefined, 'small group'),
      h('span', { class: 'person-name' }, [
        h('span', { text: g.name }),
        h('small', { text: ` ${g.members.length} member${g.members.length === 1 ? '' : 's'}${g.description ? ' · ' + g.description : ''}` }),
      ]),
      btn,
    ]));
  }
}

/** Members, add member (admin only) and leave. @param {Controller} ctrl @param {string} groupId */
export function openGroupInfo(ctrl, groupId) {
  const { store } = ctrl;
  const body = h('div', { class: 'stack' });
  const { close } = openDialog('Group', [body]);
  const me = store.me ? store.me.id : '';

  const render = () => {
    const g = store.groups.get(groupId);
    if (!g) {
      close();
      return;
    }
    const members = h('ul', { class: 'people' });
    for (const id of g.members) {
      const u = store.users.get(id);
      if (u) members.append(personRow(ctrl, u, null, id === g.admin ? 'admin' : undefined));
    }
    /** @type {Node[]} */
    const parts = [
      h('h3', { text: g.name }),
      g.description ? h('p', { class: 'muted', text: g.description }) : h('span'),
      h('h4', { text: `${g.members.length} member${g.members.length === 1 ? '' : 's'}` }),
      members,
    ];
    if (g.admin === me) parts.push(addMemberBox(g.members));
    const leave = h('button', { class: 'danger', text: 'Leave group', attrs: { type: 'button' } });
    leave.addEventListener('click', async () => {
      if (!confirm(`Leave “${g.name}”?`)) return;
      try {
        await ctrl.leaveGroup(groupId);
        close();
      } catch (err) {
        toast(msg(err), 'error');
      }
    });
    parts.push(leave);
    body.replaceChildren(...parts);
  };

  /** @param {string[]} current */
  const addMemberBox = (current) => {
    const input = h('input', { attrs: { type: 'search', placeholder: 'Add someone by name', 'aria-label': 'Add member' } });
    const found = h('ul', { class: 'people' });
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    let t;
    input.addEventListener('input', () => {
      clearTimeout(t);
      t = setTimeout(async () => {
        const q = input.value.trim();
        clear(found);
        if (!q) return;
        try {
          const users = (await ctrl.searchUsers(q.slice(0, 64))).filter((u) => !current.includes(u.id));
          for (const u of users.slice(0, 20)) {
            const add = h('button', { class: 'primary', text: 'Add', attrs: { type: 'button' } });
            add.addEventListener('click', async () => {
              add.disabled = true;
              try {
                await ctrl.addMember(groupId, u.id);
                render();
              } catch (err) {
                toast(msg(err), 'error');
                add.disabled = false;
              }
            });
            found.append(personRow(ctrl, u, add));
          }
        } catch (err) {
          found.append(h('li', { class: 'form-error', text: msg(err) }));
        }
      }, 250);
    });
    return h('div', { class: 'stack' }, [h('h4', { text: 'Add member' }), input, found]);
  };

  const off = store.on('groups', render);
  const dlg = body.closest('dialog');
  if (dlg) dlg.addEventListener('close', off);
  render();
}
