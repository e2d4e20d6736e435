// Custom authorizers (AWS IoT style): the token key name devices send, the
// public keys their token signatures verify with, status and the default.
import { h, mount, field, table, badge, fmtTime, section, formBox, confirmButton, toast } from '../dom.js';
import { all, post, patch, del, enc, showProblem, clearProblem } from '../api.js';

export async function render(root, _params, ctx) {
  const list = h('div');
  let authorizers = [];
  const keyTarget = h('select', { name: 'authorizer', required: true });

  async function change(a, body, done) {
    try { await patch('/api/v1/authorizers/' + enc(a.authorizerName), body, { ifMatch: '"' + a.version + '"' }); toast(done); await load(); } catch (e) { toast(e.message, 'error'); }
  }
  function actions(a) {
    if (!ctx.isAdmin) return '';
    const status = h('button', { type: 'button', class: 'btn-small', text: a.status === 'ACTIVE' ? 'Deactivate' : 'Activate' });
    status.addEventListener('click', () => change(a, { status: a.status === 'ACTIVE' ? 'INACTIVE' : 'ACTIVE' }, 'Saved.'));
    const dflt = h('button', { type: 'button', class: 'btn-small', text: a.default ? 'Unset default' : 'Make default' });
    dflt.addEventListener('click', () => change(a, { default: !a.default }, a.default ? 'No longer the default.' : a.authorizerName + ' is the default.'));
    return h('span.btns', {}, status, dflt, confirmButton('Delete', `Delete ${a.authorizerName}?`, async () => {
      try { await del('/api/v1/authorizers/' + enc(a.authorizerName)); toast('Deleted.'); await load(); } catch (e) { toast(e.message, 'error'); }
    }, 'btn-small btn-danger'));
  }
  function keys(a) {
    const names = Object.keys(a.tokenSigningPublicKeys || {});
    if (!names.length) return a.signingDisabled ? 'signing off' : '—';
    return h('span.btns', {}, names.map((k) => ctx.isAdmin ? confirmButton(k + ' ✕', `Remove key ${k}?`, async () => {
      const m = { ...a.tokenSigningPublicKeys };
      delete m[k];
      await change(a, { tokenSigningPublicKeys: m }, 'Key removed.');
    }, 'btn-small') : h('span.mono', { text: k + ' ' })));
  }
  async function load() {
    authorizers = await all('/api/v1/authorizers');
    mount(list, table([
      { label: 'Name', get: (a) => h('span', {}, a.authorizerName, a.default ? ' ' : '', a.default ? badge('default', 'ok') : '') },
      { label: 'Token key name', get: (a) => h('span.mono', { text: a.tokenKeyName || '' }) },
      { label: 'Signing keys', get: keys },
      { label: 'Status', get: (a) => badge(a.status, a.status === 'ACTIVE' ? 'ok' : 'off') },
      { label: 'Updated', get: (a) => fmtTime(a.updatedAt) },
      { label: '', get: actions },
    ], authorizers, { label: 'Authorizers', empty: 'No custom authorizers.' }));
    const cur = keyTarget.value;
    mount(keyTarget, authorizers.map((a) => h('option', { value: a.authorizerName, text: a.authorizerName })));
    if (cur) keyTarget.value = cur;
  }

  let createForm = null;
  let keyForm = null;
  if (ctx.isAdmin) {
    const name = h('input', { name: 'authorizerName', type: 'text', required: true, placeholder: 'devices' });
    const tkn = h('input', { name: 'tokenKeyName', type: 'text', placeholder: 'x-token' });
    const kname = h('input', { name: 'keyName', type: 'text', placeholder: 'key-1' });
    const pem = h('textarea', { name: 'tokenSigningPublicKeys', rows: 4, class: 'mono', placeholder: '-----BEGIN PUBLIC KEY-----' });
    const nosign = h('input', { name: 'signingDisabled', type: 'checkbox', id: 'auth-nosign' });
    const dflt = h('input', { name: 'default', type: 'checkbox', id: 'auth-default' });
    createForm = h('form.card', { 'aria-label': 'Create an authorizer' }, formBox(),
      h('div.row', {}, field('Name', name), field('Token key name', tkn), field('Key name', kname)),
      field('Public key (PEM)', pem),
      h('div.check', {}, nosign, h('label', { for: 'auth-nosign', text: 'Signing disabled (tokens are not signed)' })),
      h('div.check', {}, dflt, h('label', { for: 'auth-default', text: 'Default authorizer' })),
      h('div.actions', {}, h('button.btn-primary', { type: 'submit', text: 'Create authorizer' })));
    createForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearProblem(createForm);
      const body = { authorizerName: name.value.trim(), status: 'ACTIVE' };
      if (tkn.value.trim()) body.tokenKeyName = tkn.value.trim();
      if (pem.value.trim()) body.tokenSigningPublicKeys = { [kname.value.trim() || 'key-1']: pem.value.trim() };
      if (nosign.checked) body.signingDisabled = true;
      if (dflt.checked) body.default = true;
      try { await post('/api/v1/authorizers', body); toast('Created ' + body.authorizerName + '.'); createForm.reset(); await load(); } catch (e) { showProblem(createForm, e); }
    });

    const kn = h('input', { name: 'keyName', type: 'text', required: true, placeholder: 'key-2' });
    const kp = h('textarea', { name: 'tokenSigningPublicKeys', rows: 4, class: 'mono', required: true, placeholder: '-----BEGIN PUBLIC KEY-----' });
    keyForm = h('form.card', { 'aria-label': 'Add a signing key' }, formBox(),
      h('div.row', {}, field('Authorizer', keyTarget), field('Key name', kn)), field('Public key (PEM)', kp),
      h('div.actions', {}, h('button', { type: 'submit', text: 'Add key' })));
    keyForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearProblem(keyForm);
      const a = authorizers.find((x) => x.authorizerName === keyTarget.value);
      if (!a) return;
      try {
        await patch('/api/v1/authorizers/' + enc(a.authorizerName), { tokenSigningPublicKeys: { ...(a.tokenSigningPublicKeys || {}), [kn.value.trim()]: kp.value.trim() } }, { ifMatch: '"' + a.version + '"' });
        toast('Key added.');
        kn.value = '';
        kp.value = '';
        await load();
      } catch (e) { showProblem(keyForm, e); }
    });
  }
  mount(root, h('h1', { text: 'Custom authorizers' }),
    h('p.muted', { text: 'Devices that cannot use certificates or OAuth send a token (signed with one of these keys) in the named header or query parameter; the default authorizer is used when a device names none.' }),
    section('Authorizers', list),
    ctx.isAdmin ? h('div.grid2', {}, section('Create an authorizer', createForm), section('Add a signing key', keyForm)) : '');
  await load();
}
