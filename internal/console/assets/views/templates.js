// AWS IoT fleet provisioning templates: list and create them; a template's
// page shows its versions (add one, make one the default, delete one),
// enables or disables it, mints a temporary claim certificate (provisioning
// by trusted user) and deletes it.
import { h, mount, field, table, badge, fmtTime, when, section, formBox, confirmButton, toast } from '../dom.js';
import { all, get, post, patch, del, enc, showProblem, clearProblem } from '../api.js';
import { jsonEditor } from '../jsonedit.js';
import { oneTimeSecret } from './thing.js';

// SAMPLE is AWS's fleet provisioning sample template: a thing named after
// the device's serial number, its certificate activated.
const SAMPLE = {
  Parameters: { SerialNumber: { Type: 'String' }, 'AWS::IoT::Certificate::Id': { Type: 'String' } },
  Resources: {
    thing: { Type: 'AWS::IoT::Thing', Properties: { ThingName: { 'Fn::Join': ['', ['device-', { Ref: 'SerialNumber' }]] } } },
    certificate: { Type: 'AWS::IoT::Certificate', Properties: { CertificateId: { Ref: 'AWS::IoT::Certificate::Id' }, Status: 'Active' } },
  },
};

// bodyEditor is a labelled JSON editor for a template body.
function bodyEditor(value) {
  const ta = h('textarea', { name: 'templateBody', rows: 12, class: 'code', spellcheck: 'false', value: JSON.stringify(value, null, 2) });
  const f = field('Template body', ta);
  const jed = jsonEditor(ta);
  f.insertBefore(jed.el, f.querySelector('.field-error'));
  return { ta, field: f, jed };
}

// parseBody parses the editor's text or throws an error carrying a field
// problem for the body control.
function parseBody(text) {
  try {
    const b = JSON.parse(text);
    if (!b || typeof b !== 'object' || Array.isArray(b)) throw new Error('must be a JSON object');
    return b;
  } catch (e) {
    const err = new Error('The template body is not valid JSON.');
    err.fields = [{ field: 'templateBody', message: e.message }];
    throw err;
  }
}

export async function render(root, params, ctx) {
  if (params.name) return renderOne(root, params.name, ctx);
  const list = h('div');
  async function load() {
    const ts = await all('/api/v1/provisioning-templates');
    mount(list, table([
      { label: 'Name', get: (t) => h('a', { href: '#/provisioning-templates/' + enc(t.templateName), text: t.templateName }) },
      { label: 'State', get: (t) => badge(t.enabled ? 'enabled' : 'disabled', t.enabled ? 'ok' : 'off') },
      { label: 'Description', get: (t) => t.description || '' },
      { label: 'Default version', get: (t) => String(t.defaultVersionId) },
      { label: 'Pre-provisioning hook', get: (t) => h('span.mono.wrap', { text: t.preProvisioningHook || '' }) },
      { label: 'Updated', get: (t) => when(t.updatedAt) },
    ], ts, { label: 'Provisioning templates', empty: 'No provisioning templates.' }));
  }
  let form = null;
  if (ctx.isAdmin) {
    const name = h('input', { name: 'templateName', type: 'text', required: true, placeholder: 'sensor-fleet' });
    const desc = h('input', { name: 'description', type: 'text' });
    const hook = h('input', { name: 'preProvisioningHook', type: 'url', placeholder: 'https://hooks.example/check' });
    const enabled = h('input', { name: 'enabled', type: 'checkbox', id: 'tpl-enabled', checked: true });
    const body = bodyEditor(SAMPLE);
    form = h('form.card', { 'aria-label': 'Create a provisioning template' }, formBox(),
      h('div.row', {}, field('Name', name), field('Description', desc)),
      field('Pre-provisioning hook', hook, 'Optional: an https URL Gatehouse asks before provisioning (it may refuse or add parameters).'),
      body.field,
      h('div.check', {}, enabled, h('label', { for: 'tpl-enabled', text: 'Enabled (devices may provision with it)' })),
      h('div.actions', {}, h('button.btn-primary', { type: 'submit', text: 'Create template' })));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearProblem(form);
      try {
        const b = { templateName: name.value.trim(), enabled: enabled.checked, templateBody: parseBody(body.ta.value) };
        if (desc.value.trim()) b.description = desc.value.trim();
        if (hook.value.trim()) b.preProvisioningHook = hook.value.trim();
        const t = await post('/api/v1/provisioning-templates', b);
        toast('Created template ' + t.templateName + '.');
        location.hash = '#/provisioning-templates/' + enc(t.templateName);
      } catch (e) {
        showProblem(form, e);
        if (body.jed.check()) body.jed.showPathErrors(e.fields);
      }
    });
  }
  mount(root, h('h1', { text: 'Provisioning templates' }),
    h('p', { text: 'Devices built for AWS IoT fleet provisioning connect with a claim certificate and register themselves through one of these templates (docs/aws-forgerock.md).' }),
    section('Templates', list), form ? section('Create a provisioning template', form) : '');
  await load();
}

