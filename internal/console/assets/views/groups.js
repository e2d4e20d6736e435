// Groups of users and things, and their members (#/groups, #/groups/:name).
import { h, mount, field, table, fmtTime, section, formBox, confirmButton, toast } from '../dom.js';
import { all, get, post, del, enc, showProblem, clearProblem } from '../api.js';

export async function render(root, params, ctx) {
  if (params.name) return renderGroup(root, params.name, ctx);
  const list = h('div');
  async function load() {
    const gs = await all('/api/v1/groups');
    mount(list, table([
      { label: 'Group', get: (g) => h('a', { href: '#/groups/' + enc(g.name), text: g.name }) },
      { label: 'Description', get: (g) => g.description || '' },
      { label: 'Created', get: (g) => fmtTime(g.createdAt) },
      { label: '', get: (g) => ctx.isAdmin ? confirmButton('Delete', `Delete ${g.name}?`, async () => {
        try { await del('/api/v1/groups/' + enc(g.name)); toast('Deleted ' + g.name + '.'); await load(); } catch (e) { toast(e.message, 'error'); }
      }, 'btn-small btn-danger') : '' },
    ], gs, { label: 'Groups', empty: 'No groups.' }));
  }
  let form = null;
  if (ctx.isAdmin) {
    const name = h('input', { name: 'name', type: 'text', required: true, placeholder: 'night-shift' });
    const desc = h('input', { name: 'description', type: 'text' });
    form = h('form.card', { 'aria-label': 'Create a group' }, formBox(),
      h('div.row', {}, field('Name', name), field('Description', desc)),
      h('div.actions', {}, h('button.btn-primary', { type: 'submit', text: 'Create group' })));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearProblem(form);
      try {
        const body = { name: name.value.trim() };
        if (desc.value.trim()) body.description = desc.value.trim();
        await post('/api/v1/groups', body);
        toast('Created group ' + body.name + '.');
        form.reset();
        await load();
      } catch (e) { showProblem(form, e); }
    });
  }
  mount(root, h('h1', { text: 'Groups' }),
    h('p.muted', { text: 'Policies attached to a group apply to its users and things; a group can also hold relationships to things.' }),
    section('Groups', list, form));
  await load();
  return undefined;
}

async function renderGroup(root, name, ctx) {
  const path = '/api/v1/groups/' + enc(name);
  const g = await get(path);
  const members = h('div');
  async function load() {
    const ms = await all(path + '/members');
    mount(members, table([
      { label: 'Kind', get: (m) => m.kind },
      { label: 'Member', get: (m) => m.kind === 'thing' ? h('a', { href: '#/things/' + enc(m.member), text: m.member })
        : m.kind === 'user' ? h('a', { href: '#/users/' + enc(m.member), text: m.member }) : m.member },
      { label: 'Added', get: (m) => fmtTime(m.createdAt) },
      { label: '', get: (m) => ctx.isAdmin ? confirmButton('Remove', `Remove ${m.member}?`, async () => {
        try { await del(path + '/members/' + enc(m.kind) + '/' + enc(m.member)); toast('Removed.'); await load(); } catch (e) { toast(e.message, 'error'); }
      }, 'btn-small') : '' },
    ], ms, { label: 'Members', empty: 'No members.' }));
  }
  let form = null;
  if (ctx.isAdmin) {
    const kind = h('select', { name: 'kind' }, ['user', 'thing'].map((k) => h('option', { value: k, text: k })));
    const member = h('input', { name: 'member', type: 'text', required: true, placeholder: 'alice or lamp-1' });
    form = h('form.card', { 'aria-label': 'Add a member' }, formBox(),
      h('div.row', {}, field('Kind', kind), field('Member', member)),
      h('div.actions', {}, h('button.btn-primary', { type: 'submit', text: 'Add member' })));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearProblem(form);
      try {
        await post(path + '/members', { kind: kind.value, member: member.value.trim() });
        member.value = '';
        await load();
      } catch (e) { showProblem(form, e); }
    });
  }
  mount(root, h('p.crumbs', {}, h('a', { href: '#/groups', text: 'Groups' }), ' / ' + name),
    h('h1', { text: 'Group ' + name }),
    g.description ? h('p', { text: g.description }) : '',
    section('Members', members, form));
  await load();
  return undefined;
}
