// Things: search and filter the registry, create a thing.
import { h, mount, field, table, badge, when, section, formBox, parseKV, toast } from '../dom.js';
import { post, all, enc, showProblem, clearProblem } from '../api.js';

export async function render(root, _params, ctx, query) {
  const prefix = h('input', { name: 'prefix', type: 'search', value: query.get('prefix') || '', placeholder: 'name starts with…' });
  const type = h('select', { name: 'thingType' }, h('option', { value: '', text: 'any type' }));
  const attr = h('input', { name: 'attribute', type: 'text', value: query.get('attribute') || '', placeholder: 'site=berlin' });
  const state = h('select', { name: 'state' },
    h('option', { value: '', text: 'any state' }), h('option', { value: 'enabled', text: 'enabled' }), h('option', { value: 'disabled', text: 'disabled' }));
  const results = h('div.results', { 'aria-live': 'polite' });
  const filters = h('form.filters', { role: 'search', 'aria-label': 'Filter things' },
    field('Search', prefix), ctx.canRead ? field('Thing type', type) : null, field('Attribute', attr), field('State', state),
    h('div.actions', {}, h('button', { type: 'submit', text: 'Filter' })));

  let types = [];
  if (ctx.canRead) {
    try { types = await all('/api/v1/thing-types'); } catch { types = []; }
    for (const t of types) type.append(h('option', { value: t.name, text: t.name }));
    type.value = query.get('thingType') || '';
  } else {
  }

  async function load() {
    const q = new URLSearchParams();
    if (prefix.value) q.set('prefix', prefix.value);
    if (type.value) q.set('thingType', type.value);
    if (attr.value) q.set('attribute', attr.value);
    try {
      let things = await all('/api/v1/things' + (q.toString() ? '?' + q : ''));
      if (state.value) things = things.filter((t) => t.state === state.value);
      mount(results,
        h('p.muted', { text: things.length + (things.length === 1 ? ' thing' : ' things') }),
        table([
          { label: 'Name', get: (t) => h('a', { href: '#/things/' + enc(t.name), text: t.name }) },
          { label: 'Type', get: (t) => t.thingType || '—' },
          { label: 'State', get: (t) => badge(t.state, t.state === 'enabled' ? 'ok' : 'off') },
          { label: 'Attributes', get: (t) => Object.entries(t.attributes || {}).map(([k, v]) => k + '=' + v).join(', ') },
          { label: 'Updated', get: (t) => when(t.updatedAt) },
        ], things, { label: 'Things', empty: ctx.canRead || q.toString() || state.value ? 'No things match.' : 'You have no things yet.' }));
    } catch (e) {
      mount(results, h('p.form-error', { role: 'alert', text: e.message }));
    }
  }
  filters.addEventListener('submit', (ev) => { ev.preventDefault(); load(); });
  state.addEventListener('change', load);
  type.addEventListener('change', load);

  mount(root, h('h1', { text: 'Things' }),
    ctx.canRead ? null : h('p.muted', { text: 'The things you own, operate or view.' }),
    filters,
    results,
    ctx.isAdmin ? createForm(types, load) : null);
  await load();
}

function createForm(types, reload) {
  const name = h('input', { name: 'name', type: 'text', required: true, autocomplete: 'off' });
  const type = h('select', { name: 'thingType' }, h('option', { value: '', text: 'none' }),
    types.map((t) => h('option', { value: t.name, text: t.name })));
  const attrs = h('textarea', { name: 'attributes', rows: 3, placeholder: 'site=berlin\nfloor=2' });
  const form = h('form.card', { 'aria-label': 'Create a thing' }, formBox(),
    h('div.row', {}, field('Name', name), field('Thing type', type)),
    field('Attributes', attrs, 'One name=value per line.'),
    h('div.actions', {}, h('button.btn-primary', { type: 'submit', text: 'Create thing' })));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearProblem(form);
    try {
      const body = { name: name.value.trim() };
      if (type.value) body.thingType = type.value;
      try { body.attributes = parseKV(attrs.value); } catch (e) { throw Object.assign(e, { fields: [{ field: 'attributes', message: e.message }] }); }
      const th = await post('/api/v1/things', body);
      toast('Created thing ' + th.name + '.');
      form.reset();
      await reload();
    } catch (e) {
      showProblem(form, e);
    }
  });
  return section('Create a thing', form);
}
