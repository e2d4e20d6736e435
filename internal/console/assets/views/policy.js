// One policy: the document editor (a new default version per save, with
// the server's validation errors inline), versions, attachments and the
// simulator to check the effect of an edit.
import { h, mount, field, table, badge, fmtTime, section, formBox, confirmButton, toast } from '../dom.js';
import { get, all, post, put, del, enc, showProblem, clearProblem } from '../api.js';
import { parseDocument } from './policies.js';
import { simulatorForm } from './simulator.js';

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
      { label: 'Created', get: (v) => fmtTime(v.createdAt) },
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
      { label: 'Since', get: (a) => fmtTime(a.createdAt) },
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
  const editor = h('form.card.editor', { 'aria-label': 'Edit the policy document' }, formBox(),
    field('Document', doc, 'AWS IoT policy JSON. Saving creates a new version and makes it the default.'),
    h('div.actions', {}, saveBtn, h('button', { type: 'button', text: 'Format', on: { click: () => {
      try { doc.value = JSON.stringify(JSON.parse(doc.value), null, 2); } catch (e) { showProblem(editor, { message: 'The document is not valid JSON.', fields: [{ field: 'document', message: e.message }] }); }
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
      await refresh();
      if (sim.querySelector('[name=resource]').value) sim.run();
    } catch (e) {
      showProblem(editor, e);
    } finally {
      saveBtn.disabled = !ctx.isAdmin;
    }
  });

  await Promise.all([refresh(), loadAttachments()]);
  const sim = simulatorForm({ thingName: await sampleThing(name, attachList) });

  let attachForm = null;
  if (ctx.isAdmin) {
    const kind = h('select', { name: 'targetKind' }, ['thing', 'group', 'certificate', 'scope'].map((k) => h('option', { value: k, text: k })));
    const target = h('input', { name: 'target', type: 'text', required: true });
    attachForm = h('form.inline-form', { 'aria-label': 'Attach the policy' }, formBox(), field('Kind', kind), field('Target', target),
      h('div.actions', {}, h('button', { type: 'submit', text: 'Attach' })));
    attachForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearProblem(attachForm);
      try { await post(path + '/attachments', { targetKind: kind.value, target: target.value.trim() }); attachForm.reset(); loadAttachments(); } catch (e) { showProblem(attachForm, e); }
    });
  }
  mount(root,
    h('p.crumbs', {}, h('a', { href: '#/policies', text: 'Policies' }), ' / '),
    h('h1', { text: name }),
    pol.description ? h('p.muted', { text: pol.description }) : null,
    h('div.grid2.wide-left', {},
      section('Document', editor),
      section('Simulator', h('p.muted', { text: 'Check what the saved policies allow.' }), sim)),
    h('div.grid2', {},
      section('Versions', versions),
      section('Attachments', attachments, attachForm)),
    ctx.isAdmin ? h('div.actions.danger-zone', {}, confirmButton('Delete policy', `Delete ${name}?`, async () => {
      try { await del(path, { ifMatch: etag }); toast('Deleted.'); location.hash = '#/policies'; } catch (e) { toast(e.message, 'error'); }
    })) : null);
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
