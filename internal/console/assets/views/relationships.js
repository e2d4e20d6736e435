// Every relationship: people and groups who own, operate or view things,
// and gateways in front of their child things (thing -> gateway -> thing).
import { h, mount, field, table, fmtTime, section, formBox, confirmButton, toast } from '../dom.js';
import { get, post, del, enc, showProblem, clearProblem } from '../api.js';

const KINDS = ['user', 'group', 'thing'];
const RELATIONS = { user: ['owner', 'operator', 'viewer'], group: ['owner', 'operator', 'viewer'], thing: ['gateway'] };

function objectLink(kind, name) {
  if (kind === 'thing') return h('a', { href: '#/things/' + enc(name), text: name });
  return kind + '/' + name;
}

function subjectLink(kind, name) {
  if (kind === 'user') return h('a', { href: '#/users/' + enc(name), text: name });
  if (kind === 'group') return h('a', { href: '#/groups/' + enc(name), text: 'group ' + name });
  if (kind === 'thing') return h('a', { href: '#/things/' + enc(name), text: name });
  return kind + '/' + name;
}

export async function render(root, _params, ctx, query) {
  const list = h('div');
  const kindFilter = h('select', { name: 'subjectKind' }, ['', ...KINDS].map((k) => h('option', { value: k, text: k || 'any subject' })));
  const relFilter = h('select', { name: 'relation' }, ['', 'owner', 'operator', 'viewer', 'gateway'].map((r) => h('option', { value: r, text: r || 'any relation' })));
  kindFilter.value = query.get('subjectKind') || '';
  relFilter.value = query.get('relation') || '';
  const filters = h('form.filters', { role: 'search', 'aria-label': 'Filter relationships' }, field('Subject kind', kindFilter), field('Relation', relFilter),
    h('div.actions', {}, h('button', { type: 'submit', text: 'Filter' })));

  async function load() {
    const q = new URLSearchParams();
    if (kindFilter.value) q.set('subjectKind', kindFilter.value);
    if (relFilter.value) q.set('relation', relFilter.value);
    const r = await get('/api/v1/relationships' + (q.toString() ? '?' + q : ''));
    mount(list, table([
      { label: 'Subject', get: (x) => subjectLink(x.subjectKind, x.subject) },
      { label: 'Relation', get: (x) => x.relation },
      { label: 'Object', get: (x) => objectLink(x.objectKind, x.object) },
      { label: 'Since', get: (x) => fmtTime(x.createdAt) },
      { label: 'Until', get: (x) => fmtTime(x.expiresAt) || '—' },
      { label: '', get: (x) => ctx.isAdmin ? confirmButton('Remove', 'Remove?', async () => {
        const p = new URLSearchParams({ subjectKind: x.subjectKind, subject: x.subject, relation: x.relation, objectKind: x.objectKind, object: x.object });
        try { await del('/api/v1/relationships?' + p); await load(); } catch (e) { toast(e.message, 'error'); }
      }, 'btn-small') : '' },
    ], r.items || [], { label: 'All relationships', empty: 'No relationships.' }));
  }
  filters.addEventListener('submit', (ev) => { ev.preventDefault(); load().catch((e) => toast(e.message, 'error')); });

  let form = null;
  if (ctx.isAdmin) {
    const skind = h('select', { name: 'subjectKind' }, KINDS.map((k) => h('option', { value: k, text: k })));
    const subj = h('input', { name: 'subject', type: 'text', required: true, placeholder: 'alice, or a gateway thing' });
    const rel = h('select', { name: 'relation' });
    const obj = h('input', { name: 'object', type: 'text', required: true, placeholder: 'lamp-1' });
    const fillRelations = () => mount(rel, RELATIONS[skind.value].map((r) => h('option', { value: r, text: r })));
    skind.addEventListener('change', fillRelations);
    fillRelations();
    form = h('form.card', { 'aria-label': 'Add a relationship of any kind' }, formBox(),
      h('div.row', {}, field('Subject kind', skind), field('Subject', subj), field('Relation', rel), field('Thing', obj)),
      h('p.hint', { text: 'A thing with the relation "gateway" to another thing may get tokens for it and publish on its behalf.' }),
      h('div.actions', {}, h('button.btn-primary', { type: 'submit', text: 'Add relationship' })));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearProblem(form);
      try {
        await post('/api/v1/relationships', { subjectKind: skind.value, subject: subj.value.trim(), relation: rel.value, objectKind: 'thing', object: obj.value.trim() });
        subj.value = '';
        obj.value = '';
        toast('Added.');
        await load();
      } catch (e) { showProblem(form, e); }
    });
  }
  mount(root, h('h1', { text: 'Relationships' }),
    section('Relationships', filters, list, form));
  await load();
}
