// Users and relationships: who owns or operates which things.
import { h, mount, field, table, badge, fmtTime, section, formBox, confirmButton, toast } from '../dom.js';
import { all, get, post, patch, del, enc, showProblem, clearProblem } from '../api.js';

const ROLES = ['admin', 'operator', 'user'];
const RELATIONS = ['owner', 'operator', 'viewer'];

export async function render(root, _params, ctx) {
  const users = h('div');
  const rels = h('div');
  const relFilter = h('input', { name: 'subject', type: 'search', placeholder: 'user name' });

  async function loadUsers() {
    const us = await all('/api/v1/users');
    mount(users, table([
      { label: 'Username', get: (u) => h('a', { href: '#/users/' + enc(u.username), text: u.username }) },
      { label: 'Name', get: (u) => u.displayName || '' },
      { label: 'Roles', get: (u) => (u.roles || []).join(', ') },
      { label: 'State', get: (u) => u.disabled ? badge('disabled', 'off') : badge('active', 'ok') },
      { label: 'Created', get: (u) => fmtTime(u.createdAt) },
      { label: '', get: (u) => ctx.isAdmin && u.username !== ctx.session.username ? h('span.btns', {},
        btn(u.disabled ? 'Enable' : 'Disable', async () => {
          await patch('/api/v1/users/' + enc(u.username), { disabled: !u.disabled }, { ifMatch: '"' + u.version + '"' });
          loadUsers();
        }),
        confirmButton('Delete', `Delete ${u.username}?`, async () => {
          try { await del('/api/v1/users/' + enc(u.username)); loadUsers(); loadRels(); } catch (e) { toast(e.message, 'error'); }
        }, 'btn-small btn-danger')) : '' },
    ], us, { label: 'Users' }));
  }
  async function loadRels() {
    const q = new URLSearchParams({ subjectKind: 'user' });
    if (relFilter.value.trim()) q.set('subject', relFilter.value.trim());
    const r = await get('/api/v1/relationships?' + q);
    mount(rels, table([
      { label: 'User', get: (x) => h('a', { href: '#/users/' + enc(x.subject), text: x.subject }) },
      { label: 'Relation', get: (x) => x.relation },
      { label: 'Thing', get: (x) => x.objectKind === 'thing' ? h('a', { href: '#/things/' + enc(x.object), text: x.object }) : x.objectKind + '/' + x.object },
      { label: 'Since', get: (x) => fmtTime(x.createdAt) },
      { label: '', get: (x) => ctx.isAdmin ? confirmButton('Remove', 'Remove?', async () => {
        const p = new URLSearchParams({ subjectKind: x.subjectKind, subject: x.subject, relation: x.relation, objectKind: x.objectKind, object: x.object });
        try { await del('/api/v1/relationships?' + p); loadRels(); } catch (e) { toast(e.message, 'error'); }
      }, 'btn-small') : '' },
    ], r.items || [], { label: 'Relationships', empty: 'No relationships.' }));
  }
  const relSearch = h('form.filters', { role: 'search', 'aria-label': 'Filter relationships' }, field('User', relFilter),
    h('div.actions', {}, h('button', { type: 'submit', text: 'Filter' })));
  relSearch.addEventListener('submit', (ev) => { ev.preventDefault(); loadRels(); });

  let userForm = null;
  let relForm = null;
  if (ctx.isAdmin) {
    const name = h('input', { name: 'username', type: 'text', required: true, autocomplete: 'off' });
    const pass = h('input', { name: 'password', type: 'password', autocomplete: 'new-password' });
    const display = h('input', { name: 'displayName', type: 'text' });
    const role = h('select', { name: 'roles' }, ROLES.map((r) => h('option', { value: r, text: r })));
    role.value = 'user';
    userForm = h('form.card', { 'aria-label': 'Create a user' }, formBox(),
      h('div.row', {}, field('Username', name), field('Password', pass), field('Display name', display), field('Role', role)),
      h('div.actions', {}, h('button.btn-primary', { type: 'submit', text: 'Create user' })));
    userForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearProblem(userForm);
      const body = { username: name.value.trim(), roles: [role.value] };
      if (pass.value) body.password = pass.value;
      if (display.value.trim()) body.displayName = display.value.trim();
      try { await post('/api/v1/users', body); toast('Created user ' + body.username + '.'); userForm.reset(); role.value = 'user'; loadUsers(); } catch (e) { showProblem(userForm, e); }
    });

    const subj = h('input', { name: 'subject', type: 'text', required: true, placeholder: 'alice' });
    const rel = h('select', { name: 'relation' }, RELATIONS.map((r) => h('option', { value: r, text: r })));
    const obj = h('input', { name: 'object', type: 'text', required: true, placeholder: 'lamp-1' });
    relForm = h('form.card', { 'aria-label': 'Add a relationship' }, formBox(),
      h('div.row', {}, field('User', subj), field('Relation', rel), field('Thing', obj)),
      h('div.actions', {}, h('button.btn-primary', { type: 'submit', text: 'Add relationship' })));
    relForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearProblem(relForm);
      try {
        await post('/api/v1/relationships', { subjectKind: 'user', subject: subj.value.trim(), relation: rel.value, objectKind: 'thing', object: obj.value.trim() });
        relForm.reset();
        loadRels();
      } catch (e) { showProblem(relForm, e); }
    });
  }
  mount(root, h('h1', { text: 'Users & relationships' }),
    section('Users', users, userForm),
    section('Relationships', h('p.muted', { text: 'A user with the role "user" sees only the things they have a relationship with.' }), relSearch, rels, relForm));
  await Promise.all([loadUsers(), loadRels()]);
}

function btn(label, fn) {
  const b = h('button', { type: 'button', class: 'btn-small', text: label });
  b.addEventListener('click', async () => { try { await fn(); } catch (e) { toast(e.message, 'error'); } });
  return b;
}
