// Manufacturer CAs (whose device certificates Gatehouse trusts) and the
// certificates of things.
import { h, mount, field, table, badge, fmtTime, when, section, formBox, confirmButton, toast } from '../dom.js';
import { get, all, post, del, enc, showProblem, clearProblem } from '../api.js';

export async function render(root, _params, ctx, query) {
  const cas = h('div');
  const certs = h('div');
  const caInfo = h('div');
  async function loadCAs() {
    const r = await get('/api/v1/manufacturer-cas');
    mount(cas, table([
      { label: 'Name', get: (m) => m.name },
      { label: 'Subject', get: (m) => m.subject || '' },
      { label: 'Expires', get: (m) => fmtTime(m.notAfter) },
      { label: 'Fingerprint', get: (m) => h('span.mono', { text: m.fingerprint.slice(0, 16) + '…', title: m.fingerprint }) },
      { label: 'Status', get: (m) => badge(m.status, m.status === 'ACTIVE' ? 'ok' : 'off') },
      { label: 'Verified', get: (m) => m.verified ? 'yes' : 'no' },
      { label: 'Auto-register', get: (m) => m.autoRegister ? 'yes (' + m.jitStatus + ')' : 'no' },
      { label: 'Thing type', get: (m) => m.thingType || '' },
      { label: '', get: (m) => ctx.isAdmin ? confirmButton('Remove', `Remove ${m.name}?`, async () => {
        try { await del('/api/v1/manufacturer-cas/' + enc(m.name)); toast('Removed.'); loadCAs(); } catch (e) { toast(e.message, 'error'); }
      }, 'btn-small') : '' },
    ], r.items || [], { label: 'Manufacturer CAs', empty: 'No manufacturer CAs.' }));
  }
  const status = h('select', { name: 'status' }, ['', 'ACTIVE', 'INACTIVE', 'PENDING_ACTIVATION', 'REVOKED'].map((s) => h('option', { value: s, text: s || 'any status' })));
  const thingName = h('input', { name: 'thingName', type: 'search', value: query.get('thingName') || '' });
  const filters = h('form.filters', { role: 'search', 'aria-label': 'Filter certificates' }, field('Thing', thingName), field('Status', status),
    h('div.actions', {}, h('button', { type: 'submit', text: 'Filter' })));
  async function loadCerts() {
    const q = new URLSearchParams();
    if (thingName.value) q.set('thingName', thingName.value);
    if (status.value) q.set('status', status.value);
    const cs = await all('/api/v1/certificates' + (q.toString() ? '?' + q : ''));
    mount(certs, table([
      { label: 'Certificate ID', get: (c) => h('a.mono', { href: '#/certificates/' + enc(c.certificateId), text: c.certificateId.slice(0, 16) + '…', title: c.certificateId }) },
      { label: 'Thing', get: (c) => c.thingName ? h('a', { href: '#/things/' + enc(c.thingName), text: c.thingName }) : '' },
      { label: 'Subject', get: (c) => c.subject },
      { label: 'CA', get: (c) => c.ca },
      { label: 'Status', get: (c) => badge(c.status, c.status === 'ACTIVE' ? 'ok' : 'off') },
      { label: 'Not after', get: (c) => when(c.notAfter) },
      { label: '', get: (c) => ctx.isAdmin ? certActions(c, loadCerts) : '' },
    ], cs, { label: 'Certificates', empty: 'No certificates match.' }));
  }
  filters.addEventListener('submit', (ev) => { ev.preventDefault(); loadCerts().catch((e) => toast(e.message, 'error')); });

  let form = null;
  if (ctx.isAdmin) {
    const name = h('input', { name: 'name', type: 'text', required: true });
    const pem = h('textarea', { name: 'certificatePem', rows: 6, required: true, placeholder: '-----BEGIN CERTIFICATE-----', class: 'mono' });
    const auto = h('input', { name: 'autoRegister', type: 'checkbox' });
    form = h('form.card', { 'aria-label': 'Add a manufacturer CA' }, formBox(),
      field('Name', name), field('CA certificate (PEM)', pem),
      h('div.check', {}, auto, h('label', { for: auto.id || (auto.id = 'auto-reg'), text: 'Register unknown device certificates just in time' })),
      h('div.actions', {}, h('button.btn-primary', { type: 'submit', text: 'Add CA' })));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearProblem(form);
      try {
        await post('/api/v1/manufacturer-cas', { name: name.value.trim(), certificatePem: pem.value, autoRegister: auto.checked || undefined });
        toast('Added.');
        form.reset();
        loadCAs();
      } catch (e) { showProblem(form, e); }
    });
  }
  mount(root, h('h1', { text: 'Certificates & CAs' }),
    section('Gatehouse CA', caInfo),
    section('Manufacturer CAs', cas, form),
    section('Certificates', filters, certs));
  get('/api/v1/ca').then((info) => mount(caInfo,
    h('dl.facts.facts2', {},
      h('dt', { text: 'Issuing CA' }), h('dd', { text: info.subject || '' }),
      h('dt', { text: 'Fingerprint' }), h('dd.mono', { text: info.fingerprint || '' }),
      h('dt', { text: 'Root' }), h('dd', { text: info.rootSubject || '' }),
      h('dt', { text: 'Root fingerprint' }), h('dd.mono', { text: info.rootFingerprint || '' }),
      h('dt', { text: 'Valid until' }), h('dd', {}, when(info.notAfter)),
      h('dt', { text: 'Registration code' }), h('dd.mono', { text: info.registrationCode || '' })),
    h('p', {}, h('a', { href: '/ca', text: 'CA chain (PEM)' }), ' — what devices trust Gatehouse by.'),
  )).catch((e) => mount(caInfo, h('p.muted', { text: e.status === 403 ? 'Your role does not allow this.' : e.message })));
  await Promise.all([loadCAs(), loadCerts()]);
}

function certActions(c, reload) {
  const id = enc(c.certificateId);
  const act = (label, path) => {
    const b = h('button', { type: 'button', class: 'btn-small', text: label });
    b.addEventListener('click', async () => {
      try { await post('/api/v1/certificates/' + id + '/' + path); toast(label + 'd.'); reload(); } catch (e) { toast(e.message, 'error'); }
    });
    return b;
  };
  if (c.status === 'REVOKED') return '';
  return h('span.btns', {}, c.status === 'ACTIVE' ? act('Deactivate', 'deactivate') : act('Activate', 'activate'),
    confirmButton('Revoke', 'Revoke?', async () => {
      try { await post('/api/v1/certificates/' + id + '/revoke'); toast('Revoked.'); reload(); } catch (e) { toast(e.message, 'error'); }
    }, 'btn-small btn-danger'));
}
