// Browser scenarios of the console's operations pages (issue #20 part A),
// run by e2e/console_ops_test.go (TestConsoleOperations) against a real
// `gatehouse serve` it prepared:
//
//   BASE_URL, ADMIN_USER, ADMIN_PASSWORD   the server and its administrator
//   GRAINY_PNG      a grainy photo of device A's QR code (A knocks in the lobby)
//   DEVICE_A/B/C    fingerprints: A waits in the lobby, B and C are pre-claimed
//   CA_PEM          a CA certificate for a target's CA field
//   SCREENSHOT_DIR  where the screenshots go (each page at 1280x800, and full)
//   CHROMIUM        the browser (default /usr/bin/chromium)
import { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { env, harness } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const BASE = env('BASE_URL').replace(/\/$/, '');
const H = harness(process.env.SCREENSHOT_DIR || path.join(here, 'artifacts', 'ops'));
const { step, snap } = H;
const A = env('DEVICE_A'), B = env('DEVICE_B'), C = env('DEVICE_C');
const go = (p, hash) => p.goto(BASE + '/console/#/' + hash);
const settled = (p) => p.locator('main .loading').waitFor({ state: 'detached' });
const PACKAGE_NAMES = /\b(lobby|store|pki|registry|certs):|invalid request/;

before(() => H.start());
after(() => H.stop());

describe('console operations', () => {
  let page;
  const deviceRow = (fp) => page.getByRole('table', { name: 'Lobby devices' }).getByRole('row').filter({ hasText: fp.slice(0, 12) });

  step('overview: counts beside the charts, live connections with search', async () => {
    page = H.page;
    await H.login(page, env('ADMIN_USER', 'admin'), env('ADMIN_PASSWORD'));
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    const counts = page.getByRole('list', { name: 'Counts' });
    await counts.getByRole('listitem').filter({ hasText: 'waiting in the lobby' }).filter({ hasText: /^1/ }).waitFor();
    for (const label of ['things', 'connected now', 'tokens issued, last hour', 'denials, last hour']) {
      await counts.getByRole('listitem').filter({ hasText: label }).waitFor();
    }
    assert.ok(await page.locator('svg.chart').count() >= 4, 'the charts are there too');
    // Device A's lobby session is a live connection.
    const conns = page.getByRole('table', { name: 'Live connections' });
    await page.getByLabel('Search connections').fill(A.slice(0, 10).toUpperCase());
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await conns.getByRole('cell', { name: A, exact: true }).waitFor();
    await snap(page, 'overview');
    await page.getByLabel('Search connections').fill('nobody-like-this');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await conns.getByText('No connection matches.').waitFor();
  });

  step('the lobby waiting count shows on every page', async () => {
    for (const r of ['things', 'events', 'policies', 'thing-types']) {
      await go(page, r);
      await settled(page);
      const count = page.getByRole('navigation').getByRole('link', { name: /Device lobby/ }).locator('.nav-count');
      await count.filter({ hasText: /^1$/ }).waitFor();
    }
  });

  step('lobby: the device list is above the fold, with thing names', async () => {
    await go(page, 'lobby');
    const devices = page.getByRole('table', { name: 'Lobby devices' });
    await deviceRow(A).getByText('inlobby').waitFor();
    const box = await devices.boundingBox();
    assert.ok(box.y < 800, `the device list starts at ${box.y}px, below the fold`);
    await deviceRow(B).getByRole('cell', { name: 'meter-b', exact: true }).waitFor();
    await snap(page, 'lobby');
  });

  step('lobby: claim from a grainy photo; a readable error, then the form clears', async () => {
    const claim = page.getByRole('form', { name: 'Claim a device' });
    await claim.getByLabel('Upload a photo of the QR code').setInputFiles(env('GRAINY_PNG'));
    await claim.locator('[data-decoded]').waitFor({ timeout: 30_000 });
    assert.equal(await claim.getByLabel('Device (QR code or fingerprint)').inputValue(), 'GH1:' + A);
    await claim.getByLabel('Target').selectOption('here');
    await claim.getByLabel('Thing name').fill('no spaces allowed!');
    await claim.getByRole('button', { name: 'Claim device' }).click();
    const box = claim.locator('.form-error').first();
    await box.filter({ hasText: /thingName/ }).waitFor();
    assert.doesNotMatch(await box.textContent(), PACKAGE_NAMES);
    await snap(page, 'lobby-readable-error');
    await claim.getByLabel('Thing name').fill('meter-a1');
    await claim.getByRole('button', { name: 'Claim device' }).click();
    await deviceRow(A).getByText('meter-a1').waitFor();
    assert.equal(await claim.getByLabel('Device (QR code or fingerprint)').inputValue(), '');
    assert.equal(await claim.getByLabel('Thing name').inputValue(), '');
    assert.equal(await claim.locator('[data-decoded]').count(), 0);
    // Nothing waits any more: the count goes.
    await page.getByRole('navigation').locator('.nav-count').waitFor({ state: 'hidden' });
    await snap(page, 'lobby-claimed');
  });

  step('lobby: reroute, factory reset with a reason, decommission with a reason', async () => {
    await deviceRow(B).getByRole('button', { name: 'Reroute…' }).click();
    const reroute = page.getByRole('form', { name: 'Reroute device' });
    await reroute.getByLabel('New target').selectOption('there');
    await snap(page, 'lobby-reroute');
    await reroute.getByRole('button', { name: 'Reroute' }).click();
    await deviceRow(B).getByRole('cell', { name: 'there', exact: true }).waitFor();

    await deviceRow(B).getByRole('button', { name: 'Factory reset…' }).click();
    const reset = page.getByRole('form', { name: 'Factory reset device' });
    await reset.getByLabel('Reason').fill('back to the shelf');
    await reset.getByRole('button', { name: 'Factory reset' }).click();
    // B never knocked: the reset puts it back to waiting for its first knock.
    await deviceRow(B).getByText(/^(inlobby|knocking)$/).waitFor();

    await deviceRow(C).getByRole('button', { name: 'Decommission…' }).click();
    const decom = page.getByRole('form', { name: 'Decommission device' });
    await decom.getByLabel('Reason').fill('water damage');
    await decom.getByRole('button', { name: 'Decommission' }).click();
    await deviceRow(C).getByText('decommissioned').waitFor();
    await snap(page, 'lobby-actions');
  });

  step('lobby: targets of every kind, edited and deleted', async () => {
    const form = page.getByRole('form', { name: 'Create a target' });
    await form.getByLabel('Name').fill('plant');
    await form.getByLabel('Kind').selectOption('gatehouse');
    await form.getByLabel('API URL').fill('https://plant.example.com');
    await form.getByLabel('API token').fill('ghat_plant_token');
    await form.getByLabel('Thing type').fill('meter');
    await form.getByLabel('CA certificate (PEM)').fill(env('CA_PEM'));
    await form.getByRole('button', { name: 'Create target' }).click();
    const targets = page.getByRole('table', { name: 'Targets' });
    const plant = targets.getByRole('row').filter({ hasText: 'plant' });
    await plant.getByRole('cell', { name: 'own CA' }).waitFor();
    await plant.getByRole('cell', { name: 'https://plant.example.com' }).waitFor();

    await targets.getByRole('row').filter({ hasText: 'there' }).getByRole('button', { name: 'Edit' }).click();
    const edit = page.getByRole('form', { name: 'Edit target' });
    await edit.getByLabel('Config').fill('report every 5s');
    await snap(page, 'lobby-target-edit');
    await edit.getByRole('button', { name: 'Save target' }).click();
    await page.getByRole('form', { name: 'Create a target' }).waitFor();

    await plant.getByRole('button', { name: 'Delete' }).click();
    await plant.getByRole('button', { name: 'Yes, delete' }).click();
    await plant.waitFor({ state: 'detached' });
  });

  step('events: open on the latest, page back, filter, details as key/value, keep the layout', async () => {
    await go(page, 'events?limit=5');
    const table = page.getByRole('table', { name: 'Events' });
    await table.locator('tbody tr[data-id]').first().waitFor();
    const ids = async () => (await table.locator('tbody tr[data-id]').evaluateAll((rows) => rows.map((r) => Number(r.dataset.id))));
    const first = await ids();
    assert.equal(first.length, 5, 'a page of five');
    assert.deepEqual(first, [...first].sort((a, b) => b - a), 'newest first');
    await page.locator('.stream-status').filter({ hasText: 'live' }).waitFor();
    await snap(page, 'events');
    await page.getByRole('button', { name: 'Older events' }).click();
    await table.locator(`tbody tr[data-id="${first[4] - 1}"]`).waitFor();
    const second = await ids();
    assert.ok(Math.max(...second) < Math.min(...first), `the older page ${second} is before ${first}`);
    await page.getByRole('button', { name: 'Back to the latest' }).click();
    await table.locator(`tbody tr[data-id="${first[0]}"]`).waitFor();

    await go(page, 'events');
    await page.getByLabel('Type').fill('lobby.');
    await page.getByLabel('Actor').fill('user:admin');
    await page.getByRole('button', { name: 'Apply' }).click();
    // The unfiltered page already holds lobby.decommissioned: wait for the
    // filtered one to replace it, not for that row.
    await page.waitForFunction(() => {
      const rs = [...document.querySelectorAll('table.events tbody tr[data-id]')];
      return rs.length > 0 && rs.every((r) => r.dataset.type.startsWith('lobby.') && r.children[4].textContent === 'user:admin');
    });
    await table.locator('tbody tr[data-type="lobby.decommissioned"]').waitFor();
    const rows = await table.locator('tbody tr[data-id]').evaluateAll((rs) => rs.map((r) => [r.dataset.type, r.children[4].textContent]));
    assert.ok(rows.length >= 3 && rows.every(([t, a]) => t.startsWith('lobby.') && a === 'user:admin'), JSON.stringify(rows));
    // Details read as key/value, not raw JSON.
    const dl = table.locator('tbody tr[data-type="lobby.decommissioned"] dl.kv');
    await dl.getByText('water damage').waitFor();
    // One time format: local with the zone, ISO on hover.
    const t = table.locator('tbody time').first();
    assert.match(await t.textContent(), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+/);
    assert.match(await t.getAttribute('title'), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const layout = await page.evaluate(() => ({
      width: document.documentElement.scrollWidth,
      tallest: Math.max(...[...document.querySelectorAll('table.events tbody tr')].map((r) => r.getBoundingClientRect().height)),
    }));
    assert.ok(layout.width <= 1280, `events are ${layout.width}px wide`);
    assert.ok(layout.tallest < 200, `an event row is ${layout.tallest}px tall`);
    await snap(page, 'events-filtered');
    // A time range in the future holds nothing.
    await page.getByLabel('From').fill('2099-01-01T00:00');
    await page.getByRole('button', { name: 'Apply' }).click();
    await table.getByText('No events match.').waitFor();
  });

  step('thing types: the name opens the type, which edits', async () => {
    await go(page, 'thing-types');
    await page.getByRole('table', { name: 'Thing types' }).getByRole('link', { name: 'meter', exact: true }).click();
    await page.getByRole('heading', { name: 'meter', exact: true }).waitFor();
    const form = page.getByRole('form', { name: 'Edit the thing type' });
    await form.getByLabel('OAuth scopes').fill('publish telemetry');
    await form.getByLabel('Scope descriptions').fill('publish: Send its meter readings');
    await form.getByLabel('Attribute schema').fill('site* [a-z]+\nfloor');
    await form.getByRole('group', { name: 'Default policies' }).getByLabel('people-read').check();
    await form.getByRole('group', { name: 'Auth methods' }).getByLabel('X.509 certificate (mutual TLS)').check();
    await form.getByRole('button', { name: 'Save thing type' }).click();
    await page.getByRole('table', { name: 'Attribute schema' }).getByRole('cell', { name: '[a-z]+' }).waitFor();
    await page.getByText('Send its meter readings', { exact: false }).first().waitFor();
    await snap(page, 'thing-type');
  });

  step('policies: built-in marked and protected; the editor marks the line; attach with a picker', async () => {
    await go(page, 'policies');
    await page.getByRole('table', { name: 'Policies' }).getByRole('row').filter({ hasText: 'gatehouse-people' }).getByText('built in').waitFor();
    await snap(page, 'policies');
    await go(page, 'policies/gatehouse-people');
    await page.getByRole('heading', { name: /gatehouse-people/ }).getByText('built in').waitFor();
    assert.equal(await page.getByRole('button', { name: 'Delete policy' }).count(), 0, 'a built-in policy offers no delete');
    // The title leaves the badge out (it is set once the page has loaded).
    await page.waitForFunction(() => document.title === 'gatehouse-people — Gatehouse console');

    await go(page, 'policies/people-read');
    const editor = page.getByRole('form', { name: 'Edit the policy document' });
    const doc = editor.getByLabel('Document');
    // A syntax error on line 3 marks line 3 while typing.
    await doc.fill('{\n  "Version": "2012-10-17",\n  "Statement": [ oops ]\n}');
    await editor.locator('.gutter .bad').filter({ hasText: /^3$/ }).waitFor();
    await editor.locator('.editor-error').filter({ hasText: /^Line 3:/ }).waitFor();
    // The server's error at Statement[0].Effect marks the line of Effect.
    await doc.fill(JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Perhaps', Action: 'iot:Subscribe', Resource: 'topicfilter/meters/#' }] }, null, 2));
    await editor.getByRole('button', { name: 'Save as new default version' }).click();
    await editor.locator('.gutter .bad').filter({ hasText: /^5$/ }).waitFor();
    await snap(page, 'policy-editor-error');

    const attach = page.getByRole('form', { name: 'Attach the policy' });
    await attach.getByLabel('Kind').selectOption('user');
    await attach.getByLabel('Target').fill('bob');
    await attach.getByRole('button', { name: 'Attach' }).click();
    await attach.getByText('No user is called "bob"').waitFor();
    await attach.getByLabel('Target').fill('alice');
    await attach.getByRole('button', { name: 'Attach' }).click();
    await page.getByRole('table', { name: 'Attachments' }).getByRole('cell', { name: 'user/alice' }).waitFor();
    await snap(page, 'policy-attached');
  });

  step('simulator: a person as well as a thing', async () => {
    await go(page, 'simulator');
    const sim = page.getByRole('form', { name: 'Policy simulator' });
    await sim.getByLabel('Person (username)').fill('alice');
    await sim.getByLabel('Action').selectOption('iot:Subscribe');
    await sim.getByLabel('Resource').fill('meters/#');
    await sim.getByRole('button', { name: 'Simulate' }).click();
    await sim.getByTestId('decision').filter({ hasText: 'ALLOW' }).waitFor();
    await sim.getByRole('table', { name: 'Matching statements' }).getByRole('cell', { name: /people-read/ }).waitFor();
    await snap(page, 'simulator-person');
  });

  step('thing page: the title is the name, "not connected" without replicas', async () => {
    await go(page, 'things/lamp-9');
    await page.getByRole('heading', { name: /lamp-9/ }).waitFor();
    await page.waitForFunction(() => document.title === 'lamp-9 — Gatehouse console');
    const live = page.getByRole('region', { name: 'Live connection' });
    await live.getByText('not connected').waitFor();
    assert.doesNotMatch(await live.textContent(), /replica/);
    await snap(page, 'thing');
  });

  step('provisioning templates: create with the JSON editor, versions, disable, a claim certificate', async () => {
    await go(page, 'provisioning-templates');
    const form = page.getByRole('form', { name: 'Create a provisioning template' });
    await form.getByLabel('Name').fill('sensors');
    await form.getByLabel('Description').fill('meters in the field');
    const body = form.getByLabel('Template body');
    await body.fill('{\n  "Resources": {\n    oops\n  }\n}');
    await form.locator('.gutter .bad').filter({ hasText: /^3$/ }).waitFor();
    await body.fill(JSON.stringify({ Parameters: { SerialNumber: { Type: 'String' } },
      Resources: { thing: { Type: 'AWS::IoT::Thing', Properties: { ThingName: { Ref: 'SerialNumber' } } } } }, null, 2));
    await form.getByRole('button', { name: 'Create template' }).click();
    await page.getByRole('heading', { name: 'sensors', exact: true }).waitFor();
    await page.getByRole('table', { name: 'Versions' }).getByRole('cell', { name: 'default', exact: true }).waitFor();
    const add = page.getByRole('form', { name: 'Add a version' });
    await add.getByLabel('Template body').fill(JSON.stringify({ Parameters: { SerialNumber: { Type: 'String' } },
      Resources: { thing: { Type: 'AWS::IoT::Thing', Properties: { ThingName: { 'Fn::Join': ['-', ['meter', { Ref: 'SerialNumber' }]] } } } } }, null, 2));
    await add.getByRole('button', { name: 'Add version' }).click();
    await page.getByRole('table', { name: 'Versions' }).getByRole('row').filter({ hasText: 'Fn::Join' }).getByRole('cell', { name: 'default', exact: true }).waitFor();
    await page.getByRole('button', { name: 'Mint claim certificate' }).click();
    await page.getByText('Private key (shown only once').waitFor();
    assert.match(await page.locator('output.secret').last().textContent(), /PRIVATE KEY/);
    await snap(page, 'provisioning-template');
    await page.getByRole('button', { name: 'Disable' }).click();
    await page.getByRole('button', { name: 'Enable' }).waitFor();
    await go(page, 'provisioning-templates');
    await page.getByRole('table', { name: 'Provisioning templates' }).getByRole('row').filter({ hasText: 'sensors' }).getByText('disabled').waitFor();
  });

  step('every page fits 1280x800 without sideways scrolling', async () => {
    const pages = ['', 'lobby', 'events', 'thing-types', 'thing-types/meter', 'policies', 'policies/people-read', 'simulator', 'things/lamp-9',
      'provisioning-templates', 'provisioning-templates/sensors'];
    for (const r of pages) {
      await H.checkPage(page, r);
      await snap(page, 'page-' + (r.replace(/[^a-z0-9]+/gi, '-') || 'overview'));
    }
  });

  step('no CSP violations and no script errors', () => H.checkClean());
});
