// Policies: list and create AWS IoT style policy documents.
import { h, mount, field, table, badge, when, section, formBox, toast } from '../dom.js';
import { jsonEditor } from '../jsonedit.js';
import { all, post, enc, showProblem, clearProblem } from '../api.js';

export const TEMPLATE = {
  Version: '2012-10-17',
  Statement: [
    { Effect: 'Allow', Action: 'iot:Connect', Resource: 'client/${iot:Connection.Thing.ThingName}' },
    { Effect: 'Allow', Action: 'iot:Publish', Resource: 'topic/things/${iot:Connection.Thing.ThingName}/*' },
  ],
};

// parseDocument parses the editor's text or throws an error carrying a
// field problem for the document control.
export function parseDocument(text) {
  try {
    const doc = JSON.parse(text);
    if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new Error('must be a JSON object');
    return doc;
  } catch (e) {
    const err = new Error('The document is not valid JSON.');
    err.fields = [{ field: 'document', message: e.message }];
    throw err;
  }
}

export async function render(root, _params, ctx) {
  const list = h('div');
  async function load() {
    const ps = await all('/api/v1/policies');
    mount(list, table([
      { label: 'Name', get: (p) => [h('a', { href: '#/policies/' + enc(p.name), text: p.name }), p.builtIn ? [' ', badge('built in', 'wait')] : null] },
      { label: 'Description', get: (p) => p.description || '' },
      { label: 'Default version', get: (p) => String(p.defaultVersionId) },
      { label: 'Updated', get: (p) => when(p.updatedAt) },
    ], ps, { label: 'Policies', empty: 'No policies yet.' }));
  }
  let form = null;
  if (ctx.isAdmin) {
    const name = h('input', { name: 'name', type: 'text', required: true });
    const desc = h('input', { name: 'description', type: 'text' });
    const doc = h('textarea', { name: 'document', rows: 12, class: 'code', spellcheck: 'false', value: JSON.stringify(TEMPLATE, null, 2) });
    const docField = field('Document', doc);
    const jed = jsonEditor(doc);
    docField.insertBefore(jed.el, docField.querySelector('.field-error'));
    form = h('form.card', { 'aria-label': 'Create a policy' }, formBox(),
      h('div.row', {}, field('Name', name), field('Description', desc)),
      docField,
      h('div.actions', {}, h('button.btn-primary', { type: 'submit', text: 'Create policy' })));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearProblem(form);
      try {
        const body = { name: name.value.trim(), document: parseDocument(doc.value) };
        if (desc.value.trim()) body.description = desc.value.trim();
        const p = await post('/api/v1/policies', body);
        toast('Created policy ' + p.name + '.');
        location.hash = '#/policies/' + enc(p.name);
      } catch (e) {
        showProblem(form, e);
        if (jed.check()) jed.showPathErrors(e.fields);
      }
    });
  }
  mount(root, h('h1', { text: 'Policies' }), list, h('p', {}, h('a', { href: '#/simulator', text: 'Open the policy simulator' })),
    form ? section('Create a policy', form) : null);
  await load();
}
