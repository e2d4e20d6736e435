// Overview: counts (GET /api/v1/overview) beside the charts of
// connections, messages, token issuance and denials over the last hour
// (GET /api/v1/metrics/series, drawn as inline SVG), and every live
// connection with search (GET /api/v1/connections).
import { h, mount, s, section, field, table, when } from '../dom.js';
import { get, enc } from '../api.js';

const CHARTS = [
  { title: 'Connections', unit: 'connected clients', lines: [{ key: 'connections', label: 'connections', cls: 'l1' }] },
  { title: 'Messages', unit: 'per second', lines: [{ key: 'messagesReceived', label: 'received', cls: 'l1' }, { key: 'messagesSent', label: 'sent', cls: 'l2' }] },
  { title: 'Token issuance', unit: 'tokens per second', lines: [{ key: 'tokensIssued', label: 'issued', cls: 'l3' }] },
  { title: 'Denials', unit: 'per second', lines: [{ key: 'denials', label: 'denials', cls: 'l4' }] },
];

export async function render(root) {
  const grid = h('div.charts');
  const note = h('p.muted', { role: 'status' });
  const counts = h('div.counts', { role: 'list', 'aria-label': 'Counts' });
  const search = h('input', { name: 'search', type: 'search', placeholder: 'thing, client id, user or address' });
  const connList = h('div');
  const connForm = h('form.filters', { role: 'search', 'aria-label': 'Find a connection' }, field('Search connections', search),
    h('div.actions', {}, h('button', { type: 'submit', text: 'Search' })));
  connForm.addEventListener('submit', (ev) => { ev.preventDefault(); loadConnections(); });
  mount(root, h('h1', { text: 'Overview' }), counts, note, grid,
    section('Live connections', connForm, connList));

  async function loadCounts() {
    try {
      const o = await get('/api/v1/overview');
      const item = (n, label, href) => h('div.count', { role: 'listitem' },
        h('span.n', { text: n === undefined ? '–' : String(Math.round(n)) }),
        href ? h('a.l', { href, text: label }) : h('span.l', { text: label }));
      mount(counts,
        item(o.things, 'things', '#/things'),
        item(o.connected, 'connected now'),
        item(o.lobbyWaiting, 'waiting in the lobby', '#/lobby'),
        item(o.tokensIssuedLastHour, 'tokens issued, last hour'),
        item(o.denialsLastHour, 'denials, last hour'));
    } catch (e) {
      mount(counts, h('p.muted', { text: 'Counts are not available: ' + e.message }));
    }
  }
  async function loadConnections() {
    try {
      const q = search.value.trim() ? '?search=' + enc(search.value.trim()) : '';
      const r = await get('/api/v1/connections' + q);
      const items = r.items || [];
      mount(connList,
        h('p.muted', { text: `${r.total} connection${r.total === 1 ? '' : 's'}${q ? ' match' : ''}${r.total > items.length ? `, the newest ${items.length} shown` : ''}.` }),
        table([
          { label: 'Thing', get: (c) => c.thing ? h('a', { href: '#/things/' + enc(c.thing), text: c.thing }) : h('span.muted', { text: c.username ? 'user ' + c.username : '—' }) },
          { label: 'Client ID', get: (c) => h('span.mono', { text: c.clientId }) },
          { label: 'From', get: (c) => h('span.mono', { text: c.remoteAddr }) },
          { label: 'Listener', get: (c) => c.listener + (c.replica ? ' on ' + c.replica : '') },
          { label: 'Since', get: (c) => when(c.connectedAt) },
        ], items, { label: 'Live connections', empty: q ? 'No connection matches.' : 'Nothing is connected.' }));
    } catch (e) {
      mount(connList, h('p.muted', { text: e.status === 404 ? 'This server runs no broker.' : e.message }));
    }
  }
  async function load() {
    try {
      const m = await get('/api/v1/metrics/series');
      note.textContent = `Last hour, sampled every ${m.step || '?'} s. Updated ${new Date().toLocaleTimeString()}.`;
      mount(grid, CHARTS.map((c) => section(c.title, chart(c, m.series || {}, m.step || 10))));
    } catch (e) {
      note.textContent = 'Metrics are not available: ' + e.message;
    }
  }
  await Promise.all([load(), loadCounts(), loadConnections()]);
  const t = setInterval(() => { load(); loadCounts(); }, 10000);
  return () => clearInterval(t);
}

const W = 560, H = 180, PAD = { l: 48, r: 12, t: 12, b: 26 };

function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmt(v) {
  if (v === 0) return '0';
  if (Math.abs(v) >= 1000) return (v / 1000).toFixed(v >= 10000 ? 0 : 1) + 'k';
  if (Math.abs(v) < 1) return v.toFixed(2);
  return String(Math.round(v * 10) / 10);
}

function clock(t) {
  const d = new Date(t * 1000);
  return String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0');
}

// chart draws the lines of def from series as an SVG line chart.
export function chart(def, series, step) {
  const lines = def.lines.map((l) => ({ ...l, pts: (series[l.key] || []).filter((p) => Array.isArray(p) && p.length === 2) }));
  const all = lines.flatMap((l) => l.pts);
  const now = Math.floor(Date.now() / 1000);
  const t0 = all.length ? Math.min(...all.map((p) => p[0])) : now - 3600;
  const t1 = all.length ? Math.max(...all.map((p) => p[0])) : now;
  const span = Math.max(t1 - t0, step);
  const max = niceMax(Math.max(0, ...all.map((p) => p[1])));
  const x = (t) => PAD.l + ((t - t0) / span) * (W - PAD.l - PAD.r);
  const y = (v) => H - PAD.b - (v / max) * (H - PAD.t - PAD.b);
  const latest = lines.map((l) => (l.pts.length ? l.pts[l.pts.length - 1][1] : 0));
  const desc = `${def.title} (${def.unit}): ` + lines.map((l, i) => `${l.label} now ${fmt(latest[i])}`).join(', ') + `, scale 0 to ${fmt(max)}.`;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': desc },
    s('title', { text: desc }),
    [0, 0.5, 1].map((f) => [
      s('line', { class: 'grid', x1: PAD.l, x2: W - PAD.r, y1: y(max * f), y2: y(max * f) }),
      s('text', { class: 'axis', x: PAD.l - 6, y: y(max * f) + 4, 'text-anchor': 'end', text: fmt(max * f) }),
    ]),
    s('text', { class: 'axis', x: PAD.l, y: H - 6, text: clock(t0) }),
    s('text', { class: 'axis', x: W - PAD.r, y: H - 6, 'text-anchor': 'end', text: clock(t1) }),
    lines.map((l) => l.pts.length > 1
      ? s('polyline', { class: 'line ' + l.cls, points: l.pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ') })
      : l.pts.length === 1 ? s('circle', { class: 'dot ' + l.cls, cx: x(l.pts[0][0]), cy: y(l.pts[0][1]), r: 3 }) : null),
    all.length ? null : s('text', { class: 'axis', x: W / 2, y: H / 2, 'text-anchor': 'middle', text: 'no samples yet' }));
  const legend = h('ul.legend', {}, lines.map((l, i) => h('li', {}, h('span', { class: 'swatch ' + l.cls, 'aria-hidden': 'true' }), `${l.label}: ${fmt(latest[i])}`)));
  return [svg, legend, h('p.muted.small', { text: def.unit })];
}
