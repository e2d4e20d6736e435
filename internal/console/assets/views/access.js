// Access requests: a person asks for a relation to a thing; the thing's
// owners (and administrators) approve it, for a while or for good, or deny
// it. Everyone sees the requests they made or may decide.
import { h, mount, field, table, badge, fmtTime, section, formBox, toast } from '../dom.js';
import { all, post, enc, showProblem, clearProblem } from '../api.js';

const DURATIONS = [['24h', '1 day'], ['168h', '7 days'], ['720h', '30 days'], ['1h', '1 hour'], ['', 'no expiry']];
const STATE_KIND = { pending: 'wait', approved: 'ok', denied: 'off', cancelled: 'off' };

export async function render(root, _params, ctx, query) {
  const list = h('div');
  const state = h('select', { name: 'state' }, ['pending', '', 'approved', 'denied', 'cancelled'].map((s) => h('option', { value: s, text: s || 'any state' })));
  state.value = query.get('state') ?? 'pending';
  const filters = h('form.filters', { role: 'search', 'aria-label': 'Filter access requests' }, field('State', state),
    h('div.actions', {}, h('button', { type: 'submit', text: 'Filter' })));
  const me = ctx.session.username;

  function decide(ar) {
    if (ar.state !== 'pending') return ar.decidedBy ? 'by ' + ar.decidedBy + (ar.decisionNote ? ': ' + ar.decisionNote : '') : '';
    const ifMatch = '"' + ar.version + '"';
    const act = async (verb, body) => {
      try {
        await post('/api/v1/access-requests/' + enc(ar.id) + '/' + verb, body, { ifMatch });
        toast(verb === 'approve' ? 'Approved.' : verb === 'deny' ? 'Denied.' : 'Cancelled.');
        await load();
      } catch (e) { toast(e.message, 'error'); }
    };
    if (ar.requester === me && !ctx.isAdmin) {
      const cancel = h('button', { type: 'button', class: 'btn-small', text: 'Cancel request' });
      cancel.addEventListener('click', () => act('cancel'));
      return cancel;
    }
    const ttl = h('select', { name: 'ttl', 'aria-label': 'Access for (' + ar.requester + ' on ' + ar.thing + ')' },
      DURATIONS.map(([v, t]) => h('option', { value: v, text: t })));
    const note = h('input', { name: 'note', type: 'text', placeholder: 'note', 'aria-label': 'Note (' + ar.requester + ' on ' + ar.thing + ')' });
    const approve = h('button', { type: 'button', class: 'btn-small btn-primary', text: 'Approve' });
    const deny = h('button', { type: 'button', class: 'btn-small btn-danger', text: 'Deny' });
    approve.addEventListener('click', () => {
      const body = {};
      if (ttl.value) body.ttl = ttl.value;
      if (note.value.trim()) body.note = note.value.trim();
      act('approve', body);
    });
    deny.addEventListener('click', () => act('deny', note.value.trim() ? { note: note.value.trim() } : undefined));
    return h('span.btns', {}, ttl, note, approve, deny);
  }

  async function load() {
    const q = new URLSearchParams();
    if (state.value) q.set('state', state.value);
    const reqs = await all('/api/v1/access-requests' + (q.toString() ? '?' + q : ''));
    mount(list, table([
      { label: 'Asked', get: (a) => fmtTime(a.createdAt) },
      { label: 'Who', get: (a) => a.requester },
      { label: 'Wants', get: (a) => a.relation },
      { label: 'Thing', get: (a) => h('a', { href: '#/things/' + enc(a.thing), text: a.thing }) },
      { label: 'Reason', get: (a) => a.reason || '' },
      { label: 'State', get: (a) => h('span', {}, badge(a.state, STATE_KIND[a.state]), a.grantExpiresAt ? ' until ' + fmtTime(a.grantExpiresAt) : '') },
      { label: '', get: decide },
    ], reqs, { label: 'Access requests', empty: 'No access requests.' }));
  }
  filters.addEventListener('submit', (ev) => { ev.preventDefault(); load().catch((e) => toast(e.message, 'error')); });

  const thing = h('input', { name: 'thing', type: 'text', required: true, placeholder: 'lamp-1' });
  const relation = h('select', { name: 'relation' }, ['viewer', 'operator', 'owner'].map((r) => h('option', { value: r, text: r })));
  const reason = h('input', { name: 'reason', type: 'text', required: true, placeholder: 'why you need it' });
  const form = h('form.card', { 'aria-label': 'Request access' }, formBox(),
    h('div.row', {}, field('Thing', thing), field('Relation', relation), field('Reason', reason)),
    h('div.actions', {}, h('button.btn-primary', { type: 'submit', text: 'Request access' })));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearProblem(form);
    try {
      await post('/api/v1/access-requests', { thing: thing.value.trim(), relation: relation.value, reason: reason.value.trim() });
      toast('Requested. The thing\'s owners decide.');
      form.reset();
      state.value = 'pending';
      await load();
    } catch (e) { showProblem(form, e); }
  });

  mount(root, h('h1', { text: 'Access requests' }),
    h('p.muted', { text: 'Ask for access to a thing; its owners approve (for a while, or for good) or deny.' }),
    section('Request access', form),
    section('Requests', filters, list));
  await load();
}
