// One user: role, name and email, password reset, enable/disable, their
// console sessions (sign one out) and the API tokens acting as them.
import { h, mount, field, table, badge, fmtTime, section, formBox, confirmButton, toast, fill } from '../dom.js';
import { get, all, patch, del, enc, showProblem, clearProblem } from '../api.js';
import { apiTokenForm } from './apitokens.js';

const ROLES = ['admin', 'operator', 'user'];

export async function render(root, params, ctx) {
  const name = params.name;
  const path = '/api/v1/users/' + enc(name);
  const head = h('div');
  const facts = h('div');
  const sessions = h('div');
  const tokens = h('div');
  const tokenOut = h('div', { 'aria-live': 'polite' });
  let user = null;
  let etag = '';

  async function load() {
    const r = await get(path, { withEtag: true });
    user = r.data;
    etag = r.etag;
    const actions = [];
    if (ctx.isAdmin && name !== ctx.session.username) {
      const toggle = h('button', { type: 'button', text: user.disabled ? 'Enable' : 'Disable' });
      toggle.addEventListener('click', async () => {
        try { await patch(path, { disabled: !user.disabled }, { ifMatch: etag }); toast((user.disabled ? 'Enabled ' : 'Disabled ') + name + '.'); await load(); } catch (e) { toast(e.message, 'error'); }
      });
      actions.push(toggle);
    }
    mount(head, h('div.page-head', {},
      h('h1', {}, name, ' ', user.disabled ? badge('disabled', 'off') : badge('active', 'ok')),
      h('div.btns', {}, actions)));
    mount(facts, h('dl.facts.facts2', {},
      h('dt', { text: 'Display name' }), h('dd', { text: user.displayName || '—' }),
      h('dt', { text: 'Email' }), h('dd', { text: user.email || '—' }),
      h('dt', { text: 'Roles' }), h('dd', { text: (user.roles || []).join(', ') }),
      h('dt', { text: 'Created' }), h('dd', { text: fmtTime(user.createdAt) }),
      h('dt', { text: 'Updated' }), h('dd', { text: fmtTime(user.updatedAt) })));
    if (editForm) {
      editForm.elements.displayName.value = user.displayName || '';
      editForm.elements.email.value = user.email || '';
      editForm.elements.role.value = (user.roles || [])[0] || 'user';
    }
  }

  const loadSessions = () => loadSessionsInto(sessions, name);

  async function loadTokens() {
    await fill(tokens, async () => {
      const list = (await all('/api/v1/api-tokens')).filter((t) => t.username === name);
      return table([
        { label: 'Name', get: (t) => t.name },
        { label: 'ID', get: (t) => h('span.mono', { text: t.id }) },
        { label: 'Roles', get: (t) => (t.roles || []).join(', ') },
        { label: 'Created', get: (t) => fmtTime(t.createdAt) },
        { label: 'Expires', get: (t) => fmtTime(t.expiresAt) || 'never' },
        { label: '', get: (t) => confirmButton('Revoke', `Revoke ${t.name}?`, async () => {
          try { await del('/api/v1/api-tokens/' + enc(t.id)); toast('Revoked.'); await loadTokens(); } catch (e) { toast(e.message, 'error'); }
        }, 'btn-small btn-danger') },
      ], list, { label: 'API tokens of ' + name, empty: 'No API tokens act as this user.' });
    });
  }

  let editForm = null;
  let passForm = null;
  let tokenForm = null;
  if (ctx.isAdmin) {
    const display = h('input', { name: 'displayName', type: 'text' });
    const email = h('input', { name: 'email', type: 'text', inputmode: 'email', autocomplete: 'off' });
    const role = h('select', { name: 'role' }, ROLES.map((r) => h('option', { value: r, text: r })));
    editForm = h('form.card', { 'aria-label': 'Edit user' }, formBox(),
      h('div.row', {}, field('Display name', display), field('Email', email), field('Role', role)),
      h('div.actions', {}, h('button.btn-primary', { type: 'submit', text: 'Save' })));
    editForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearProblem(editForm);
      try {
        await patch(path, { displayName: display.value.trim(), email: email.value.trim(), roles: [role.value] }, { ifMatch: etag });
        toast('Saved.');
        await load();
      } catch (e) { showProblem(editForm, e); }
    });

    const pass = h('input', { name: 'password', type: 'password', autocomplete: 'new-password', required: true });
    passForm = h('form.card', { 'aria-label': 'Reset password' }, formBox(),
      field('New password', pass, 'The user signs in with it from now on; tell them over a safe channel.'),
      h('div.actions', {}, h('button', { type: 'submit', text: 'Reset password' })));
    passForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearProblem(passForm);
      try {
        await patch(path, { password: pass.value }, { ifMatch: etag });
        passForm.reset();
        toast('Password reset for ' + name + '.');
        await load();
      } catch (e) { showProblem(passForm, e); }
    });

    tokenForm = apiTokenForm(tokenOut, loadTokens, { username: name, roles: () => user.roles });
  }

  mount(root, h('p.crumbs', {}, h('a', { href: '#/users', text: 'Users & relationships' }), ' / ' + name),
    head,
    h('div.grid2', {}, section('Profile', facts, editForm), section('Password', passForm || h('p.muted', { text: 'Only administrators reset passwords.' }))),
    section('Console sessions', sessions),
    ctx.isAdmin ? section('API tokens', tokenOut, tokens, tokenForm) : '');
  await load();
  await Promise.all([loadSessions(), ctx.isAdmin ? loadTokens() : null]);
}

// loadSessionsInto shows a user's console sessions in el, each with a
// button that signs it out.
export async function loadSessionsInto(el, name) {
  const path = '/api/v1/users/' + enc(name) + '/sessions';
  await fill(el, async () => {
    const r = await get(path);
    return table([
      { label: 'Signed in', get: (s) => fmtTime(s.createdAt) },
      { label: 'Last seen', get: (s) => fmtTime(s.lastSeenAt) },
      { label: 'Expires', get: (s) => fmtTime(s.expiresAt) },
      { label: 'Session', get: (s) => h('span.mono', { text: s.id.slice(0, 12) + '…', title: s.id }) },
      { label: '', get: (s) => confirmButton('Sign out', 'End this session?', async () => {
        try { await del(path + '/' + enc(s.id)); toast('Session ended.'); await loadSessionsInto(el, name); } catch (e) { toast(e.message, 'error'); }
      }, 'btn-small btn-danger') },
    ], r.items || [], { label: 'Console sessions', empty: 'No console sessions.' });
  });
}