async function renderOne(root, name, ctx) {
  const path = '/api/v1/provisioning-templates/' + enc(name);
  const head = h('div');
  const versions = h('div');
  const out = h('div', { 'aria-live': 'polite' });
  async function load() {
    const t = await get(path);
    const vs = (await get(path + '/versions')).items || [];
    const actions = [];
    if (ctx.isAdmin) {
      actions.push(h('button', { type: 'button', class: 'btn-small', text: t.enabled ? 'Disable' : 'Enable',
        on: { click: async () => {
          try { await patch(path, { enabled: !t.enabled }); toast(t.enabled ? 'Disabled.' : 'Enabled.'); await load(); } catch (e) { toast(e.message, 'error'); }
        } } }));
      actions.push(h('button', { type: 'button', class: 'btn-small', text: 'Mint claim certificate',
        on: { click: async () => {
          try {
            const c = await post(path + '/claim-certificates', {});
            mount(out, h('div.card', {}, h('p', { role: 'status', text: `Claim certificate ${c.certificateId}, valid until ${fmtTime(c.expiration)}: it may only provision with ${name}.` }),
              oneTimeSecret('Certificate', c.certificatePem), oneTimeSecret('Private key', c.keyPair.PrivateKey)));
          } catch (e) { toast(e.message, 'error'); }
        } } }));
      actions.push(confirmButton('Delete template', `Delete the template ${name}?`, async () => {
        try { await del(path); toast('Deleted.'); location.hash = '#/provisioning-templates'; } catch (e) { toast(e.message, 'error'); }
      }, 'btn-small btn-danger'));
    }
    mount(head, h('dl.kv', {},
      h('dt', { text: 'State' }), h('dd', {}, badge(t.enabled ? 'enabled' : 'disabled', t.enabled ? 'ok' : 'off')),
      h('dt', { text: 'Description' }), h('dd', { text: t.description || '—' }),
      h('dt', { text: 'Pre-provisioning hook' }), h('dd.mono', { text: t.preProvisioningHook || '—' }),
      h('dt', { text: 'Default version' }), h('dd', { text: String(t.defaultVersionId) }),
      h('dt', { text: 'Created' }), h('dd', {}, when(t.createdAt))),
    h('div.actions', {}, ...actions));
    mount(versions, table([
      { label: 'Version', get: (v) => String(v.versionId) },
      { label: 'Default', get: (v) => (v.isDefaultVersion ? badge('default', 'ok') : '') },
      { label: 'Body', get: (v) => h('pre.code.wrap', { text: JSON.stringify(v.templateBody, null, 2) }) },
      { label: 'Created', get: (v) => when(v.createdAt) },
      { label: '', get: (v) => (!ctx.isAdmin || v.isDefaultVersion) ? '' : h('div.actions', {},
        h('button', { type: 'button', class: 'btn-small', text: 'Make default', on: { click: async () => {
          try { await patch(path, { defaultVersionId: v.versionId }); toast('Version ' + v.versionId + ' is the default.'); await load(); } catch (e) { toast(e.message, 'error'); }
        } } }),
        confirmButton('Delete', `Delete version ${v.versionId}?`, async () => {
          try { await del(path + '/versions/' + v.versionId); toast('Deleted.'); await load(); } catch (e) { toast(e.message, 'error'); }
        }, 'btn-small btn-danger')) },
    ], vs, { label: 'Versions', empty: 'No versions.' }));
    return vs;
  }
  let form = null;
  const vs = await (async () => { mount(root, h('h1', { text: name }), head, out, section('Versions', versions)); return load(); })();
  if (ctx.isAdmin) {
    const last = vs.find((v) => v.isDefaultVersion) || vs[0];
    const body = bodyEditor(last ? last.templateBody : SAMPLE);
    const makeDefault = h('input', { name: 'setAsDefault', type: 'checkbox', id: 'tpl-default', checked: true });
    form = h('form.card', { 'aria-label': 'Add a version' }, formBox(), body.field,
      h('div.check', {}, makeDefault, h('label', { for: 'tpl-default', text: 'Make it the default version' })),
      h('div.actions', {}, h('button.btn-primary', { type: 'submit', text: 'Add version' })));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearProblem(form);
      try {
        const v = await post(path + '/versions', { templateBody: parseBody(body.ta.value), setAsDefault: makeDefault.checked });
        toast('Added version ' + v.versionId + '.');
        await load();
      } catch (e) {
        showProblem(form, e);
        if (body.jed.check()) body.jed.showPathErrors(e.fields);
      }
    });
    root.append(section('Add a version', form));
  }
}
