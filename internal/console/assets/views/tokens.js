// Registration tokens of the certificate vending gateway (POST /register):
// create (the secret is shown once), revoke.
import { h, mount, field, table, badge, when, section, formBox, confirmButton, toast } from '../dom.js';
import { all, post, del, enc, showProblem, clearProblem } from '../api.js';
import { oneTimeSecret } from './thing.js';

export async function render(root, _params, ctx) {
  const list = h('div');
  const out = h('div', { 'aria-live': 'polite' });
  async function load() {
    const toks = await all('/api/v1/registration-tokens');
    mount(list, table([
      { label: 'ID', get: (t) => h('span.mono', { text: t.id }) },
      { label: 'Thing type', get: (t) => t.thingType },
      { label: 'Description', get: (t) => t.description || '' },
      { label: 'Uses', get: (t) => `${t.uses} / ${t.maxUses === 'unlimited' ? '∞ (unlimited)' : t.maxUses}` },
      { label: 'Expires', get: (t) => when(t.expiresAt) || 'never' },
      { label: 'Status', get: (t) => t.revokedAt ? badge('revoked', 'off') : badge('active', 'ok') },
      { label: '', get: (t) => t.revokedAt || !ctx.isAdmin ? '' : confirmButton('Revoke', 'Revoke this token?', async () => {
        try { await del('/api/v1/registration-tokens/' + enc(t.id)); toast('Revoked.'); load(); } catch (e) { toast(e.message, 'error'); }
      }, 'btn-small') },
    ], toks, { label: 'Registration tokens', empty: 'No registration tokens.' }));
  }
  const types = await all('/api/v1/thing-types').catch(() => []);
  const type = h('select', { name: 'thingType', required: true }, types.map((t) => h('option', { value: t.name, text: t.name })));
  const desc = h('input', { name: 'description', type: 'text' });
  const uses = h('input', { name: 'maxUses', type: 'number', value: '1', min: '-1' });
  const ttl = h('input', { name: 'expiresInSeconds', type: 'number', value: '86400', min: '0' });
  const form = h('form.card', { 'aria-label': 'Create a registration token' }, formBox(),
    h('div.row', {}, field('Thing type', type), field('Description', desc)),
    h('div.row', {}, field('Max uses', uses, '1 is single use; -1 is unlimited (needs an expiry).'), field('Expires in (seconds)', ttl, '0 never expires.')),
    h('div.actions', {}, h('button.btn-primary', { type: 'submit', text: 'Create token' })));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearProblem(form);
    const body = { thingType: type.value };
    if (desc.value.trim()) body.description = desc.value.trim();
    if (Number(uses.value)) body.maxUses = Number(uses.value);
    if (Number(ttl.value)) body.expiresInSeconds = Number(ttl.value);
    try {
      const t = await post('/api/v1/registration-tokens', body);
      mount(out, oneTimeSecret('Registration token ' + t.id, t.token));
      load();
    } catch (e) { showProblem(form, e); }
  });
  mount(root, h('h1', { text: 'Registration tokens' }),
    h('p.muted', { text: 'Devices send these as "Authorization: DeviceToken <token>" to POST /register to get a certificate.' }),
    out, list, section('Create a registration token', types.length ? form : h('p', { text: 'Create a thing type first.' })));
  await load();
}
