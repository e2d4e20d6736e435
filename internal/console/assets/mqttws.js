// A small MQTT 5 client over WebSocket for the console's test client:
// CONNECT, SUBSCRIBE/UNSUBSCRIBE, PUBLISH at QoS 0 and 1 both ways, PING,
// DISCONNECT. Refusals come back as MqttError with the reason code, its
// name from the specification and the server's reason string, if any.
// No DOM here: the packet codec is exported for tests (node can run it).

export const REASONS = {
  0x00: 'Success', 0x01: 'Granted QoS 1', 0x02: 'Granted QoS 2', 0x04: 'Disconnect with Will Message',
  0x10: 'No matching subscribers', 0x11: 'No subscription existed',
  0x80: 'Unspecified error', 0x81: 'Malformed Packet', 0x82: 'Protocol Error', 0x83: 'Implementation specific error',
  0x84: 'Unsupported Protocol Version', 0x85: 'Client Identifier not valid', 0x86: 'Bad User Name or Password',
  0x87: 'Not authorized', 0x88: 'Server unavailable', 0x89: 'Server busy', 0x8A: 'Banned', 0x8B: 'Server shutting down',
  0x8C: 'Bad authentication method', 0x8D: 'Keep Alive timeout', 0x8E: 'Session taken over', 0x8F: 'Topic Filter invalid',
  0x90: 'Topic Name invalid', 0x91: 'Packet Identifier in use', 0x92: 'Packet Identifier not found', 0x93: 'Receive Maximum exceeded',
  0x94: 'Topic Alias invalid', 0x95: 'Packet too large', 0x96: 'Message rate too high', 0x97: 'Quota exceeded',
  0x98: 'Administrative action', 0x99: 'Payload format invalid', 0x9A: 'Retain not supported', 0x9B: 'QoS not supported',
  0x9C: 'Use another server', 0x9D: 'Server moved', 0x9E: 'Shared Subscriptions not supported', 0x9F: 'Connection rate exceeded',
  0xA0: 'Maximum connect time', 0xA1: 'Subscription Identifiers not supported', 0xA2: 'Wildcard Subscriptions not supported',
};

export function reasonText(code) {
  return (REASONS[code] || 'Reason') + ' (0x' + code.toString(16).padStart(2, '0') + ')';
}

export class MqttError extends Error {
  constructor(what, code, reasonString) {
    super(what + ': ' + reasonText(code) + (reasonString ? ' — ' + reasonString : ''));
    this.code = code;
    this.reasonString = reasonString || '';
  }
}

// ---- codec ----

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

