// One thing type: what it says, and (for administrators) its edit form:
// OAuth scopes, attribute schema (name, required, pattern), default
// policies and allowed authentication methods (PATCH with If-Match).
import { h, mount, field, table, badge, when, section, formBox, splitList, confirmButton, toast } from '../dom.js';
import { get, all, patch, del, enc, showProblem, clearProblem } from '../api.js';

// AUTH_METHODS are the registry's authentication methods, described.
const AUTH_METHODS = [
  ['client_secret', 'client secret'],
  ['private_key_jwt', 'signed JWT (private_key_jwt)'],
  ['certificate', 'X.509 certificate (mutual TLS)'],
  ['custom_authorizer', 'custom authorizer token'],
  ['access_token', 'OAuth access token'],
];

export async function render(root, params, ctx) {
  const name = params.name;
  const path = '/api/v1/thing-types/' + enc(name);
  let tt, etag;
  try {
    ({ data: tt, etag } = await get(path, { withEtag: true }));
  } catch (e) {
    if (e.status === 404) {
      mount(root, h('h1', { text: name }), h('p', { text: 'No such thing type.' }), h('a', { href: '#/thing-types', text: 'Back to thing types' }));
      return;
    }
    throw e;
  }
  const facts = h('div');
  const drawFacts = () => mount(facts,
    h('dl.facts', {},
      h('dt', { text: 'Scopes' }), h('dd', {}, (tt.scopes || []).length ? tt.scopes.flatMap((sc, i) => [i ? ', ' : '',
        h('code', { text: sc }), tt.scopeDescriptions && tt.scopeDescriptions[sc] ? ' (' + tt.scopeDescriptions[sc] + ')' : '']) : 'none'),
      h('dt', { text: 'Auth methods' }), h('dd', { text: (tt.authMethods || []).join(', ') || 'any' }),
      h('dt', { text: 'Default policies' }), h('dd', {}, (tt.defaultPolicies || []).length ? tt.defaultPolicies.flatMap((p, i) => [i ? ', ' : '', h('a', { href: '#/policies/' + enc(p), text: p })]) : 'none'),
      h('dt', { text: 'Device-flow approver' }), h('dd', { text: tt.approverRelation || 'none' }),
      h('dt', { text: 'Updated' }), h('dd', {}, when(tt.updatedAt))),
    table([
      { label: 'Attribute', get: (a) => a.name },
      { label: 'Required', get: (a) => a.required ? badge('required', 'wait') : '' },
      { label: 'Pattern', get: (a) => a.pattern ? h('code', { text: a.pattern }) : '' },
    ], tt.attributeSchema || [], { label: 'Attribute schema', empty: 'No attributes.' }));
  drawFacts();

  let form = null;
  if (ctx.isAdmin) {
    const policies = (await all('/api/v1/policies')).map((p) => p.name);
    const desc = h('input', { name: 'description', type: 'text', value: tt.description || '' });
    const scopes = h('input', { name: 'scopes', type: 'text', value: (tt.scopes || []).join(' '), placeholder: 'publish telemetry' });
    const described = h('textarea', { name: 'scopeDescriptions', rows: 3,
      value: Object.entries(tt.scopeDescriptions || {}).map(([k, v]) => k + ': ' + v).join('\n'), placeholder: 'publish: Send its readings' });
    const attrs = h('textarea', { name: 'attributeSchema', rows: 4, class: 'mono',
      value: (tt.attributeSchema || []).map((a) => a.name + (a.required ? '*' : '') + (a.pattern ? ' ' + a.pattern : '')).join('\n') });
    const approver = h('select', { name: 'approverRelation' }, ['', 'owner', 'operator', 'viewer'].map((r) => h('option', { value: r, text: r || 'none' })));
    approver.value = tt.approverRelation || '';
    const checks = (groupName, items, chosen) => h('fieldset.checks', {}, h('legend', { text: groupName }),
      items.map(([v, label]) => h('label.check', {}, h('input', { type: 'checkbox', name: groupName, value: v, checked: chosen.includes(v) }), ' ' + label)));
    const polBox = checks('Default policies', policies.map((p) => [p, p]), tt.defaultPolicies || []);
    const authBox = checks('Auth methods', AUTH_METHODS, tt.authMethods || []);
    form = h('form.card', { 'aria-label': 'Edit the thing type' }, formBox(),
      field('Description', desc),
      h('div.row', {}, field('OAuth scopes', scopes, 'Space separated.'), field('Device-flow approver becomes', approver)),
      field('Scope descriptions', described, 'One scope a line, "scope: what it lets the thing do", shown to the person asked to approve a device.'),
      field('Attribute schema', attrs, 'One attribute a line: name, a trailing * when required, then optionally a pattern the value must match.'),
      h('div.row', {}, polBox, authBox),
      h('div.actions', {}, h('button.btn-primary', { type: 'submit', text: 'Save thing type' })));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearProblem(form);
      const schema = attrs.value.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
        const [n, ...pat] = l.split(/\s+/);
        const a = n.endsWith('*') ? { name: n.slice(0, -1), required: true } : { name: n };
        if (pat.length) a.pattern = pat.join(' ');
        return a;
      });
      const descriptions = {};
      for (const l of described.value.split('\n').map((x) => x.trim()).filter(Boolean)) {
        const i = l.indexOf(':');
        if (i < 1) { showProblem(form, { message: '', fields: [{ field: 'scopeDescriptions', message: `"${l}" is not "scope: description"` }] }); return; }
        descriptions[l.slice(0, i).trim()] = l.slice(i + 1).trim();
      }
      const chosen = (box) => [...box.querySelectorAll('input:checked')].map((c) => c.value);
      const body = {
        description: desc.value.trim(),
        scopes: splitList(scopes.value),
        scopeDescriptions: descriptions,
        attributeSchema: schema,
        defaultPolicies: chosen(polBox),
        authMethods: chosen(authBox),
        approverRelation: approver.value,
      };
      try {
        ({ data: tt, etag } = await patch(path, body, { ifMatch: etag, withEtag: true }));
        toast('Saved thing type ' + name + '.');
        drawFacts();
      } catch (e) { showProblem(form, e); }
    });
  }
  mount(root,
    h('p.crumbs', {}, h('a', { href: '#/thing-types', text: 'Thing types' }), ' / '),
    h('h1', { text: name }),
    tt.description ? h('p.muted', { text: tt.description }) : null,
    h('p', {}, h('a', { href: '#/things?thingType=' + enc(name), text: 'Things of this type' })),
    h('div.grid2', {}, section('Thing type', facts), form ? section('Edit', form) : null),
    ctx.isAdmin ? h('div.actions.danger-zone', {}, confirmButton('Delete thing type', `Delete ${name}?`, async () => {
      try { await del(path, { ifMatch: etag }); toast('Deleted.'); location.hash = '#/thing-types'; } catch (e) { toast(e.message, 'error'); }
    })) : null);
}
