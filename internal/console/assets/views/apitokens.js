// Admin API tokens and AWS access keys: the credentials of scripts, the
// CLI and AWS SDKs. Secrets are shown once; revoke ends them.
import { h, mount, field, table, fmtTime, section, formBox, confirmButton, toast } from '../dom.js';
import { all, post, del, enc, showProblem, clearProblem } from '../api.js';
import { oneTimeSecret } from './thing.js';

const ROLES = ['admin', 'operator', 'user'];

function roleSelect(name) {
  return h('select', { name }, ROLES.map((r) => h('option', { value: r, text: r })));
}

// apiTokenForm creates an API token, shows its secret once in out and
// calls reload. With fixed {username, roles} the token acts as that user;
// otherwise the form asks for a user (optional) and a role.
export function apiTokenForm(out, reload, fixed) {
  const tname = h('input', { name: 'name', type: 'text', required: true, placeholder: fixed ? 'laptop-cli' : 'ci-deploy' });
  const tuser = h('input', { name: 'username', type: 'text', placeholder: 'optional: act as this user' });
  const trole = roleSelect('roles');
  const tttl = h('input', { name: 'ttl', type: 'text', placeholder: '720h' });
  const label = fixed ? 'Create an API token for this user' : 'Create an API token';
  const form = h('form.card', { 'aria-label': label }, formBox(),
    h('div.row', {}, field(fixed ? 'Token name' : 'Name', tname), fixed ? '' : [field('User', tuser), field('Role', trole)],
      field('Lifetime', tttl, 'A Go duration such as 720h; empty never expires.')),
    h('div.actions', {}, h('button.btn-primary', { type: 'submit', text: fixed ? 'Create token' : 'Create API token' })));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearProblem(form);
    const body = fixed ? { name: tname.value.trim(), username: fixed.username, roles: fixed.roles() } : { name: tname.value.trim(), roles: [trole.value] };
    if (!fixed && tuser.value.trim()) body.username = tuser.value.trim();
    if (tttl.value.trim()) body.ttl = tttl.value.trim();
    try {
      const t = await post('/api/v1/api-tokens', body);
      mount(out, oneTimeSecret('API token ' + t.name, t.token));
      form.reset();
      await reload();
    } catch (e) { showProblem(form, e); }
  });
  return form;
}

export async function render(root) {
  const tokens = h('div');
  const keys = h('div');
  const out = h('div', { 'aria-live': 'polite' });

  async function loadTokens() {
    const list = await all('/api/v1/api-tokens');
    mount(tokens, table([
      { label: 'Name', get: (t) => t.name },
      { label: 'ID', get: (t) => h('span.mono', { text: t.id }) },
      { label: 'User', get: (t) => t.username ? h('a', { href: '#/users/' + enc(t.username), text: t.username }) : '—' },
      { label: 'Roles', get: (t) => (t.roles || []).join(', ') },
      { label: 'Created', get: (t) => fmtTime(t.createdAt) },
      { label: 'Expires', get: (t) => fmtTime(t.expiresAt) || 'never' },
      { label: '', get: (t) => confirmButton('Revoke', `Revoke ${t.name}?`, async () => {
        try { await del('/api/v1/api-tokens/' + enc(t.id)); toast('Revoked.'); await loadTokens(); } catch (e) { toast(e.message, 'error'); }
      }, 'btn-small btn-danger') },
    ], list, { label: 'API tokens', empty: 'No API tokens.' }));
  }
  async function loadKeys() {
    let list;
    try { list = await all('/api/v1/aws-keys'); } catch (e) {
      mount(keys, h('p.muted', { text: e.status === 404 ? 'The AWS IoT API is not enabled on this server.' : e.message }));
      return;
    }
    mount(keys, table([
      { label: 'Access key ID', get: (k) => h('span.mono', { text: k.accessKeyId }) },
      { label: 'Name', get: (k) => k.name },
      { label: 'Roles', get: (k) => (k.roles || []).join(', ') },
      { label: 'Created', get: (k) => fmtTime(k.createdAt) },
      { label: '', get: (k) => confirmButton('Revoke', `Revoke ${k.accessKeyId}?`, async () => {
        try { await del('/api/v1/aws-keys/' + enc(k.accessKeyId)); toast('Revoked.'); await loadKeys(); } catch (e) { toast(e.message, 'error'); }
      }, 'btn-small btn-danger') },
    ], list, { label: 'AWS access keys', empty: 'No AWS access keys.' }));
  }

  const tform = apiTokenForm(out, loadTokens);

  const kname = h('input', { name: 'name', type: 'text', required: true, placeholder: 'aws-cli' });
  const krole = roleSelect('roles');
  const kform = h('form.card', { 'aria-label': 'Create an AWS access key' }, formBox(),
    h('div.row', {}, field('Name', kname), field('Role', krole)),
    h('div.actions', {}, h('button.btn-primary', { type: 'submit', text: 'Create access key' })));
  kform.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearProblem(kform);
    try {
      const k = await post('/api/v1/aws-keys', { name: kname.value.trim(), roles: [krole.value] });
      mount(out, oneTimeSecret('Secret access key of ' + k.accessKeyId, k.secretAccessKey));
      kform.reset();
      await loadKeys();
    } catch (e) { showProblem(kform, e); }
  });

  mount(root, h('h1', { text: 'API tokens & AWS keys' }), out,
    section('API tokens', tokens, tform),
    section('AWS access keys', h('p.muted', { text: 'For the AWS CLI and SDKs against the AWS-IoT-compatible API (SigV4).' }), keys, kform));
  await Promise.all([loadTokens(), loadKeys()]);
}
