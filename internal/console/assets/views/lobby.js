// The device lobby: devices waiting with manufacturer certificates; claim
// one by scanning its QR code (camera or photo, decoded in the browser),
// choose its target, and watch it move to arrived.
import { h, mount, field, table, badge, when, section, formBox, confirmButton, toast } from '../dom.js';
import { get, all, post, put, del, enc, showProblem, clearProblem } from '../api.js';
import { decodeImageFile, scanCamera } from '../qr.js';

const FLOW = ['knocking', 'inlobby', 'claimed', 'commissioned', 'arrived'];
const QR_PREFIX = /^GH1:/i;

export async function render(root, _params, ctx, query) {
  const devices = h('div');
  const targets = h('div');
  const stateFilter = h('select', { name: 'state' },
    ['', ...FLOW, 'rejected', 'decommissioned'].map((s) => h('option', { value: s, text: s || 'any state' })));
  stateFilter.value = query.get('state') || '';
  let targetList = [];
  const timers = new Set();
  let scan = null;

  // ---- claim panel ----
  const device = h('input', { name: 'device', type: 'text', required: true, autocomplete: 'off', spellcheck: 'false', class: 'mono', placeholder: 'GH1:… or certificate fingerprint' });
  const targetSel = h('select', { name: 'target', required: true });
  const thingName = h('input', { name: 'thingName', type: 'text', placeholder: 'defaults to the certificate common name' });
  const config = h('textarea', { name: 'config', rows: 2, placeholder: 'defaults to the target configuration' });
  const photo = h('input', { name: 'photo', type: 'file', accept: 'image/*' });
  const video = h('video.scanner', { 'aria-label': 'Camera preview', hidden: true, muted: true });
  const camBtn = h('button', { type: 'button', text: 'Scan with camera' });
  const scanStatus = h('p.scan-status', { role: 'status', 'aria-live': 'polite' });
  const watch = h('div.watch', { 'aria-live': 'polite' });

  function accept(text, how) {
    device.value = text.trim();
    const fp = text.trim().replace(QR_PREFIX, '');
    scanStatus.textContent = `QR code read ${how}: ${fp.slice(0, 16)}…`;
    scanStatus.dataset.decoded = text.trim();
    targetSel.focus();
  }
  photo.addEventListener('change', async () => {
    const f = photo.files && photo.files[0];
    if (!f) return;
    scanStatus.textContent = 'Decoding…';
    try { accept(await decodeImageFile(f), 'from the photo'); } catch (e) { scanStatus.textContent = e.message; }
    photo.value = '';
  });
  camBtn.addEventListener('click', async () => {
    if (scan) { scan.stop(); return; }
    video.hidden = false;
    camBtn.textContent = 'Stop camera';
    scanStatus.textContent = 'Point the camera at the QR code on the device.';
    scan = scanCamera(video);
    try { accept(await scan.done, 'with the camera'); } catch (e) { if (e.name !== 'AbortError') scanStatus.textContent = e.message; else scanStatus.textContent = ''; }
    scan = null;
    video.hidden = true;
    camBtn.textContent = 'Scan with camera';
  });

  const claimForm = h('form.card.claim', { 'aria-label': 'Claim a device' }, formBox(),
    h('div.scan-row', {},
      camBtn,
      h('span.or', { text: 'or' }),
      h('div.field.file', {}, h('label', { for: 'qr-photo', text: 'Upload a photo of the QR code' }), Object.assign(photo, { id: 'qr-photo' }))),
    video, scanStatus,
    field('Device (QR code or fingerprint)', device),
    h('div.row', {}, field('Target', targetSel), field('Thing name', thingName)),
    field('Configuration for the device', config),
    h('div.actions', {}, h('button.btn-primary', { type: 'submit', text: 'Claim device' })),
    watch);
  claimForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearProblem(claimForm);
    const body = { device: device.value.trim(), target: targetSel.value };
    if (thingName.value.trim()) body.thingName = thingName.value.trim();
    if (config.value.trim()) body.config = config.value.trim();
    try {
      const d = await post('/api/v1/lobby/claims', body);
      toast('Claimed for ' + body.target + '.');
      // The form is ready for the next device; the target stays chosen.
      device.value = '';
      thingName.value = '';
      config.value = '';
      scanStatus.textContent = '';
      delete scanStatus.dataset.decoded;
      window.dispatchEvent(new CustomEvent('gatehouse:lobby-changed'));
      follow(d.certificateId);
      loadDevices();
    } catch (e) { showProblem(claimForm, e); }
  });

  // follow shows one device's progress until it arrives: the lobby's
  // events for it (server-sent) trigger a refresh at once, and a slow poll
  // covers a dropped stream.
  let stream = null;
  let gen = 0;
  function stopFollowing() {
    gen++;
    for (const t of timers) clearTimeout(t);
    timers.clear();
    if (stream) { stream.close(); stream = null; }
  }
  function follow(fp) {
    stopFollowing();
    const mine = gen;
    let busy = false;
    let again = false;
    const tick = async () => {
      if (mine !== gen) return;
      if (busy) { again = true; return; }
      busy = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      let done = false;
      try {
        const d = await get('/api/v1/lobby/devices/' + enc(fp));
        if (mine !== gen) return;
        const key = `${fp} ${d.state} ${d.version} ${(d.history || []).length}`;
        if (watch.dataset.key !== key) {
          const open = new Set([...watch.querySelectorAll('details[open] > summary')].map((x) => x.textContent));
          mount(watch, progress(d));
          for (const x of watch.querySelectorAll('details')) x.open = open.has(x.querySelector('summary').textContent);
          watch.dataset.key = key;
        }
        done = d.state === 'arrived' || d.state === 'rejected' || d.state === 'decommissioned';
      } catch (e) {
        if (mine !== gen) return;
        mount(watch, h('p.form-error', { text: e.message }));
        delete watch.dataset.key;
      }
      busy = false;
      if (mine !== gen) return;
      if (done) { stopFollowing(); loadDevices().catch(() => {}); return; }
      if (again) { again = false; tick(); return; }
      const t = setTimeout(() => { timers.delete(t); tick(); }, 3000);
      timers.add(t);
    };
    stream = new EventSource('/api/v1/events/stream?' + new URLSearchParams({ type: 'lobby.', subject: 'lobby/' + fp }));
    stream.addEventListener('gatehouse', tick);
    tick();
  }

  // ---- device list ----
  async function loadDevices() {
    const q = stateFilter.value ? '?state=' + enc(stateFilter.value) : '';
    const ds = await all('/api/v1/lobby/devices' + q);
    mount(devices, table([
      { label: 'Device', get: (d) => h('span.mono', { text: d.certificateId.slice(0, 12) + '…', title: d.certificateId }) },
      { label: 'Thing', get: (d) => d.thingName ? (d.state === 'arrived' || d.state === 'commissioned'
        ? h('a', { href: '#/things/' + enc(d.thingName), text: d.thingName }) : d.thingName) : h('span.muted', { text: d.commonName || '' }) },
      { label: 'Manufacturer CA', get: (d) => d.ca || '' },
      { label: 'State', get: (d) => stateBadge(d.state) },
      { label: 'Says', get: (d) => d.deviceState || '' },
      { label: 'Target', get: (d) => d.target || '' },
      { label: 'Last seen', get: (d) => when(d.lastSeenAt) },
      { label: '', get: (d) => h('span.btns', {}, deviceActions(d)) },
    ], ds, { label: 'Lobby devices', empty: 'No devices.' }));
  }

  // deviceActions are the buttons a device's state allows: claim or reject
  // a waiting one; reroute, factory reset or decommission a routed one.
  function deviceActions(d) {
    const waiting = d.state === 'inlobby' || d.state === 'knocking';
    const routed = d.state === 'claimed' || d.state === 'commissioned' || d.state === 'arrived';
    return [
      waiting ? btn('Claim…', () => { device.value = 'GH1:' + d.certificateId; targetSel.focus(); claimForm.scrollIntoView({ block: 'nearest' }); }) : null,
      btn('Follow', () => follow(d.certificateId)),
      ctx.isAdmin && waiting ? btn('Reject…', () => openAction(d, 'reject')) : null,
      ctx.isAdmin && routed ? btn('Reroute…', () => openAction(d, 'reroute')) : null,
      ctx.isAdmin && (routed || d.state === 'rejected' || d.state === 'decommissioned') ? btn('Factory reset…', () => openAction(d, 'factory-reset')) : null,
      ctx.isAdmin && (routed || d.state === 'rejected') ? btn('Decommission…', () => openAction(d, 'decommission')) : null,
    ];
  }

  // openAction shows the form of one device action (with its reason, or a
  // new target for a reroute) above the device list.
  const ACTIONS = {
    reject: { title: 'Reject', done: 'Rejected', hint: 'The device can no longer open a lobby session.' },
    reroute: { title: 'Reroute', done: 'Rerouted', hint: 'The device is sent to another target.' },
    'factory-reset': { title: 'Factory reset', done: 'Reset', hint: 'The device forgets its claim and goes back to the lobby.' },
    decommission: { title: 'Decommission', done: 'Decommissioned', hint: 'The device is retired for good.' },
  };
  function openAction(d, op) {
    const a = ACTIONS[op];
    const reason = h('input', { name: 'reason', type: 'text', required: op !== 'reroute', placeholder: 'why, for the history' });
    const target = h('select', { name: 'target', required: true },
      targetList.filter((t) => t.name !== d.target).map((t) => h('option', { value: t.name, text: t.name + ' (' + t.kind + ')' })));
    const tname = h('input', { name: 'thingName', type: 'text', value: d.thingName || '' });
    const cancel = h('button.btn-link', { type: 'button', text: 'Cancel', on: { click: () => mount(actionSlot) } });
    const form = h('form.card.device-action', { 'aria-label': a.title + ' device' }, formBox(),
      h('h3', {}, a.title + ' ', h('span.mono', { text: d.certificateId.slice(0, 16) + '…' }), d.thingName ? ' (' + d.thingName + ')' : ''),
      h('p.muted', { text: a.hint }),
      op === 'reroute' ? h('div.row', {}, field('New target', target), field('Thing name', tname)) : field('Reason', reason),
      h('div.actions', {}, h('button', { type: 'submit', class: op === 'reroute' ? 'btn-primary' : 'btn-danger', text: a.title }), cancel));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearProblem(form);
      const path = '/api/v1/lobby/devices/' + enc(d.certificateId) + '/' + op;
      try {
        if (op === 'reroute') {
          const body = { target: target.value };
          if (tname.value.trim()) body.thingName = tname.value.trim();
          await post(path, body);
        } else {
          await post(path, { reason: reason.value.trim() });
        }
        toast(a.done + '.');
        mount(actionSlot);
        window.dispatchEvent(new CustomEvent('gatehouse:lobby-changed'));
        await loadDevices();
      } catch (e) { showProblem(form, e); }
    });
    mount(actionSlot, form);
    (op === 'reroute' ? target : reason).focus();
  }
  stateFilter.addEventListener('change', () => loadDevices().catch((e) => toast(e.message, 'error')));

  // ---- targets ----
  async function loadTargets() {
    targetList = await all('/api/v1/lobby/targets');
    const keep = targetSel.value;
    mount(targetSel, targetList.length ? targetList.map((t) => h('option', { value: t.name, text: `${t.name} (${t.kind}${t.thingType ? ', ' + t.thingType : ''})` }))
      : h('option', { value: '', text: 'no targets: create one below' }));
    if (keep) targetSel.value = keep;
    mount(targets, table([
      { label: 'Name', get: (t) => t.name },
      { label: 'Kind', get: (t) => t.kind },
      { label: 'Where', get: (t) => t.kind === 'gatehouse' ? (t.apiUrl || '') : (t.endpoint || 'this Gatehouse') },
      { label: 'Thing type', get: (t) => t.thingType || '' },
      { label: 'CA', get: (t) => t.caPem ? 'own CA' : '' },
      { label: '', get: (t) => ctx.isAdmin ? h('span.btns', {},
        btn('Edit', () => editTarget(t)),
        confirmButton('Delete', `Delete target ${t.name}?`, async () => {
          try { await del('/api/v1/lobby/targets/' + enc(t.name)); toast('Deleted target ' + t.name + '.'); loadTargets(); } catch (e) { toast(e.message, 'error'); }
        }, 'btn-small btn-danger')) : '' },
    ], targetList, { label: 'Targets', empty: 'No targets.' }));
  }
  let targetForm = null;
  let editTarget = () => {};
  if (ctx.isAdmin) {
    let editing = null; // {name, version} while editing
    const name = h('input', { name: 'name', type: 'text', required: true });
    const kind = h('select', { name: 'kind' },
      h('option', { value: 'local', text: 'local (this Gatehouse)' }),
      h('option', { value: 'mqtt', text: 'mqtt (another broker)' }),
      h('option', { value: 'gatehouse', text: 'gatehouse (another Gatehouse)' }));
    const endpoint = h('input', { name: 'endpoint', type: 'text', placeholder: 'mqtts://broker:8883' });
    const apiUrl = h('input', { name: 'apiUrl', type: 'text', placeholder: 'https://gatehouse.example.com' });
    const apiToken = h('input', { name: 'apiToken', type: 'password', autocomplete: 'off', placeholder: 'ghat_… (admin token of the target)' });
    const caPem = h('textarea', { name: 'caPem', rows: 3, class: 'mono', placeholder: '-----BEGIN CERTIFICATE-----' });
    const ttype = h('input', { name: 'thingType', type: 'text' });
    const tconfig = h('input', { name: 'config', type: 'text' });
    const title = h('h3', { text: 'Create a target' });
    const submit = h('button', { type: 'submit', text: 'Create target' });
    const cancel = h('button.btn-link', { type: 'button', text: 'Cancel edit', hidden: true });
    const onlyFor = (el, kinds) => { const f = el.closest('.field'); if (f) f.hidden = !kinds.includes(kind.value); };
    const showKind = () => {
      onlyFor(endpoint, ['mqtt', 'gatehouse']);
      onlyFor(caPem, ['mqtt', 'gatehouse']);
      onlyFor(apiUrl, ['gatehouse']);
      onlyFor(apiToken, ['gatehouse']);
    };
    kind.addEventListener('change', showKind);
    targetForm = h('form.card', { 'aria-label': 'Create a target' }, formBox(), title,
      h('div.row', {}, field('Name', name), field('Kind', kind), field('Thing type', ttype)),
      h('div.row', {}, field('Endpoint', endpoint), field('API URL', apiUrl), field('API token', apiToken)),
      field('CA certificate (PEM)', caPem, 'The CA devices trust the endpoint by; empty for a public CA.'),
      field('Config', tconfig),
      h('div.actions', {}, submit, cancel));
    const reset = () => {
      editing = null;
      targetForm.reset();
      name.disabled = false;
      title.textContent = 'Create a target';
      targetForm.setAttribute('aria-label', 'Create a target');
      submit.textContent = 'Create target';
      cancel.hidden = true;
      apiToken.placeholder = 'ghat_… (admin token of the target)';
      showKind();
    };
    cancel.addEventListener('click', reset);
    editTarget = (t) => {
      editing = { name: t.name, version: t.version };
      name.value = t.name;
      name.disabled = true;
      kind.value = t.kind;
      endpoint.value = t.endpoint || '';
      apiUrl.value = t.apiUrl || '';
      apiToken.value = '';
      apiToken.placeholder = 'unchanged unless given';
      caPem.value = t.caPem || '';
      ttype.value = t.thingType || '';
      tconfig.value = t.config || '';
      title.textContent = 'Edit target ' + t.name;
      targetForm.setAttribute('aria-label', 'Edit target');
      submit.textContent = 'Save target';
      cancel.hidden = false;
      showKind();
      name.closest('.panel').scrollIntoView({ block: 'nearest' });
      kind.focus();
    };
    targetForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearProblem(targetForm);
      const body = { name: name.value.trim(), kind: kind.value };
      const set = (k, el) => { if (el.value.trim() && !el.closest('.field').hidden) body[k] = el.value.trim(); };
      set('endpoint', endpoint); set('apiUrl', apiUrl); set('apiToken', apiToken); set('caPem', caPem);
      set('thingType', ttype); set('config', tconfig);
      try {
        if (editing) {
          await put('/api/v1/lobby/targets/' + enc(editing.name), body, { ifMatch: '"' + editing.version + '"' });
          toast('Saved target ' + editing.name + '.');
        } else {
          await post('/api/v1/lobby/targets', body);
          toast('Created target ' + body.name + '.');
        }
        reset();
        loadTargets();
      } catch (e) { showProblem(targetForm, e); }
    });
    showKind();
  }

  const actionSlot = h('div');
  mount(root, h('h1', { text: 'Device lobby' }),
    section('Devices', h('form.filters', { 'aria-label': 'Filter devices' }, field('State', stateFilter)), actionSlot, devices),
    h('div.grid2', {},
      section('Claim a device', claimForm),
      section('Targets', targets, targetForm)));
  await Promise.all([loadDevices(), loadTargets()]);
  if (query.get('device')) follow(query.get('device'));
  const refresh = setInterval(() => loadDevices().catch(() => {}), 5000);
  return () => {
    clearInterval(refresh);
    stopFollowing();
    if (scan) scan.stop();
  };
}

