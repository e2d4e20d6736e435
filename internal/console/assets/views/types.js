// Thing types: attribute schemas, default policies, auth methods, scopes.
import { h, mount, field, table, section, formBox, splitList, confirmButton, toast } from '../dom.js';
import { all, post, del, enc, showProblem, clearProblem } from '../api.js';

export async function render(root, _params, ctx) {
  const list = h('div');
  async function load() {
    const types = await all('/api/v1/thing-types');
    mount(list, table([
      { label: 'Name', get: (t) => h('a', { href: '#/thing-types/' + enc(t.name), text: t.name, title: 'Open the thing type' }) },
      { label: 'Description', get: (t) => t.description || '' },
      { label: 'Attributes', get: (t) => (t.attributeSchema || []).map((a) => a.name + (a.required ? '*' : '')).join(', ') },
      { label: 'Default policies', get: (t) => (t.defaultPolicies || []).join(', ') },
      { label: 'Auth methods', get: (t) => (t.authMethods || []).join(', ') },
      { label: 'Scopes', get: (t) => (t.scopes || []).join(' ') },
      { label: 'Approver', get: (t) => t.approverRelation || '' },
      { label: '', get: (t) => ctx.isAdmin ? h('span.btns', {}, h('a', { href: '#/thing-types/' + enc(t.name), text: 'Edit', 'aria-label': 'Edit ' + t.name }), confirmButton('Delete', `Delete type ${t.name}?`, async () => {
        try { await del('/api/v1/thing-types/' + enc(t.name)); toast('Deleted.'); load(); } catch (e) { toast(e.message, 'error'); }
      }, 'btn-small')) : '' },
    ], types, { label: 'Thing types', empty: 'No thing types yet.' }));
  }

  let form = null;
  if (ctx.isAdmin) {
    const name = h('input', { name: 'name', type: 'text', required: true, autocomplete: 'off' });
    const desc = h('input', { name: 'description', type: 'text' });
    const attrs = h('input', { name: 'attributeSchema', type: 'text', placeholder: 'site*, floor' });
    const pols = h('input', { name: 'defaultPolicies', type: 'text', placeholder: 'meter-telemetry' });
    const methods = h('input', { name: 'authMethods', type: 'text', placeholder: 'secret, certificate, jwt' });
    const scopes = h('input', { name: 'scopes', type: 'text', placeholder: 'publish telemetry' });
    const approver = h('select', { name: 'approverRelation' },
      ['', 'owner', 'operator', 'viewer'].map((r) => h('option', { value: r, text: r || 'none' })));
    form = h('form.card', { 'aria-label': 'Create a thing type' }, formBox(),
      h('div.row', {}, field('Name', name), field('Description', desc)),
      h('div.row', {}, field('Attributes', attrs, 'Comma separated; a trailing * marks a required one.'), field('Default policies', pols)),
      h('div.row', {}, field('Auth methods', methods), field('OAuth scopes', scopes), field('Device-flow approver becomes', approver)),
      h('div.actions', {}, h('button.btn-primary', { type: 'submit', text: 'Create thing type' })));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearProblem(form);
      const body = { name: name.value.trim() };
      if (desc.value.trim()) body.description = desc.value.trim();
      const schema = splitList(attrs.value).map((a) => a.endsWith('*') ? { name: a.slice(0, -1), required: true } : { name: a });
      if (schema.length) body.attributeSchema = schema;
      if (splitList(pols.value).length) body.defaultPolicies = splitList(pols.value);
      if (splitList(methods.value).length) body.authMethods = splitList(methods.value);
      if (splitList(scopes.value).length) body.scopes = splitList(scopes.value);
      if (approver.value) body.approverRelation = approver.value;
      try {
        const t = await post('/api/v1/thing-types', body);
        toast('Created thing type ' + t.name + '.');
        form.reset();
        load();
      } catch (e) { showProblem(form, e); }
    });
  }
  mount(root, h('h1', { text: 'Thing types' }), list, form ? section('Create a thing type', form) : null);
  await load();
}
