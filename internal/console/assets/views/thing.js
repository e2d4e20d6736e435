// One thing: attributes, certificates, policies, relationships, live
// connections and recent events; enable/disable, client secret, delete.
import { h, mount, field, table, badge, when, section, fill, confirmButton, formBox, parseKV, toast } from '../dom.js';
import { get, post, patch, del, all, enc, showProblem, clearProblem } from '../api.js';

export async function render(root, params, ctx) {
  const name = params.name;
  const path = '/api/v1/things/' + enc(name);
  let thing, etag;
  try {
    ({ data: thing, etag } = await get(path, { withEtag: true }));
  } catch (e) {
    if (e.status === 404) {
      mount(root, h('h1', { text: name }), h('p', { text: 'No such thing (or it is not one of yours).' }), h('a', { href: '#/things', text: 'Back to things' }));
      return;
    }
    throw e;
  }

  const header = h('div.page-head');
  const attrs = h('div');
  const conns = h('div', { 'aria-live': 'polite' });
  const certs = h('div');
  const policies = h('div');
  const rels = h('div');
  const events = h('div');

  function drawHeader() {
    const actions = [];
    if (ctx.isAdmin) {
      const next = thing.state === 'enabled' ? 'disabled' : 'enabled';
      const toggle = h('button', { type: 'button', text: thing.state === 'enabled' ? 'Disable' : 'Enable' });
      toggle.addEventListener('click', async () => {
        try {
          ({ data: thing, etag } = await patch(path, { state: next }, { withEtag: true, ifMatch: etag }));
          toast(`${name} is ${thing.state}.`);
          drawHeader();
        } catch (e) { toast(e.message, 'error'); }
      });
      const secret = h('button', { type: 'button', text: 'New client secret' });
      const secretOut = h('div.secret-out');
      secret.addEventListener('click', async () => {
        try {
          const r = await post(path + '/secret');
          mount(secretOut, oneTimeSecret('Client secret', r.clientSecret || JSON.stringify(r)));
        } catch (e) { toast(e.message, 'error'); }
      });
      actions.push(toggle, secret,
        confirmButton('Delete', `Delete ${name}?`, async () => {
          try {
            await del(path, { ifMatch: etag });
            toast(`Deleted ${name}.`);
            ctx.navigate('#/things');
          } catch (e) { toast(e.message, 'error'); }
        }), secretOut);
    }
    mount(header,
      h('p.crumbs', {}, h('a', { href: '#/things', text: 'Things' }), ' / '),
      h('h1', {}, name, ' ', badge(thing.state, thing.state === 'enabled' ? 'ok' : 'off')),
      h('dl.facts', {},
        h('dt', { text: 'Type' }), h('dd', {}, thing.thingType || '—'),
        h('dt', { text: 'ID' }), h('dd.mono', { text: thing.id }),
        h('dt', { text: 'Created' }), h('dd', {}, when(thing.createdAt)),
        h('dt', { text: 'Updated' }), h('dd', {}, when(thing.updatedAt))),
      h('div.actions', {}, actions));
    mount(attrs, table([
      { label: 'Attribute', get: (r) => r[0] },
      { label: 'Value', get: (r) => r[1] },
    ], Object.entries(thing.attributes || {}), { label: 'Attributes', empty: 'No attributes.' }),
    ctx.isAdmin ? attrEditor() : null);
  }

  // attrEditor replaces the attributes (the server checks them against
  // the thing type's schema and answers problems per attribute).
  function attrEditor() {
    const text = h('textarea', { name: 'attributes', rows: 3, value: Object.entries(thing.attributes || {}).map(([k, v]) => k + '=' + v).join('\n') });
    const form = h('form.attr-edit', { 'aria-label': 'Edit attributes' }, formBox(),
      field('Attributes', text, 'One name=value per line; remove a line to remove the attribute.'),
      h('div.actions', {}, h('button', { type: 'submit', text: 'Save attributes' })));
    const wrap = h('details', {}, h('summary', { text: 'Edit attributes' }), form);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearProblem(form);
      try {
        let next;
        try { next = parseKV(text.value); } catch (e) { throw Object.assign(e, { fields: [{ field: 'attributes', message: e.message }] }); }
        ({ data: thing, etag } = await patch(path, { attributes: next, merge: false }, { withEtag: true, ifMatch: etag }));
        toast('Saved the attributes.');
        drawHeader();
      } catch (e) {
        if (e.status === 412) e.message = 'Someone else changed this thing meanwhile: reload the page.';
        showProblem(form, e);
      }
    });
    return wrap;
  }
  drawHeader();

  async function loadConnections() {
    await fill(conns, async () => {
      const r = await get(path + '/connections');
      const items = r.items || [];
      return [
        h('p', {}, items.length ? badge('online', 'ok') : badge('offline', 'off'), ' ',
          items.length ? `${items.length} connection${items.length > 1 ? 's' : ''}` + (items.some((c) => c.replica) ? ` on ${new Set(items.map((c) => c.replica)).size} replica(s)` : '') : 'not connected'),
        items.length ? table([
          { label: 'Client ID', get: (c) => c.username && c.username !== c.clientId ? [c.clientId, h('br'), h('small.muted', { text: 'user ' + c.username })] : c.clientId },
          { label: 'From', get: (c) => h('span.mono', { text: c.remoteAddr }) },
          { label: 'Listener', get: (c) => `${c.listener}${c.protocolVersion ? ', MQTT ' + ({ 3: '3.1', 4: '3.1.1', 5: '5' }[c.protocolVersion] || c.protocolVersion) : ''}` },
          { label: 'Since', get: (c) => when(c.connectedAt) },
        ], items, { label: 'Connections' }) : null,
      ];
    });
  }

  const loads = [];
  if (ctx.canRead) {
    loads.push(loadConnections());
    loads.push(fill(certs, async () => {
      const cs = await all('/api/v1/certificates?thingName=' + enc(name));
      return table([
        { label: 'Certificate ID', get: (c) => h('span.mono', { text: c.certificateId.slice(0, 16) + '…', title: c.certificateId }) },
        { label: 'Subject', get: (c) => c.subject },
        { label: 'CA', get: (c) => c.ca },
        { label: 'Status', get: (c) => badge(c.status, c.status === 'ACTIVE' ? 'ok' : 'off') },
        { label: 'Expires', get: (c) => when(c.notAfter) },
      ], cs, { label: 'Certificates', empty: 'No certificates.' });
    }));
    loads.push(fill(policies, async () => {
      const at = await get('/api/v1/policy-attachments?targetKind=thing&target=' + enc(name));
      const rows = (at.items || []).map((a) => ({ policy: a.policyName, via: 'attached to the thing' }));
      if (thing.thingType) {
        try {
          const tt = await get('/api/v1/thing-types/' + enc(thing.thingType));
          for (const p of tt.defaultPolicies || []) rows.push({ policy: p, via: 'default of type ' + tt.name });
        } catch { /* type gone */ }
      }
      return table([
        { label: 'Policy', get: (r) => h('a', { href: '#/policies/' + enc(r.policy), text: r.policy }) },
        { label: 'Why', get: (r) => r.via },
      ], rows, { label: 'Policies', empty: 'No policies apply directly.' });
    }));
    loads.push(fill(events, async () => {
      const r = await get('/api/v1/events?limit=1000&subject=' + enc('thing/' + name));
      const evs = (r.items || []).slice(-20).reverse();
      return table([
        { label: 'Time', get: (e) => when(e.time) },
        { label: 'Type', get: (e) => e.type },
        { label: 'Actor', get: (e) => e.actor },
        { label: 'Details', get: (e) => h('code.details', { text: e.details ? JSON.stringify(e.details) : '' }) },
      ], evs, { label: 'Recent events', empty: 'No events.' });
    }));
  }
  async function loadRels() {
    await fill(rels, async () => {
      const [a, b] = await Promise.all([
        get('/api/v1/relationships?objectKind=thing&object=' + enc(name)),
        ctx.canRead ? get('/api/v1/relationships?subjectKind=thing&subject=' + enc(name)) : { items: [] },
      ]);
      const rows = [...(a.items || []), ...(b.items || [])];
      return table([
        { label: 'Subject', get: (r) => r.subjectKind + '/' + r.subject },
        { label: 'Relation', get: (r) => r.relation },
        { label: 'Object', get: (r) => r.objectKind + '/' + r.object },
        { label: 'Since', get: (r) => when(r.createdAt) },
        { label: '', get: (r) => ctx.isAdmin ? confirmButton('Remove', 'Remove?', async () => {
          const q = new URLSearchParams({ subjectKind: r.subjectKind, subject: r.subject, relation: r.relation, objectKind: r.objectKind, object: r.object });
          try { await del('/api/v1/relationships?' + q); toast('Removed.'); loadRels(); } catch (e) { toast(e.message, 'error'); }
        }, 'btn-small') : '' },
      ], rows, { label: 'Relationships', empty: 'Nobody owns or operates this thing yet.' });
    });
  }
  loads.push(loadRels());

  let relForm = null;
  if (ctx.isAdmin) {
    const user = h('input', { name: 'subject', type: 'text', required: true, placeholder: 'alice' });
    const rel = h('select', { name: 'relation' }, ['owner', 'operator', 'viewer'].map((r) => h('option', { value: r, text: r })));
    relForm = h('form.inline-form', { 'aria-label': 'Add a relationship' }, formBox(),
      field('User', user), field('Relation', rel), h('div.actions', {}, h('button', { type: 'submit', text: 'Add' })));
    relForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearProblem(relForm);
      try {
        await post('/api/v1/relationships', { subjectKind: 'user', subject: user.value.trim(), relation: rel.value, objectKind: 'thing', object: name });
        relForm.reset();
        loadRels();
      } catch (e) { showProblem(relForm, e); }
    });
  }

  mount(root, header,
    h('div.grid2', {},
      section('Attributes', attrs),
      ctx.canRead ? section('Live connection', conns) : null),
    ctx.canRead ? section('Certificates', certs) : null,
    ctx.canRead ? section('Policies', policies) : null,
    section('Relationships', rels, relForm),
    ctx.canRead ? section('Recent events', events) : null);
  await Promise.all(loads);
  if (!ctx.canRead) return undefined;
  const timer = setInterval(loadConnections, 5000);
  return () => clearInterval(timer);
}

export function oneTimeSecret(label, value) {
  const out = h('output.secret', { text: value });
  const copy = h('button', { type: 'button', class: 'btn-small', text: 'Copy' });
  copy.addEventListener('click', async () => {
    try { await navigator.clipboard.writeText(value); toast('Copied.'); } catch { toast('Copy failed: select the text instead.', 'error'); }
  });
  return h('div.once', { role: 'status' },
    h('strong', { text: label + ' (shown only once — store it now):' }), ' ', out, ' ', copy);
}