function varint(n) {
  const out = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

function str(s) {
  const b = enc.encode(s);
  if (b.length > 0xffff) throw new Error('string longer than 65535 bytes');
  return [b.length >> 8, b.length & 0xff, ...b];
}

function u16(n) { return [n >> 8, n & 0xff]; }

function packet(type, flags, body) {
  return new Uint8Array([(type << 4) | flags, ...varint(body.length), ...body]);
}

export function encodeConnect({ clientId, username, password, keepAlive = 60 }) {
  let flags = 0x02; // clean start
  const payload = [...str(clientId)];
  if (username !== undefined) { flags |= 0x80; payload.push(...str(username)); }
  if (password !== undefined) { flags |= 0x40; payload.push(...str(password)); }
  return packet(1, 0, [...str('MQTT'), 5, flags, ...u16(keepAlive), 0, ...payload]);
}

export function encodeSubscribe(id, filter, qos) {
  return packet(8, 2, [...u16(id), 0, ...str(filter), qos & 3]);
}

export function encodeUnsubscribe(id, filter) {
  return packet(10, 2, [...u16(id), 0, ...str(filter)]);
}

export function encodePublish({ id, topic, payload, qos = 0, retain = false }) {
  const body = [...str(topic)];
  if (qos > 0) body.push(...u16(id));
  body.push(0, ...(typeof payload === 'string' ? enc.encode(payload) : payload));
  return packet(3, (qos << 1) | (retain ? 1 : 0), body);
}

export const encodePuback = (id) => packet(4, 0, u16(id));
export const encodePing = () => packet(12, 0, []);
export const encodeDisconnect = () => packet(14, 0, [0, 0]);

class Reader {
  constructor(b) { this.b = b; this.i = 0; }
  left() { return this.b.length - this.i; }
  need(n) { if (this.left() < n) throw new Error('malformed packet: truncated'); }
  byte() { this.need(1); return this.b[this.i++]; }
  u16() { this.need(2); const v = (this.b[this.i] << 8) | this.b[this.i + 1]; this.i += 2; return v; }
  u32() { this.need(4); const v = ((this.b[this.i] << 24) >>> 0) + ((this.b[this.i + 1] << 16) | (this.b[this.i + 2] << 8) | this.b[this.i + 3]); this.i += 4; return v; }
  bytes(n) { this.need(n); const v = this.b.subarray(this.i, this.i + n); this.i += n; return v; }
  str() { return dec.decode(this.bytes(this.u16())); }
  varint() {
    let n = 0, mul = 1;
    for (let k = 0; k < 4; k++) {
      const b = this.byte();
      n += (b & 0x7f) * mul;
      if (!(b & 0x80)) return n;
      mul *= 128;
    }
    throw new Error('malformed packet: variable byte integer too long');
  }
  // props reads an MQTT 5 property list and returns what the client uses.
  props() {
    const len = this.varint();
    const end = this.i + len;
    if (end > this.b.length) throw new Error('malformed packet: properties past the end');
    const p = {};
    while (this.i < end) {
      const id = this.varint();
      switch (id) {
        case 0x01: case 0x17: case 0x19: case 0x24: case 0x25: case 0x28: case 0x29: case 0x2A: p[id] = this.byte(); break;
        case 0x13: case 0x21: case 0x22: case 0x23: p[id] = this.u16(); break;
        case 0x02: case 0x11: case 0x18: case 0x27: p[id] = this.u32(); break;
        case 0x0B: p[id] = this.varint(); break;
        case 0x03: case 0x08: case 0x12: case 0x15: case 0x1A: case 0x1C: case 0x1F: p[id] = this.str(); break;
        case 0x09: case 0x16: p[id] = this.bytes(this.u16()); break;
        case 0x26: this.str(); this.str(); break; // user property
        default: throw new Error('malformed packet: unknown property 0x' + id.toString(16));
      }
    }
    if (this.i !== end) throw new Error('malformed packet: properties overrun');
    return p;
  }
}

const REASON_STRING = 0x1F;

// decode splits buf into whole packets: returns [packets, rest]. Each
// packet is {type, ...fields}; a malformed one throws.
export function decode(buf) {
  const out = [];
  let i = 0;
  for (;;) {
    if (buf.length - i < 2) break;
    let len = 0, mul = 1, k = 1, done = false;
    for (; k <= 4 && i + k < buf.length; k++) {
      const b = buf[i + k];
      len += (b & 0x7f) * mul;
      mul *= 128;
      if (!(b & 0x80)) { done = true; break; }
    }
    if (!done) {
      if (k > 4) throw new Error('malformed packet: remaining length too long');
      break;
    }
    const start = i + k + 1;
    if (buf.length < start + len) break;
    out.push(parse(buf[i], new Reader(buf.subarray(start, start + len))));
    i = start + len;
  }
  return [out, buf.subarray(i)];
}

function parse(first, r) {
  const type = first >> 4;
  switch (type) {
    case 2: { // CONNACK
      r.byte();
      const code = r.byte();
      const props = r.left() ? r.props() : {};
      return { type: 'connack', code, reason: props[REASON_STRING] || '', props };
    }
    case 3: { // PUBLISH
      const qos = (first >> 1) & 3;
      if (qos === 3) throw new Error('malformed packet: QoS 3');
      const topic = r.str();
      const id = qos > 0 ? r.u16() : 0;
      r.props();
      return { type: 'publish', topic, id, qos, retain: !!(first & 1), payload: r.bytes(r.left()) };
    }
    case 4: { // PUBACK
      const id = r.u16();
      const code = r.left() ? r.byte() : 0;
      const props = r.left() ? r.props() : {};
      return { type: 'puback', id, code, reason: props[REASON_STRING] || '' };
    }
    case 9: case 11: { // SUBACK, UNSUBACK
      const id = r.u16();
      const props = r.props();
      const codes = [...r.bytes(r.left())];
      return { type: type === 9 ? 'suback' : 'unsuback', id, codes, reason: props[REASON_STRING] || '' };
    }
    case 13: return { type: 'pingresp' };
    case 14: { // DISCONNECT
      const code = r.left() ? r.byte() : 0;
      const props = r.left() ? r.props() : {};
      return { type: 'disconnect', code, reason: props[REASON_STRING] || '' };
    }
    default: throw new Error('unexpected packet type ' + type);
  }
}

// ---- client ----

// connect opens url (ws:// or wss://) and logs in. Returns the client
// once the CONNACK is a success; rejects with MqttError otherwise.
// handlers: onMessage({topic, payload, qos, retain}), onClose(error|null).
export function connect(url, opts, handlers = {}, WS = globalThis.WebSocket) {
  return new Promise((resolve, reject) => {
    const ws = new WS(url, 'mqtt');
    ws.binaryType = 'arraybuffer';
    const client = new Client(ws, handlers);
    let settled = false;
    ws.onopen = () => ws.send(encodeConnect(opts));
    client.onConnack = (p) => {
      settled = true;
      if (p.code !== 0) { reject(new MqttError('Connect refused', p.code, p.reason)); ws.close(); return; }
      client.startPing((opts.keepAlive || 60) * 500);
      resolve(client);
    };
    client.onEnd = (err) => {
      if (!settled) { settled = true; reject(err || new Error('the connection closed before the CONNACK')); }
    };
  });
}

class Client {
  constructor(ws, handlers) {
    this.ws = ws;
    this.handlers = handlers;
    this.nextId = 1;
    this.pending = new Map();
    this.buf = new Uint8Array(0);
    this.closed = false;
    this.serverDisconnect = null;
    ws.onmessage = (ev) => this.receive(new Uint8Array(ev.data));
    ws.onclose = () => this.end(this.serverDisconnect || (this.closed ? null : new Error('the connection closed')));
    ws.onerror = () => {};
  }

  id() {
    const id = this.nextId;
    this.nextId = this.nextId === 0xffff ? 1 : this.nextId + 1;
    return id;
  }

  startPing(ms) { this.timer = setInterval(() => { if (this.ws.readyState === 1) this.ws.send(encodePing()); }, ms); }

  receive(chunk) {
    const all = new Uint8Array(this.buf.length + chunk.length);
    all.set(this.buf);
    all.set(chunk, this.buf.length);
    let pkts;
    try {
      [pkts, this.buf] = decode(all);
      this.buf = this.buf.slice();
    } catch (e) {
      this.serverDisconnect = e;
      this.ws.close();
      return;
    }
    for (const p of pkts) this.dispatch(p);
  }

  dispatch(p) {
    switch (p.type) {
      case 'connack': if (this.onConnack) this.onConnack(p); break;
      case 'publish':
        if (p.qos === 1) this.ws.send(encodePuback(p.id));
        if (this.handlers.onMessage) this.handlers.onMessage(p);
        break;
      case 'puback': case 'suback': case 'unsuback': {
        const w = this.pending.get(p.id);
        if (w) { this.pending.delete(p.id); w.resolve(p); }
        break;
      }
      case 'disconnect':
        this.serverDisconnect = new MqttError('Disconnected by the server', p.code, p.reason);
        break;
      default:
    }
  }

  wait(id) {
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  // subscribe resolves to the granted QoS or rejects with the SUBACK's
  // failure reason.
  async subscribe(filter, qos = 0) {
    const id = this.id();
    const done = this.wait(id);
    this.ws.send(encodeSubscribe(id, filter, qos));
    const ack = await done;
    const code = ack.codes[0];
    if (code === undefined || code >= 0x80) throw new MqttError('Subscribe to ' + filter + ' refused', code ?? 0x80, ack.reason);
    return code;
  }

  async unsubscribe(filter) {
    const id = this.id();
    const done = this.wait(id);
    this.ws.send(encodeUnsubscribe(id, filter));
    await done;
  }

  // publish resolves when sent (QoS 0) or acknowledged (QoS 1); a QoS 1
  // publish the server refuses rejects with its PUBACK reason.
  async publish(topic, payload, qos = 0, retain = false) {
    if (qos === 0) { this.ws.send(encodePublish({ topic, payload, qos, retain })); return 0; }
    const id = this.id();
    const done = this.wait(id);
    this.ws.send(encodePublish({ id, topic, payload, qos, retain }));
    const ack = await done;
    if (ack.code >= 0x80) throw new MqttError('Publish to ' + topic + ' refused', ack.code, ack.reason);
    return ack.code;
  }

  disconnect() {
    this.closed = true;
    if (this.ws.readyState === 1) this.ws.send(encodeDisconnect());
    this.ws.close();
  }

  end(err) {
    clearInterval(this.timer);
    for (const w of this.pending.values()) w.reject(err || new Error('disconnected'));
    this.pending.clear();
    if (this.onEnd) this.onEnd(err);
    if (this.handlers.onClose) this.handlers.onClose(err);
    this.onEnd = null;
    this.handlers = {};
  }
}
