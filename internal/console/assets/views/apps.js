// Registered OAuth apps: client ids, redirect URIs, scopes and grant types;
// a confidential app's secret is shown once.
import { h, mount, field, table, badge, fmtTime, section, formBox, confirmButton, toast, splitList } from '../dom.js';
import { all, post, del, enc, showProblem, clearProblem } from '../api.js';
import { oneTimeSecret } from './thing.js';

export async function render(root, _params, ctx) {
  const list = h('div');
  const out = h('div', { 'aria-live': 'polite' });
  async function load() {
    const apps = await all('/api/v1/apps');
    mount(list, table([
      { label: 'Client ID', get: (a) => h('span.mono', { text: a.clientId }) },
      { label: 'Type', get: (a) => badge(a.public ? 'public' : 'confidential', a.public ? 'wait' : 'ok') },
      { label: 'Description', get: (a) => a.description || '' },
      { label: 'Redirect URIs', get: (a) => h('span.mono.wrap', { text: (a.redirectUris || []).join('\n') }) },
      { label: 'Scopes', get: (a) => (a.scopes || []).join(' ') },
      { label: 'Grants', get: (a) => (a.grantTypes || []).join(', ') },
      { label: 'Created', get: (a) => fmtTime(a.createdAt) },
      { label: '', get: (a) => ctx.isAdmin ? confirmButton('Delete', `Delete ${a.clientId}?`, async () => {
        try { await del('/api/v1/apps/' + enc(a.clientId)); toast('Deleted.'); await load(); } catch (e) { toast(e.message, 'error'); }
      }, 'btn-small btn-danger') : '' },
    ], apps, { label: 'Apps', empty: 'No registered apps.' }));
  }
  let form = null;
  if (ctx.isAdmin) {
    const name = h('input', { name: 'name', type: 'text', required: true, placeholder: 'dashboard' });
    const desc = h('input', { name: 'description', type: 'text' });
    const redirects = h('textarea', { name: 'redirectUris', rows: 2, class: 'mono', placeholder: 'https://dashboard.example/callback' });
    const scopes = h('input', { name: 'scopes', type: 'text', placeholder: 'openid offline_access' });
    const grants = h('input', { name: 'grantTypes', type: 'text', placeholder: 'authorization_code refresh_token' });
    const pub = h('input', { name: 'public', type: 'checkbox', id: 'app-public' });
    form = h('form.card', { 'aria-label': 'Register an app' }, formBox(),
      h('div.row', {}, field('Name', name, 'The client id becomes app.<name>.'), field('Description', desc)),
      field('Redirect URIs', redirects, 'One per line.'),
      h('div.row', {}, field('Scopes', scopes, 'Empty: openid offline_access.'), field('Grant types', grants, 'Empty: authorization_code refresh_token.')),
      h('div.check', {}, pub, h('label', { for: 'app-public', text: 'Public (browser or mobile app: no secret, PKCE required)' })),
      h('div.actions', {}, h('button.btn-primary', { type: 'submit', text: 'Register app' })));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearProblem(form);
      const body = { name: name.value.trim(), public: pub.checked };
      if (desc.value.trim()) body.description = desc.value.trim();
      if (redirects.value.trim()) body.redirectUris = splitList(redirects.value);
      if (scopes.value.trim()) body.scopes = splitList(scopes.value);
      if (grants.value.trim()) body.grantTypes = splitList(grants.value);
      try {
        const a = await post('/api/v1/apps', body);
        mount(out, a.clientSecret ? oneTimeSecret('Client secret of ' + a.clientId, a.clientSecret) : h('p', { role: 'status', text: 'Registered ' + a.clientId + ' (public: no secret).' }));
        form.reset();
        await load();
      } catch (e) { showProblem(form, e); }
    });
  }
  mount(root, h('h1', { text: 'OAuth apps' }), out, section('Apps', list), form ? section('Register an app', form) : '');
  await load();
}
