// One policy: the document editor (a new default version per save, with
// the server's validation errors inline), versions, attachments and the
// simulator to check the effect of an edit.
import { h, mount, field, table, badge, when, section, formBox, confirmButton, toast } from '../dom.js';
import { get, all, post, put, patch, del, enc, showProblem, clearProblem } from '../api.js';
import { parseDocument } from './policies.js';
import { simulatorForm } from './simulator.js';
import { jsonEditor } from '../jsonedit.js';

const MAX_VERSIONS = 5;

export async function render(root, params, ctx) {
  const name = params.name;
  const path = '/api/v1/policies/' + enc(name);
  let pol, etag;
  try {
    ({ data: pol, etag } = await get(path, { withEtag: true }));
  } catch (e) {
    if (e.status === 404) {
      mount(root, h('h1', { text: name }), h('p', { text: 'No such policy.' }), h('a', { href: '#/policies', text: 'Back to policies' }));
      return;
    }
    throw e;
  }
  const versions = h('div');
  const attachments = h('div');
  let versionList = [];
  let attachList = [];

  async function refresh() {
    ({ data: pol, etag } = await get(path, { withEtag: true }));
    versionList = (await get(path + '/versions')).items || [];
    mount(versions, table([
      { label: 'Version', get: (v) => String(v.versionId) },
      { label: 'Default', get: (v) => v.isDefault ? badge('default', 'ok') : '' },
      { label: 'Created', get: (v) => when(v.createdAt) },
      { label: '', get: (v) => v.isDefault || !ctx.isAdmin ? '' : h('span.btns', {},
        button('Make default', async () => {
          ({ etag } = await put(path + '/default-version', { versionId: v.versionId }, { ifMatch: etag, withEtag: true }));
          toast(`Version ${v.versionId} is the default.`);
          await refresh();
          doc.value = JSON.stringify(v.document, null, 2);
        }),
        confirmButton('Delete', 'Delete this version?', async () => {
          try { await del(path + '/versions/' + v.versionId); await refresh(); } catch (e) { toast(e.message, 'error'); }
        }, 'btn-small btn-danger')) },
    ], versionList.slice().reverse(), { label: 'Versions' }));
  }

  async function loadAttachments() {
    attachList = (await get(path + '/attachments')).items || [];
    mount(attachments, table([
      { label: 'Target', get: (a) => a.targetKind === 'thing' ? h('a', { href: '#/things/' + enc(a.target), text: 'thing/' + a.target }) : a.targetKind + '/' + a.target },
      { label: 'Since', get: (a) => when(a.createdAt) },
      { label: '', get: (a) => ctx.isAdmin ? confirmButton('Detach', 'Detach?', async () => {
        try {
          await del(path + '/attachments?' + new URLSearchParams({ targetKind: a.targetKind, target: a.target }));
          loadAttachments();
        } catch (e) { toast(e.message, 'error'); }
      }, 'btn-small') : '' },
    ], attachList, { label: 'Attachments', empty: 'Not attached to anything (thing types may still name it).' }));
  }

  const doc = h('textarea', { name: 'document', rows: 18, class: 'code', spellcheck: 'false', 'aria-label': 'Policy document', value: JSON.stringify(pol.document, null, 2) });
  const saveBtn = h('button.btn-primary', { type: 'submit', text: 'Save as new default version', disabled: !ctx.isAdmin });
  const docField = field('Document', doc, 'AWS IoT policy JSON. Saving creates a new version and makes it the default.');
  const jed = jsonEditor(doc);
  docField.insertBefore(jed.el, docField.querySelector('.hint'));
  const editor = h('form.card.editor', { 'aria-label': 'Edit the policy document' }, formBox(),
    docField,
    h('div.actions', {}, saveBtn, h('button', { type: 'button', text: 'Format', on: { click: () => {
      try { doc.value = JSON.stringify(JSON.parse(doc.value), null, 2); jed.check(); } catch (e) { jed.check(); showProblem(editor, { message: 'The document is not valid JSON.', fields: [{ field: 'document', message: e.message }] }); }
    } } })));
  editor.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearProblem(editor);
    saveBtn.disabled = true;
    try {
      const document = parseDocument(doc.value);
      if (versionList.length >= MAX_VERSIONS) {
        // Like AWS IoT a policy keeps five versions: drop the oldest
        // non-default one to make room.
        const oldest = versionList.filter((v) => !v.isDefault).sort((a, b) => a.versionId - b.versionId)[0];
        if (oldest) await del(path + '/versions/' + oldest.versionId);
        ({ etag } = await get(path, { withEtag: true }));
      }
      const v = await post(path + '/versions', { document, setAsDefault: true }, { ifMatch: etag });
      toast(`Saved version ${v.versionId}.`);
      editor.querySelector('.form-error').hidden = true;
      jed.clear();
      await refresh();
      if (sim.querySelector('[name=resource]').value) sim.run();
    } catch (e) {
      showProblem(editor, e);
      if (!jed.check()) doc.setAttribute('aria-invalid', 'true');
      else jed.showPathErrors(e.fields);
    } finally {
      saveBtn.disabled = !ctx.isAdmin;
    }
  });

  await Promise.all([refresh(), loadAttachments()]);
  const sim = simulatorForm({ thingName: await sampleThing(name, attachList) });

  let attachForm = null;
  if (ctx.isAdmin) {
    attachForm = await attachPicker(path, loadAttachments);
  }
  mount(root,
    h('p.crumbs', {}, h('a', { href: '#/policies', text: 'Policies' }), ' / '),
    h('h1', {}, name, pol.builtIn ? [' ', badge('built in', 'wait')] : null),
    pol.description ? h('p.muted', { text: pol.description }) : null,
    pol.builtIn ? h('p.notice', { text: 'Gatehouse needs this policy: it cannot be deleted, and a new default version must keep allowing what Gatehouse requires (add statements rather than remove them).' }) : null,
    h('div.grid2.wide-left', {},
      section('Document', editor),
      section('Simulator', h('p.muted', { text: 'Check what the saved policies allow.' }), sim)),
    h('div.grid2', {},
      section('Versions', versions),
      section('Attachments', attachments, attachForm)),
    ctx.isAdmin && !pol.builtIn ? h('div.actions.danger-zone', {}, confirmButton('Delete policy', `Delete ${name}?`, async () => {
      try { await del(path, { ifMatch: etag }); toast('Deleted.'); location.hash = '#/policies'; } catch (e) { toast(e.message, 'error'); }
    })) : null);
}

