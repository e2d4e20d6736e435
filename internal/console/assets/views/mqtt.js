// MQTT test client: subscribe and publish from the browser over the
// broker's WebSocket listener, as the signed-in person (a short-lived token
// minted for this session), under their own policies. Refusals show their
// MQTT reason.
import { h, mount, field, table, section, toast, fmtTime } from '../dom.js';
import { post } from '../api.js';
import { connect, reasonText, MqttError } from '../mqttws.js';

const MAX_MESSAGES = 200;

export async function render(root, _params, ctx) {
  let client = null;
  const subs = new Map(); // filter -> granted QoS
  const messages = [];
  const log = [];

  const status = h('p.stream-status', { role: 'status', 'data-testid': 'mqtt-status', text: 'disconnected' });
  const who = h('p.muted');
  const connectBtn = h('button.btn-primary', { type: 'button', text: 'Connect' });
  const disconnectBtn = h('button', { type: 'button', text: 'Disconnect', disabled: true });
  const subList = h('div');
  const msgList = h('div');
  const logList = h('div');

  const filter = h('input', { name: 'filter', type: 'text', required: true, placeholder: 'things/+/telemetry/#', autocomplete: 'off' });
  const subQos = h('select', { name: 'subQos' }, [0, 1].map((q) => h('option', { value: String(q), text: 'QoS ' + q })));
  const subForm = h('form.card', { 'aria-label': 'Subscribe' },
    h('div.row', {}, field('Topic filter', filter), field('QoS', subQos)),
    h('div.actions', {}, h('button', { type: 'submit', text: 'Subscribe' })));

  const topic = h('input', { name: 'topic', type: 'text', required: true, placeholder: 'things/lamp-1/commands/on', autocomplete: 'off' });
  const payload = h('textarea', { name: 'payload', rows: 3, class: 'mono' });
  const pubQos = h('select', { name: 'pubQos' }, [1, 0].map((q) => h('option', { value: String(q), text: 'QoS ' + q })));
  const retain = h('input', { name: 'retain', type: 'checkbox', id: 'mqtt-retain' });
  const pubForm = h('form.card', { 'aria-label': 'Publish' },
    h('div.row', {}, field('Topic', topic), field('QoS', pubQos)),
    field('Payload', payload),
    h('div.check', {}, retain, h('label', { for: 'mqtt-retain', text: 'Retain' })),
    h('div.actions', {}, h('button', { type: 'submit', text: 'Publish' })));

  function note(kind, text) {
    log.unshift({ at: new Date().toISOString(), kind, text });
    log.length = Math.min(log.length, 50);
    mount(logList, table([
      { label: 'Time', get: (l) => fmtTime(l.at) },
      { label: 'Result', get: (l) => h('span', { class: ['badge', l.kind === 'ok' ? 'badge-ok' : 'badge-off'], text: l.kind }) },
      { label: 'Detail', get: (l) => h('span.wrap', { text: l.text }) },
    ], log, { label: 'Activity', empty: 'Nothing yet.' }));
  }

  // failed notes a refusal (the broker's MQTT reason) or another error.
  const failed = (e) => note(e instanceof MqttError ? 'denied' : 'error', e.message);

  function drawSubs() {
    mount(subList, table([
      { label: 'Filter', get: ([f]) => h('span.mono', { text: f }) },
      { label: 'Granted', get: ([, q]) => 'QoS ' + q },
      { label: '', get: ([f]) => {
        const b = h('button', { type: 'button', class: 'btn-small', text: 'Unsubscribe' });
        b.addEventListener('click', async () => {
          try { await client.unsubscribe(f); subs.delete(f); drawSubs(); note('ok', 'Unsubscribed from ' + f); } catch (e) { toast(e.message, 'error'); }
        });
        return b;
      } },
    ], [...subs], { label: 'Subscriptions', empty: 'No subscriptions.' }));
  }

  function drawMessages() {
    mount(msgList, table([
      { label: 'Received', get: (m) => fmtTime(m.at) },
      { label: 'Topic', get: (m) => h('span.mono', { text: m.topic }) },
      { label: 'QoS', get: (m) => String(m.qos) + (m.retain ? ' retained' : '') },
      { label: 'Payload', get: (m) => h('span.mono.wrap', { text: m.text }) },
    ], messages, { label: 'Messages', empty: 'No messages yet.' }));
  }

  function setConnected(on) {
    connectBtn.disabled = on;
    disconnectBtn.disabled = !on;
    for (const b of [...subForm.querySelectorAll('button'), ...pubForm.querySelectorAll('button')]) b.disabled = !on;
  }

  connectBtn.addEventListener('click', async () => {
    connectBtn.disabled = true;
    status.textContent = 'connecting…';
    try {
      const t = await post('/console/api/mqtt-token');
      mount(who, 'As ', h('strong', { text: t.username }), ' with client id ', h('span.mono', { text: t.clientId }),
        ' at ', h('span.mono', { text: t.url }), ' — token valid until ' + fmtTime(t.expiresAt) + '.');
      client = await connect(t.url, { clientId: t.clientId, username: t.username, password: t.token, keepAlive: 30 }, {
        onMessage: (m) => {
          let text;
          try { text = new TextDecoder('utf-8', { fatal: true }).decode(m.payload); } catch { text = '(' + m.payload.length + ' bytes of binary)'; }
          messages.unshift({ at: new Date().toISOString(), topic: m.topic, qos: m.qos, retain: m.retain, text });
          messages.length = Math.min(messages.length, MAX_MESSAGES);
          drawMessages();
        },
        onClose: (err) => {
          const was = client;
          client = null;
          subs.clear();
          drawSubs();
          setConnected(false);
          status.textContent = 'disconnected';
          if (err && was) failed(err);
        },
      });
      status.textContent = 'connected';
      setConnected(true);
      note('ok', 'Connected as ' + t.username);
    } catch (e) {
      status.textContent = 'disconnected';
      connectBtn.disabled = false;
      failed(e);
    }
  });
  disconnectBtn.addEventListener('click', () => { if (client) client.disconnect(); });

  subForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = filter.value.trim();
    try {
      const q = await client.subscribe(f, Number(subQos.value));
      subs.set(f, q);
      drawSubs();
      note('ok', 'Subscribed to ' + f + ': ' + reasonText(q));
    } catch (e) { failed(e); }
  });
  pubForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const tp = topic.value.trim();
    const qos = Number(pubQos.value);
    try {
      const code = await client.publish(tp, payload.value, qos, retain.checked);
      note('ok', qos ? 'Published to ' + tp + ': ' + reasonText(code) : 'Sent to ' + tp + ' at QoS 0 (no acknowledgement: a refusal is not reported)');
    } catch (e) { failed(e); }
  });

  setConnected(false);
  drawSubs();
  drawMessages();
  mount(root, h('h1', { text: 'MQTT test client' }),
    h('p.muted', { text: `Connect to the broker over WebSocket as yourself (${ctx.session.username}): what your policies allow is what works here. Refusals show the broker's reason.` }),
    section('Connection', h('div.actions', {}, connectBtn, disconnectBtn, status), who),
    h('div.grid2', {}, section('Subscribe', subForm, subList), section('Publish', pubForm)),
    section('Activity', logList),
    section('Messages', msgList));
  note('ok', 'Ready');
  return () => { if (client) client.disconnect(); };
}
