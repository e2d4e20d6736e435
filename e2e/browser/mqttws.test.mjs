// The console's MQTT 5 packet codec (internal/console/assets/mqttws.js),
// run by e2e/console_people_test.go (TestConsoleMQTTCodec) under node:
// packets as the broker sends them decode to what the test client shows,
// what the client encodes is well-formed, and random or cut input never
// yields a packet that is not there nor anything but an Error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { decode, encodeConnect, encodeSubscribe, encodePublish, encodeUnsubscribe, encodePuback, encodeDisconnect, reasonText, MqttError } from '../../internal/console/assets/mqttws.js';

const u8 = (...b) => new Uint8Array(b.flat());
const str = (s) => { const b = Buffer.from(s); return [b.length >> 8, b.length & 0xff, ...b]; };

test('packets from the broker decode with their reasons', () => {
  const reason = str('policy denies topicfilter/x');
  const cases = [
    ['CONNACK refused', u8(0x20, 3, 0, 0x87, 0), { type: 'connack', code: 0x87, reason: '' }],
    ['CONNACK with a reason string', u8(0x20, 3 + 1 + reason.length, 0, 0x86, 1 + reason.length, 0x1f, reason), { type: 'connack', code: 0x86, reason: 'policy denies topicfilter/x' }],
    ['SUBACK denied', u8(0x90, 4, 0, 7, 0, 0x87), { type: 'suback', id: 7, codes: [0x87], reason: '' }],
    ['PUBACK denied with a reason', u8(0x40, 4 + 1 + reason.length, 0, 9, 0x87, 1 + reason.length, 0x1f, reason), { type: 'puback', id: 9, code: 0x87, reason: 'policy denies topicfilter/x' }],
    ['PUBACK short form', u8(0x40, 2, 0, 9), { type: 'puback', id: 9, code: 0, reason: '' }],
    ['DISCONNECT', u8(0xe0, 2, 0x8e, 0), { type: 'disconnect', code: 0x8e, reason: '' }],
    ['PINGRESP', u8(0xd0, 0), { type: 'pingresp' }],
  ];
  for (const [name, bytes, want] of cases) {
    const [pkts, rest] = decode(bytes);
    assert.equal(pkts.length, 1, name);
    const got = { ...pkts[0] };
    delete got.props;
    assert.deepEqual(got, want, name);
    assert.equal(rest.length, 0, name);
  }
  const pub = encodePublish({ id: 3, topic: 'things/lamp-1/telemetry/on', payload: '{"on":true}', qos: 1 });
  const [[p]] = decode(pub);
  assert.equal(p.type, 'publish');
  assert.equal(p.topic, 'things/lamp-1/telemetry/on');
  assert.equal(p.id, 3);
  assert.equal(Buffer.from(p.payload).toString(), '{"on":true}');
});

test('what the client sends is well-formed', () => {
  const connect = encodeConnect({ clientId: 'owen~console-1', username: 'owen', password: 'tok', keepAlive: 30 });
  assert.deepEqual([...connect.subarray(0, 2)], [0x10, connect.length - 2]);
  assert.equal(Buffer.from(connect.subarray(4, 8)).toString(), 'MQTT');
  assert.equal(connect[8], 5, 'MQTT 5');
  assert.equal(connect[9], 0xc2, 'username, password, clean start');
  assert.deepEqual([...encodeSubscribe(1, 'a/#', 1)], [0x82, 9, 0, 1, 0, 0, 3, 97, 47, 35, 1]);
  assert.deepEqual([...encodeUnsubscribe(2, 'a')], [0xa2, 6, 0, 2, 0, 0, 1, 97]);
  assert.deepEqual([...encodePuback(258)], [0x40, 2, 1, 2]);
  assert.deepEqual([...encodeDisconnect()], [0xe0, 2, 0, 0]);
  const big = encodePublish({ topic: 't', payload: 'x'.repeat(300) });
  assert.deepEqual([...big.subarray(0, 3)], [0x30, 0xb0, 0x02], 'remaining length 304 as a variable byte integer');
});

test('partial input waits for the rest', () => {
  const whole = u8(0x90, 4, 0, 7, 0, 0x87, 0x40, 2, 0, 9);
  for (let cut = 0; cut < whole.length; cut++) {
    const [first, rest] = decode(whole.subarray(0, cut));
    const [second] = decode(new Uint8Array([...rest, ...whole.subarray(cut)]));
    assert.equal(first.length + second.length, 2, `cut at ${cut}`);
  }
});

test('random input decodes or throws an Error, and never invents bytes', () => {
  for (let i = 0; i < 20000; i++) {
    const n = 1 + (i % 64);
    const buf = new Uint8Array(randomBytes(n));
    // Mostly packet types the client reads, with small lengths.
    buf[0] = [0x20, 0x30, 0x32, 0x40, 0x90, 0xb0, 0xd0, 0xe0][i % 8] | (buf[0] & 0x0f & (i % 3 ? 0 : 0x0f));
    if (n > 1) buf[1] = buf[1] % (n + 2);
    try {
      const [pkts, rest] = decode(buf);
      assert.ok(rest.length <= buf.length);
      for (const p of pkts) if (p.payload) assert.ok(p.payload.length <= buf.length);
    } catch (e) {
      assert.ok(e instanceof Error, 'a malformed packet throws an Error');
    }
  }
});

test('refusals read as the specification names them', () => {
  assert.equal(reasonText(0x87), 'Not authorized (0x87)');
  assert.equal(reasonText(0x8f), 'Topic Filter invalid (0x8f)');
  const e = new MqttError('Publish to x refused', 0x87, 'no policy allows it');
  assert.equal(e.message, 'Publish to x refused: Not authorized (0x87) — no policy allows it');
});