// PICK lists what a policy attaches to, and where the names come from.
const PICK = {
  thing: { label: 'Thing', list: '/api/v1/things', key: (x) => x.name },
  thingType: { label: 'Thing type', list: '/api/v1/thing-types', key: (x) => x.name },
  group: { label: 'Group', list: '/api/v1/groups', key: (x) => x.name },
  user: { label: 'User', list: '/api/v1/users', key: (x) => x.username },
  certificate: { label: 'Certificate (fingerprint)', list: '/api/v1/certificates', key: (x) => x.certificateId },
  scope: { label: 'OAuth scope', list: null },
};

// attachPicker is the form that attaches the policy to a thing, a thing
// type (as a default policy), a group or a user, chosen from a list with
// search, not typed blind.
async function attachPicker(path, reload) {
  const kind = h('select', { name: 'targetKind' }, Object.entries(PICK).map(([k, v]) => h('option', { value: k, text: v.label })));
  const target = h('input', { name: 'target', type: 'text', required: true, list: 'attach-options', autocomplete: 'off', placeholder: 'type to search' });
  const options = h('datalist', { id: 'attach-options' });
  const names = {};
  async function fillOptions() {
    const k = kind.value;
    if (!names[k]) {
      try { names[k] = PICK[k].list ? (await all(PICK[k].list)).map(PICK[k].key).filter(Boolean) : null; } catch { names[k] = []; }
    }
    if (!names[k]) { mount(options); return; }
    mount(options, names[k].map((n) => h('option', { value: n })));
  }
  kind.addEventListener('change', () => { target.value = ''; fillOptions(); });
  const form = h('form.inline-form', { 'aria-label': 'Attach the policy' }, formBox(), field('Kind', kind), field('Target', target), options,
    h('div.actions', {}, h('button', { type: 'submit', text: 'Attach' })));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearProblem(form);
    const k = kind.value;
    const t = target.value.trim();
    await fillOptions();
    if (names[k] && !names[k].includes(t)) {
      showProblem(form, { message: '', fields: [{ field: 'target', message: `No ${PICK[k].label.toLowerCase()} is called "${t}". Pick one from the list.` }] });
      return;
    }
    try {
      if (k === 'thingType') {
        const { data: tt, etag } = await get('/api/v1/thing-types/' + enc(t), { withEtag: true });
        const pols = [...new Set([...(tt.defaultPolicies || []), path.split('/').pop()].map(decodeURIComponent))];
        await patch('/api/v1/thing-types/' + enc(t), { defaultPolicies: pols }, { ifMatch: etag });
        toast(`Now a default policy of type ${t}.`);
      } else {
        await post(path + '/attachments', { targetKind: k, target: t });
      }
      form.reset();
      fillOptions();
      reload();
    } catch (e) { showProblem(form, e); }
  });
  await fillOptions();
  return form;
}

// sampleThing names a thing the policy applies to (attached, or through
// its type's default policies), to start the simulator with.
async function sampleThing(name, attachments) {
  const attached = attachments.find((a) => a.targetKind === 'thing');
  if (attached) return attached.target;
  try {
    const types = await all('/api/v1/thing-types');
    for (const t of types.filter((x) => (x.defaultPolicies || []).includes(name))) {
      const r = await get('/api/v1/things?limit=1&thingType=' + enc(t.name));
      if (r.items && r.items.length) return r.items[0].name;
    }
  } catch { /* the simulator starts empty */ }
  return '';
}

function button(label, fn) {
  const b = h('button', { type: 'button', class: 'btn-small', text: label });
  b.addEventListener('click', async () => { try { await fn(); } catch (e) { toast(e.message, 'error'); } });
  return b;
}
