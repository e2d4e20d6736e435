// Live events from GET /api/v1/events/stream (server-sent events), with
// type and subject prefix filters.
import { h, mount, field, fmtTime, badge } from '../dom.js';

const MAX_ROWS = 300;

export async function render(root, _params, _ctx, query) {
  const type = h('input', { name: 'type', type: 'text', value: query.get('type') || '', placeholder: 'lobby.  or  thing.' });
  const subject = h('input', { name: 'subject', type: 'text', value: query.get('subject') || '', placeholder: 'thing/lamp-1' });
  const from = h('input', { name: 'lastEventId', type: 'number', min: '0', value: query.get('from') || '', placeholder: 'only new events' });
  const status = h('span.stream-status', { role: 'status' });
  const pause = h('button', { type: 'button', text: 'Pause', 'aria-pressed': 'false' });
  const clear = h('button', { type: 'button', text: 'Clear' });
  const body = h('tbody');
  const count = h('span.muted');
  let es = null;
  let paused = false;
  let buffered = [];
  let n = 0;

  function row(ev) {
    let details = '';
    if (ev.details !== undefined && ev.details !== null) details = typeof ev.details === 'string' ? ev.details : JSON.stringify(ev.details);
    return h('tr', { dataset: { type: ev.type } },
      h('td.mono', { text: String(ev.id) }),
      h('td', { text: fmtTime(ev.time) }),
      h('td', {}, h('span.evtype', { text: ev.type })),
      h('td', {}, h('button.btn-link', { type: 'button', text: ev.subject, title: 'Show only events of ' + ev.subject,
        on: { click: () => { subject.value = ev.subject; filters.requestSubmit(); } } })),
      h('td', { text: ev.actor }),
      h('td', {}, h('code.details', { text: details })));
  }
  function add(ev) {
    n++;
    body.prepend(row(ev));
    while (body.children.length > MAX_ROWS) body.lastElementChild.remove();
    count.textContent = `${n} event${n === 1 ? '' : 's'} received`;
  }
  function setStatus(text, kind) { mount(status, badge(text, kind)); }

  function connect() {
    if (es) es.close();
    const q = new URLSearchParams();
    if (type.value.trim()) q.set('type', type.value.trim());
    if (subject.value.trim()) q.set('subject', subject.value.trim());
    if (from.value.trim()) q.set('lastEventId', from.value.trim());
    es = new EventSource('/api/v1/events/stream' + (q.toString() ? '?' + q : ''));
    setStatus('connecting', 'wait');
    es.addEventListener('open', () => setStatus('live', 'ok'));
    es.addEventListener('error', () => setStatus(es.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting', 'off'));
    const onEvent = (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch { return; }
      if (paused) buffered.push(ev); else add(ev);
    };
    es.addEventListener('gatehouse', onEvent);
    es.addEventListener('message', onEvent);
  }
  const filters = h('form.filters', { role: 'search', 'aria-label': 'Filter events' },
    field('Type prefix', type), field('Subject prefix', subject), field('Replay after event ID', from),
    h('div.actions', {}, h('button.btn-primary', { type: 'submit', text: 'Apply' })));
  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    body.replaceChildren();
    n = 0;
    count.textContent = '';
    connect();
  });
  pause.addEventListener('click', () => {
    paused = !paused;
    pause.textContent = paused ? 'Resume' : 'Pause';
    pause.setAttribute('aria-pressed', String(paused));
    if (!paused) { buffered.forEach(add); buffered = []; }
  });
  clear.addEventListener('click', () => { body.replaceChildren(); n = 0; count.textContent = ''; });

  mount(root, h('h1', { text: 'Events' }),
    filters,
    h('div.toolbar', {}, status, pause, clear, count),
    h('table.data.events', { 'aria-label': 'Live events' },
      h('thead', {}, h('tr', {}, ['ID', 'Time', 'Type', 'Subject', 'Actor', 'Details'].map((c) => h('th', { scope: 'col', text: c })))),
      body));
  connect();
  return () => { if (es) es.close(); };
}
