// Gatehouse web console: a hash-routed single page application of plain ES
// modules (no build step) over the /api/v1 REST API, authenticated by the
// console session cookie.

import { h, mount, field, toast } from './dom.js';
import { request, setCsrfToken, ApiError, showProblem, clearProblem } from './api.js';

const ROUTES = [
  { path: '', title: 'Overview', module: 'dashboard', roles: ['admin', 'operator'] },
  { path: 'things', title: 'Things', module: 'things', roles: ['admin', 'operator', 'user'] },
  { path: 'things/:name', module: 'thing', roles: ['admin', 'operator', 'user'] },
  { path: 'thing-types', title: 'Thing types', module: 'types', roles: ['admin', 'operator'] },
  { path: 'thing-types/:name', module: 'type', roles: ['admin', 'operator'] },
  { path: 'lobby', title: 'Device lobby', module: 'lobby', roles: ['admin', 'operator'] },
  { path: 'policies', title: 'Policies', module: 'policies', roles: ['admin', 'operator'] },
  { path: 'policies/:name', module: 'policy', roles: ['admin', 'operator'] },
  { path: 'simulator', title: 'Policy simulator', module: 'simulator', roles: ['admin', 'operator'] },
  { path: 'users', title: 'Users & relationships', module: 'users', roles: ['admin', 'operator'] },
  { path: 'registration-tokens', title: 'Registration tokens', module: 'tokens', roles: ['admin'] },
  { path: 'pki', title: 'Certificates & CAs', module: 'pki', roles: ['admin', 'operator'] },
  { path: 'events', title: 'Events', module: 'events', roles: ['admin', 'operator'] },
];

// People, access and the admin objects the CLI had alone, and the MQTT
// test client (views/user.js, groups.js, relationships.js, access.js,
// authorizers.js, apps.js, apitokens.js, certificate.js, mqtt.js, account.js).
ROUTES.push(
  { path: 'users/:name', module: 'user', roles: ['admin', 'operator'] },
  { path: 'groups', title: 'Groups', module: 'groups', roles: ['admin', 'operator'] },
  { path: 'groups/:name', module: 'groups', roles: ['admin', 'operator'] },
  { path: 'relationships', title: 'Relationships', module: 'relationships', roles: ['admin', 'operator'] },
  { path: 'access-requests', title: 'Access requests', module: 'access', roles: ['admin', 'operator', 'user'] },
  { path: 'authorizers', title: 'Custom authorizers', module: 'authorizers', roles: ['admin', 'operator'] },
  { path: 'apps', title: 'OAuth apps', module: 'apps', roles: ['admin', 'operator'] },
  { path: 'api-tokens', title: 'API tokens & AWS keys', module: 'apitokens', roles: ['admin'] },
  { path: 'certificates/:id', module: 'certificate', roles: ['admin', 'operator'] },
  { path: 'mqtt', title: 'MQTT test client', module: 'mqtt', roles: ['admin', 'operator', 'user'] },
  { path: 'account', title: 'My account', module: 'account', roles: ['admin', 'operator', 'user'] },
);

// AWS IoT fleet provisioning templates (views/templates.js).
ROUTES.push(
  { path: 'provisioning-templates', title: 'Provisioning templates', module: 'templates', roles: ['admin', 'operator'] },
  { path: 'provisioning-templates/:name', module: 'templates', roles: ['admin', 'operator'] },
);

const state = { session: null, cleanup: null, seq: 0 };
const main = () => document.getElementById('main');

function hasRole(roles) {
  const mine = (state.session && state.session.roles) || [];
  return mine.includes('admin') || roles.some((r) => mine.includes(r));
}

export function ctxFor(session) {
  const roles = session.roles || [];
  return {
    session,
    isAdmin: roles.includes('admin'),
    canRead: roles.includes('admin') || roles.includes('operator'),
    canClaim: roles.includes('admin') || roles.includes('operator'),
    navigate: (hash) => { location.hash = hash; },
  };
}

