// One certificate: its facts, its chain up to the root Gatehouse knows,
// its status history (from the event log) and activate, deactivate or
// revoke with an RFC 5280 reason.
import { h, mount, field, table, badge, fmtTime, section, formBox, toast, fill } from '../dom.js';
import { get, post, enc, showProblem, clearProblem } from '../api.js';

const REASONS = [[0, 'unspecified'], [1, 'key compromise'], [3, 'affiliation changed'], [4, 'superseded'],
  [5, 'cessation of operation'], [6, 'certificate hold'], [9, 'privilege withdrawn'], [2, 'CA compromise'], [10, 'AA compromise']];
export const REASON_NAMES = Object.fromEntries(REASONS);

export async function render(root, params, ctx) {
  const id = params.id;
  const path = '/api/v1/certificates/' + enc(id);
  const head = h('div');
  const facts = h('div');
  const chain = h('div');
  const history = h('div');
  const actions = h('div');

  async function load() {
    const c = await get(path);
    mount(head, h('h1', {}, 'Certificate ', badge(c.status, c.status === 'ACTIVE' ? 'ok' : 'off')));
    mount(facts, h('dl.facts.facts2', {},
      h('dt', { text: 'Certificate ID' }), h('dd.mono.wrap', { text: c.certificateId }),
      h('dt', { text: 'Thing' }), h('dd', {}, c.thingName ? h('a', { href: '#/things/' + enc(c.thingName), text: c.thingName }) : '—'),
      h('dt', { text: 'Subject' }), h('dd', { text: c.subject }),
      h('dt', { text: 'CA' }), h('dd', { text: c.ca }),
      h('dt', { text: 'Serial number' }), h('dd.mono', { text: c.serialNumber }),
      h('dt', { text: 'Valid' }), h('dd', { text: fmtTime(c.notBefore) + ' — ' + fmtTime(c.notAfter) }),
      c.revokedAt ? [h('dt', { text: 'Revoked' }), h('dd', { text: fmtTime(c.revokedAt) + ' (' + (REASON_NAMES[c.revocationReason || 0] || c.revocationReason) + ')' })] : ''),
    h('details', {}, h('summary', { text: 'PEM' }), h('pre', { text: c.certificatePem })));
    mount(actions);
    if (ctx.isAdmin && c.status !== 'REVOKED') {
      const toggle = h('button', { type: 'button', text: c.status === 'ACTIVE' ? 'Deactivate' : 'Activate' });
      toggle.addEventListener('click', async () => {
        try { await post(path + '/' + (c.status === 'ACTIVE' ? 'deactivate' : 'activate')); toast('Saved.'); await refresh(); } catch (e) { toast(e.message, 'error'); }
      });
      const reason = h('select', { name: 'reason' }, REASONS.map(([v, t]) => h('option', { value: String(v), text: t })));
      const form = h('form.card', { 'aria-label': 'Revoke the certificate' }, formBox(),
        h('div.row', {}, field('Reason', reason, 'Revoking is for good: live connections with it close and the next CRL lists it.')),
        h('div.actions', {}, h('button.btn-danger', { type: 'submit', text: 'Revoke' })));
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        clearProblem(form);
        try { await post(path + '/revoke', { reason: Number(reason.value) }); toast('Revoked.'); await refresh(); } catch (e) { showProblem(form, e); }
      });
      mount(actions, section('Actions', h('div.actions', {}, toggle), form));
    }
  }
  async function loadChain() {
    await fill(chain, async () => {
      const r = await get(path + '/chain');
      return h('ol.chain', { 'aria-label': 'Certificate chain' }, (r.items || []).map((c, i) => h('li', {},
        h('strong', { text: i === 0 ? 'Certificate' : c.subject === c.issuer ? 'Root CA' : 'Issuing CA' }), ' ',
        h('span', { text: c.subject }), h('br'),
        h('small.muted', { text: 'issued by ' + c.issuer + ', valid until ' + fmtTime(c.notAfter) }), h('br'),
        h('small.mono.wrap', { text: c.fingerprint }))));
    });
  }
  async function loadHistory() {
    await fill(history, async () => {
      const r = await get('/api/v1/events?subject=' + enc('certificate/' + id) + '&limit=100');
      return table([
        { label: 'Time', get: (e) => fmtTime(e.time) },
        { label: 'Event', get: (e) => h('span.evtype', { text: e.type.replace(/^certificate\./, '') }) },
        { label: 'By', get: (e) => e.actor },
      ], (r.items || []).slice().reverse(), { label: 'Status history', empty: 'No events recorded.' });
    });
  }
  async function refresh() { await Promise.all([load(), loadHistory()]); }

  mount(root, h('p.crumbs', {}, h('a', { href: '#/pki', text: 'Certificates & CAs' }), ' / certificate'),
    head,
    h('div.grid2', {}, section('Details', facts), section('Chain', chain)),
    section('Status history', history),
    ctx.isAdmin ? actions : '');
  await Promise.all([refresh(), loadChain()]);
}
