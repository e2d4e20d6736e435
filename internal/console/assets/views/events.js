// Events: the audit log, newest first (GET /api/v1/events?order=newest),
// paged backwards, filtered by type, subject, actor and time range; new
// events matching the filter arrive live over the stream
// (GET /api/v1/events/stream) at the top. Details show as key/value.
import { h, mount, field, when, badge } from '../dom.js';
import { get } from '../api.js';

const PAGE = 50;

export async function render(root, _params, _ctx, query) {
  const size = Math.min(Math.max(Number(query.get('limit')) || PAGE, 1), 1000);
  const type = h('input', { name: 'type', type: 'text', value: query.get('type') || '', placeholder: 'lobby.  or  thing.created' });
  const subject = h('input', { name: 'subject', type: 'text', value: query.get('subject') || '', placeholder: 'thing/lamp-1' });
  const actor = h('input', { name: 'actor', type: 'text', value: query.get('actor') || '', placeholder: 'user:admin' });
  const since = h('input', { name: 'since', type: 'datetime-local', value: query.get('since') || '' });
  const until = h('input', { name: 'until', type: 'datetime-local', value: query.get('until') || '' });
  const status = h('span.stream-status', { role: 'status' });
  const count = h('span.muted');
  const older = h('button', { type: 'button', text: 'Older events' });
  const newest = h('button', { type: 'button', text: 'Back to the latest' });
  const pageNote = h('span.muted');
  const body = h('tbody');
  let es = null;
  let before = ''; // cursor of the next older page
  let pages = [];  // cursors of the pages shown so far, for "newer"
  let live = 0;

  const filter = () => {
    const q = new URLSearchParams();
    if (type.value.trim()) q.set('type', type.value.trim());
    if (subject.value.trim()) q.set('subject', subject.value.trim());
    if (actor.value.trim()) q.set('actor', actor.value.trim());
    if (since.value) q.set('since', new Date(since.value).toISOString().replace(/\.\d+Z$/, 'Z'));
    if (until.value) q.set('until', new Date(until.value).toISOString().replace(/\.\d+Z$/, 'Z'));
    return q;
  };

  function row(ev) {
    return h('tr', { dataset: { type: ev.type, id: String(ev.id) } },
      h('td.mono', { text: String(ev.id) }),
      h('td', {}, when(ev.time)),
      h('td', {}, h('span.evtype', { text: ev.type }), ev.count > 1 ? h('span.muted', { text: ' ×' + ev.count }) : null),
      h('td', {}, h('button.btn-link', { type: 'button', text: short(ev.subject), title: 'Show only events of ' + ev.subject,
        on: { click: () => { subject.value = ev.subject; filters.requestSubmit(); } } })),
      h('td', { text: ev.actor }),
      h('td', {}, details(ev.details)));
  }

  async function load(cursor) {
    const q = filter();
    q.set('order', 'newest');
    q.set('limit', String(size));
    if (cursor) q.set('before', cursor);
    const page = await get('/api/v1/events?' + q);
    const items = page.items || [];
    body.replaceChildren(...items.map(row));
    if (!items.length) body.append(h('tr', {}, h('td.empty', { colspan: 6, text: cursor ? 'No older events.' : 'No events match.' })));
    before = items.length === size ? page.next : '';
    older.disabled = !before;
    newest.hidden = !cursor;
    pageNote.textContent = items.length ? `events ${items[items.length - 1].id} to ${items[0].id}` : '';
    return items.length ? items[0].id : 0;
  }

  function connect(after) {
    if (es) es.close();
    es = null;
    // Only the latest page follows the stream; an older page stays still.
    if (pages.length) { mount(status, badge('paused on an older page', 'wait')); return; }
    const q = filter();
    q.delete('since');
    if (q.has('until')) { mount(status, badge('not live: a time range ends the list', 'wait')); return; }
    q.delete('actor');
    if (after) q.set('lastEventId', String(after));
    const want = filter();
    es = new EventSource('/api/v1/events/stream?' + q);
    mount(status, badge('connecting', 'wait'));
    es.addEventListener('open', () => mount(status, badge('live', 'ok')));
    es.addEventListener('error', () => mount(status, badge(es && es.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting', 'off')));
    const onEvent = (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch { return; }
      if (ev.type && ev.type.startsWith('lobby.')) window.dispatchEvent(new CustomEvent('gatehouse:lobby-changed'));
      // The stream filters by prefix; the list by exact subject, actor and type.
      const t = want.get('type');
      if ((t && !t.endsWith('.') && ev.type !== t) || (want.get('subject') && ev.subject !== want.get('subject')) || (want.get('actor') && ev.actor !== want.get('actor'))) return;
      const empty = body.querySelector('td.empty');
      if (empty) empty.parentElement.remove();
      body.prepend(row(ev));
      while (body.children.length > size * 4) body.lastElementChild.remove();
      live++;
      count.textContent = `${live} new since opened`;
    };
    es.addEventListener('gatehouse', onEvent);
    es.addEventListener('message', onEvent);
  }

  async function reload() {
    pages = [];
    live = 0;
    count.textContent = '';
    const top = await load('');
    connect(top);
  }

  const filters = h('form.filters', { role: 'search', 'aria-label': 'Filter events' },
    field('Type', type, 'Exact, or a prefix ending in "."'), field('Subject', subject), field('Actor', actor),
    field('From', since), field('Until', until),
    h('div.actions', {}, h('button.btn-primary', { type: 'submit', text: 'Apply' })));
  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    reload().catch((e) => mount(body, h('tr', {}, h('td.form-error', { colspan: 6, role: 'alert', text: e.message }))));
  });
  older.addEventListener('click', async () => {
    pages.push(before);
    await load(before);
    connect(0);
    older.focus();
  });
  newest.addEventListener('click', () => reload());

  mount(root, h('h1', { text: 'Events' }),
    filters,
    h('div.toolbar', {}, status, count),
    h('table.data.events', { 'aria-label': 'Events' },
      h('colgroup', {}, ['c-id', 'c-time', 'c-type', 'c-subject', 'c-actor', 'c-details'].map((c) => h('col', { class: c }))),
      h('thead', {}, h('tr', {}, [['ID', 'c-id'], ['Time', 'c-time'], ['Type', 'c-type'], ['Subject', 'c-subject'], ['Actor', 'c-actor'], ['Details', 'c-details']]
        .map(([c, cls]) => h('th', { scope: 'col', class: cls, text: c })))),
      body),
    h('div.pager', {}, newest, older, pageNote));
  await reload();
  return () => { if (es) es.close(); };
}

// details shows an event's details as key/value pairs; nested values stay
// compact JSON, long ones fold away.
function details(d) {
  if (d === undefined || d === null) return '';
  if (typeof d !== 'object' || Array.isArray(d)) return h('span', { text: typeof d === 'string' ? d : JSON.stringify(d) });
  const keys = Object.keys(d);
  if (!keys.length) return '';
  const dl = h('dl.kv', {}, keys.flatMap((k) => {
    const v = d[k];
    const text = typeof v === 'string' ? v : JSON.stringify(v);
    return [h('dt', { text: k }), h('dd', {}, text.length > 120 ? h('details', {}, h('summary', { text: text.slice(0, 60) + '…' }), h('code', { text })) : text)];
  }));
  return dl;
}

// short keeps a long subject (a certificate fingerprint) to one line.
function short(subject) {
  return subject.length > 28 ? subject.slice(0, 24) + '…' : subject;
}