function match(hash) {
  const path = hash.replace(/^#\/?/, '').split('?')[0].replace(/\/$/, '');
  const query = new URLSearchParams(hash.includes('?') ? hash.slice(hash.indexOf('?') + 1) : '');
  const parts = path ? path.split('/') : [];
  for (const r of ROUTES) {
    const rp = r.path ? r.path.split('/') : [];
    if (rp.length !== parts.length) continue;
    const params = {};
    let ok = true;
    rp.forEach((seg, i) => {
      if (seg.startsWith(':')) params[seg.slice(1)] = decodeURIComponent(parts[i]);
      else if (seg !== parts[i]) ok = false;
    });
    if (ok) return { route: r, params, query };
  }
  return null;
}

function renderNav() {
  const nav = document.getElementById('nav');
  const current = location.hash.replace(/^#\/?/, '').split(/[/?]/)[0];
  const items = ROUTES.filter((r) => r.title && hasRole(r.roles));
  mount(nav, h('ul', {}, items.map((r) => h('li', {},
    h('a', { href: '#/' + r.path, text: r.title, 'aria-current': r.path === current ? 'page' : undefined })))));
  nav.hidden = false;
  lobbyCount(nav);
  document.getElementById('session').hidden = false;
  document.getElementById('whoami').textContent = state.session.username + ' (' + (state.session.roles || []).join(', ') + ')';
}

async function route() {
  if (!state.session) return;
  if (state.cleanup) { try { state.cleanup(); } catch { /* view already gone */ } state.cleanup = null; }
  const seq = ++state.seq;
  let m = match(location.hash || '#/');
  if (m && !hasRole(m.route.roles)) m = null;
  if (!m) {
    if (!hasRole(['admin', 'operator']) && (location.hash === '' || location.hash === '#/')) {
      location.hash = '#/things';
      return;
    }
    renderNav();
    mount(main(), h('h1', { text: 'Not found' }), h('p', { text: 'There is no such page, or your role does not allow it.' }));
    return;
  }
  renderNav();
  const el = main();
  mount(el, h('p.loading', { text: 'Loading…' }));
  try {
    const mod = await import('./views/' + m.route.module + '.js');
    if (seq !== state.seq) return;
    // Each page renders into a container of its own: a render that a
    // newer one overtook (the page was left while it still loaded) can
    // only write into its own container, no longer shown, never over the
    // page on screen and what has been typed into it.
    const view = h('div.view');
    mount(el, view);
    const cleanup = await mod.render(view, m.params, ctxFor(state.session), m.query);
    if (seq !== state.seq) { if (typeof cleanup === 'function') cleanup(); return; }
    state.cleanup = typeof cleanup === 'function' ? cleanup : null;
    document.title = pageTitle(view.querySelector('h1'));
    // Moving between pages puts the focus at the new page's start, as a
    // page load would, so keyboard and screen reader users follow along.
    if (state.navigated && !el.contains(document.activeElement)) el.focus({ preventScroll: true });
    state.navigated = true;
  } catch (e) {
    if (seq !== state.seq) return;
    if (e instanceof ApiError && e.status === 401) return;
    mount(el, h('h1', { text: 'Something went wrong' }), h('p.form-error', { role: 'alert', text: e.message }));
  }
}

// pageTitle is the document title: the page heading without its badges
// (a thing's status), then the console's name.
export function pageTitle(h1) {
  if (!h1) return 'Gatehouse console';
  const c = h1.cloneNode(true);
  for (const b of c.querySelectorAll('.badge')) b.remove();
  const text = c.textContent.replace(/\s+/g, ' ').trim();
  return (text ? text + ' — ' : '') + 'Gatehouse console';
}

// lobbyCount shows, beside the lobby in the navigation, how many devices
// wait there (knocking or in the lobby), on every page.
let lobbyCountAt = 0;
let lobbyCountValue = null;
async function lobbyCount(nav) {
  const a = nav.querySelector('a[href="#/lobby"]');
  if (!a) return;
  const show = (n) => {
    let b = a.querySelector('.nav-count');
    if (!b) { b = h('span.nav-count'); a.append(' ', b); }
    b.textContent = String(n);
    b.hidden = !n;
    b.title = `${n} device${n === 1 ? '' : 's'} waiting in the lobby`;
    b.setAttribute('aria-label', b.title);
  };
  if (lobbyCountValue !== null) show(lobbyCountValue);
  if (Date.now() - lobbyCountAt < 5000) return;
  lobbyCountAt = Date.now();
  try {
    const [knocking, waiting] = await Promise.all([
      request('GET', '/api/v1/lobby/devices?state=knocking&limit=1000'),
      request('GET', '/api/v1/lobby/devices?state=inlobby&limit=1000')]);
    lobbyCountValue = (knocking.items || []).length + (waiting.items || []).length;
    show(lobbyCountValue);
  } catch { /* the count is a hint; the lobby page says what is wrong */ }
}

// The count follows the lobby's events while signed in.
window.addEventListener('gatehouse:lobby-changed', () => { lobbyCountAt = 0; const nav = document.getElementById('nav'); if (nav && !nav.hidden) lobbyCount(nav); });

function showLogin(message) {
  state.session = null;
  setCsrfToken('');
  if (state.cleanup) { try { state.cleanup(); } catch { /* ignore */ } state.cleanup = null; }
  document.getElementById('nav').hidden = true;
  document.getElementById('session').hidden = true;
  const user = h('input', { name: 'username', type: 'text', autocomplete: 'username', required: true });
  const pass = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const box = h('p.form-error', { role: 'alert', hidden: true });
  const form = h('form.card.login', { 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title', text: 'Sign in' }),
    box,
    field('Username', user),
    field('Password', pass),
    h('div.actions', {}, h('button.btn-primary', { type: 'submit', text: 'Sign in' })));
  if (message) { box.textContent = message; box.hidden = false; }
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearProblem(form);
    const btn = form.querySelector('button');
    btn.disabled = true;
    try {
      const s = await request('POST', '/console/api/login', { username: user.value, password: pass.value }, { quiet401: true });
      startSession(s);
    } catch (e) {
      if (e.status === 401) e.message = 'Wrong username or password.';
      else if (e.status === 429) e.message = 'Too many attempts. Wait a minute and try again.';
      showProblem(form, e);
      pass.value = '';
      pass.focus();
    } finally {
      btn.disabled = false;
    }
  });
  mount(main(), h('div.login-wrap', {}, form));
  document.title = 'Sign in — Gatehouse console';
  user.focus();
}

function startSession(s) {
  state.session = s;
  setCsrfToken(s.csrfToken);
  route();
}

async function logout() {
  try { await request('POST', '/console/api/logout', undefined, { quiet401: true }); } catch { /* session already gone */ }
  location.hash = '#/';
  showLogin('');
  toast('Signed out.');
}

async function boot() {
  document.getElementById('logout').addEventListener('click', logout);
  window.addEventListener('hashchange', route);
  window.addEventListener('gatehouse:unauthenticated', () => showLogin('Your session has ended. Please sign in again.'));
  try {
    const s = await request('GET', '/console/api/session', undefined, { quiet401: true });
    startSession(s);
  } catch (e) {
    showLogin(e.status === 401 ? '' : e.message);
  }
}

boot();