function stateBadge(state) {
  const kind = state === 'arrived' ? 'ok' : state === 'rejected' || state === 'decommissioned' ? 'off' : 'wait';
  return badge(state, kind);
}

function progress(d) {
  const at = FLOW.indexOf(d.state);
  return h('div.progress', { 'data-state': d.state },
    h('p', {}, 'Device ', h('span.mono', { text: d.certificateId.slice(0, 16) + '…' }), d.thingName ? ' as ' + d.thingName : '', ' → ',
      d.target || 'no target', ': ', h('strong.lobby-state', { text: d.state })),
    h('ol.steps', { 'aria-label': 'Lobby states' }, FLOW.map((s, i) => h('li', {
      class: [i < at ? 'done' : '', i === at ? 'current' : ''],
      'aria-current': i === at ? 'step' : undefined,
      text: s,
    }))),
    h('details', {}, h('summary', { text: 'QR code' }),
      h('img.qr', { src: '/api/v1/lobby/devices/' + enc(d.certificateId) + '/qr.png', alt: 'QR code of device ' + d.certificateId, width: 180, height: 180 })),
    (d.history || []).length ? h('details', {}, h('summary', { text: 'History' }),
      h('ul', {}, d.history.map((x) => h('li', {}, when(x.at), ` ${x.from || '∅'} → ${x.to} by ${x.actor}${x.reason ? ' (' + x.reason + ')' : ''}`)))) : null);
}

function btn(label, fn) {
  const b = h('button', { type: 'button', class: 'btn-small', text: label });
  b.addEventListener('click', fn);
  return b;
}
