// Browser scenarios of the Gatehouse web console, run by e2e/console_test.go
// against a real `gatehouse serve` it prepared (see that file for the
// environment). Each step saves a screenshot into SCREENSHOT_DIR.
//
//   BASE_URL          http://127.0.0.1:port of the server
//   ADMIN_USER        console administrator (default admin)
//   ADMIN_PASSWORD    its password
//   POLICY            a policy the Go side created (iot:Connect only)
//   QR_PNG            PNG of a lobby device's QR code; QR_PAYLOAD its text
//   LOBBY_TARGET      the target to claim it for
//   CAMERA_Y4M        optional: a Y4M video of the same QR code, fed to the
//                     camera (getUserMedia) through Chromium's fake device
//   USER_CODE         user code of a pending device authorization
//   DEVICE_THING      the thing that asked for it
//   USER_NAME, USER_PASSWORD  a person with role "user" who approves it
//   OPERATOR_NAME, OPERATOR_PASSWORD  a person with role "operator"
//   SCREENSHOT_DIR    where screenshots go (default e2e/browser/artifacts)
//   CHROMIUM          the browser (default /usr/bin/chromium)
import { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { env, harness, TIMEOUT } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const BASE = env('BASE_URL').replace(/\/$/, '');
const SHOTS = process.env.SCREENSHOT_DIR || path.join(here, 'artifacts');
const H = harness(SHOTS);
const { snap, watch, step, login } = H;
let browser, admin, page;

before(async () => {
  const args = [];
  if (process.env.CAMERA_Y4M) {
    args.push('--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-video-capture=${process.env.CAMERA_Y4M}`);
  }
  await H.start(args);
  ({ browser, ctx: admin, page } = H);
});

after(() => H.stop());

describe('console', () => {
  step('a wrong password is refused, the right one signs in', async () => {
    await page.goto(BASE + '/console/');
    await page.getByLabel('Username').fill(env('ADMIN_USER', 'admin'));
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'Wrong username or password' }).waitFor();
    await snap(page, 'login-refused');
    await login(page, env('ADMIN_USER', 'admin'), env('ADMIN_PASSWORD'));
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await page.locator('svg.chart').first().waitFor();
    assert.equal(await page.locator('svg.chart').count(), 4, 'four charts on the overview');
    await snap(page, 'overview');
  });

  step('create a thing type and a thing', async () => {
    await page.getByRole('link', { name: 'Thing types' }).click();
    const form = page.getByRole('form', { name: 'Create a thing type' });
    await form.getByLabel('Name').fill('lamp');
    await form.getByLabel('Description').fill('Smart lamps');
    await form.getByLabel('Attributes').fill('site*, floor');
    await form.getByLabel('Default policies').fill(env('POLICY'));
    await form.getByRole('button', { name: 'Create thing type' }).click();
    await page.getByRole('table', { name: 'Thing types' }).getByRole('cell', { name: 'lamp', exact: true }).waitFor();
    await snap(page, 'thing-type-created');

    await page.getByRole('link', { name: 'Things', exact: true }).click();
    // The page has loaded once its list is there (CI once saw the name
    // typed before that lost by the time of the click).
    await page.getByRole('table', { name: 'Things' }).waitFor();
    const create = page.getByRole('form', { name: 'Create a thing' });
    await create.getByLabel('Name').fill('lamp-1');
    await create.getByLabel('Thing type').selectOption('lamp');
    // The type requires "site": the server's problem shows at the field.
    await create.getByRole('button', { name: 'Create thing' }).click();
    await create.locator('[data-error-for="attributes"]').filter({ hasText: 'site' }).waitFor();
    await snap(page, 'thing-invalid');
    await create.getByLabel('Attributes').fill('site=berlin\nfloor=2');
    await create.getByRole('button', { name: 'Create thing' }).click();
    await page.getByRole('table', { name: 'Things' }).getByRole('link', { name: 'lamp-1' }).click();
    await page.getByRole('heading', { name: /lamp-1/ }).waitFor();
    await page.getByRole('table', { name: 'Attributes' }).getByRole('cell', { name: 'berlin' }).waitFor();
    await page.getByRole('table', { name: 'Policies' }).getByRole('link', { name: env('POLICY') }).waitFor();
    await snap(page, 'thing-detail');
    // Edit the attributes: dropping the required one is refused at the field.
    await page.getByText('Edit attributes', { exact: true }).click();
    const edit = page.getByRole('form', { name: 'Edit attributes' });
    await edit.getByLabel('Attributes').fill('floor=3');
    await edit.getByRole('button', { name: 'Save attributes' }).click();
    await edit.locator('[data-error-for="attributes"]').filter({ hasText: 'site' }).waitFor();
    await edit.getByLabel('Attributes').fill('site=berlin\nfloor=3');
    await edit.getByRole('button', { name: 'Save attributes' }).click();
    await page.getByRole('table', { name: 'Attributes' }).getByRole('cell', { name: '3', exact: true }).waitFor();
  });

  step('edit a policy: inline validation error, then the simulator decision changes', async () => {
    await page.goto(BASE + '/console/#/policies/' + encodeURIComponent(env('POLICY')));
    const sim = page.getByRole('form', { name: 'Policy simulator' });
    await sim.getByLabel('Thing (principal)').fill('lamp-1');
    await sim.getByLabel('Action').selectOption('iot:Publish');
    await sim.getByLabel('Resource').fill('lamps/lamp-1/state');
    await sim.getByRole('button', { name: 'Simulate' }).click();
    await assertDecision(sim, 'DENY');
    await snap(page, 'simulator-deny');

    const editor = page.getByRole('form', { name: 'Edit the policy document' });
    const doc = editor.getByLabel('Document');
    const good = {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: 'iot:Connect', Resource: 'client/${iot:Connection.Thing.ThingName}' },
        { Effect: 'Allow', Action: 'iot:Publish', Resource: 'topic/lamps/${iot:Connection.Thing.ThingName}/*' },
      ],
    };
    const bad = structuredClone(good);
    bad.Statement[1].Effect = 'Perhaps';
    await doc.fill(JSON.stringify(bad, null, 2));
    await editor.getByRole('button', { name: 'Save as new default version' }).click();
    const inline = editor.locator('[data-error-for="document"]');
    await inline.filter({ hasText: /Statement\[1\]/ }).waitFor();
    assert.equal(await doc.getAttribute('aria-invalid'), 'true');
    await snap(page, 'policy-invalid');
    // The rejected edit changed nothing.
    await sim.getByRole('button', { name: 'Simulate' }).click();
    await assertDecision(sim, 'DENY');

    await doc.fill(JSON.stringify(good, null, 2));
    await editor.getByRole('button', { name: 'Save as new default version' }).click();
    await page.getByRole('table', { name: 'Versions' }).getByRole('cell', { name: '2', exact: true }).waitFor();
    assert.equal(await inline.textContent(), '');
    await assertDecision(sim, 'ALLOW');
    await sim.getByRole('table', { name: 'Matching statements' }).getByRole('cell', { name: new RegExp(env('POLICY') + ' #1') }).waitFor();
    await snap(page, 'simulator-allow');

    // A policy keeps five versions: saving more drops the oldest.
    for (let i = 3; i <= 6; i++) {
      good.Statement[0].Sid = 'edit' + i;
      await doc.fill(JSON.stringify(good, null, 2));
      await editor.getByRole('button', { name: 'Save as new default version' }).click();
      await page.getByRole('table', { name: 'Versions' }).getByRole('cell', { name: String(i), exact: true }).waitFor();
    }
    const versions = page.getByRole('table', { name: 'Versions' });
    assert.equal(await versions.locator('tbody tr').count(), 5);
    assert.equal(await versions.getByRole('cell', { name: '1', exact: true }).count(), 0, 'version 1 was dropped');
    await assertDecision(sim, 'ALLOW');
  });

  step('claim a lobby device from a photo of its QR code and watch it arrive', async () => {
    await page.getByRole('link', { name: 'Device lobby' }).click();
    const devices = page.getByRole('table', { name: 'Lobby devices' });
    await devices.getByRole('cell', { name: 'inlobby' }).waitFor();
    const claim = page.getByRole('form', { name: 'Claim a device' });
    await claim.getByLabel('Upload a photo of the QR code').setInputFiles(env('QR_PNG'));
    await claim.locator('[data-decoded]').waitFor();
    assert.equal(await claim.locator('[data-decoded]').getAttribute('data-decoded'), env('QR_PAYLOAD'));
    assert.equal(await claim.getByLabel('Device (QR code or fingerprint)').inputValue(), env('QR_PAYLOAD'));
    await claim.getByLabel('Target').selectOption(env('LOBBY_TARGET'));
    await snap(page, 'lobby-decoded');
    await claim.getByRole('button', { name: 'Claim device' }).click();
    // The Go side's device receives its assignment and connects to the
    // target as its thing: the ledger moves to arrived.
    await claim.locator('.progress[data-state="arrived"]').waitFor({ timeout: 60_000 });
    // The device's QR code, as the console shows it for labels.
    await claim.getByText('QR code', { exact: true }).click();
    const img = claim.getByRole('img', { name: /QR code of device/ });
    await img.waitFor();
    await page.waitForFunction((el) => el.complete && el.naturalWidth > 0, await img.elementHandle());
    await snap(page, 'lobby-arrived');
    // The device is now the thing meter-9, connected: its page shows the
    // live connection.
    await page.goto(BASE + '/console/#/things/meter-9');
    const live = page.getByRole('region', { name: 'Live connection' });
    await live.getByText('online').waitFor();
    await live.getByRole('table', { name: 'Connections' }).getByRole('cell', { name: 'meter-9', exact: true }).first().waitFor();
    await snap(page, 'thing-connected');
  });

  step('scan a QR code with the camera', { skip: !process.env.CAMERA_Y4M && 'CAMERA_Y4M not set' }, async () => {
    await page.goto(BASE + '/console/#/lobby');
    const claim = page.getByRole('form', { name: 'Claim a device' });
    await claim.getByRole('button', { name: 'Scan with camera' }).click();
    await claim.locator('[data-decoded]').waitFor({ timeout: 30_000 });
    assert.equal(await claim.getByLabel('Device (QR code or fingerprint)').inputValue(), env('QR_PAYLOAD'));
    await snap(page, 'lobby-camera');
  });

  step('registration token: the secret is shown once, then revoked', async () => {
    await page.goto(BASE + '/console/#/registration-tokens');
    const form = page.getByRole('form', { name: 'Create a registration token' });
    await form.getByLabel('Thing type').selectOption('lamp');
    await form.getByLabel('Description').fill('line 3');
    await form.getByRole('button', { name: 'Create token' }).click();
    const secret = page.locator('output.secret');
    await secret.waitFor();
    assert.ok((await secret.textContent()).length >= 20, 'a secret is shown');
    await snap(page, 'token-created');
    const row = page.getByRole('table', { name: 'Registration tokens' }).getByRole('row').filter({ hasText: 'line 3' });
    await row.getByRole('button', { name: 'Revoke' }).click();
    await row.getByRole('button', { name: 'Yes, revoke' }).click();
    await row.getByText('revoked').waitFor();
    await page.reload();
    await page.getByRole('table', { name: 'Registration tokens' }).getByRole('row').filter({ hasText: 'line 3' }).getByText('revoked').waitFor();
    assert.equal(await page.locator('output.secret').count(), 0, 'the secret is not shown again');
  });

  step('approve a device-flow code at /device', async () => {
    const p = await admin.newPage();
    watch(p);
    await p.goto(BASE + '/device');
    await p.getByLabel('Code').fill(env('USER_CODE'));
    await p.getByLabel('Username').fill(env('USER_NAME'));
    await p.getByLabel('Password').fill(env('USER_PASSWORD'));
    await snap(p, 'device-login');
    await p.getByRole('button', { name: 'Continue' }).click();
    await p.getByText(env('DEVICE_THING')).first().waitFor();
    // The scope reads in plain language, from the thing type.
    await p.getByText('Show what is playing').waitFor();
    await snap(p, 'device-consent');
    await p.getByRole('button', { name: 'Approve' }).click();
    await p.getByText('Approved.').waitFor();
    await snap(p, 'device-approved');
    await p.close();
  });

  step('a user sees only their things', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    ctx.setDefaultTimeout(TIMEOUT);
    const p = await ctx.newPage();
    watch(p);
    await login(p, env('USER_NAME'), env('USER_PASSWORD'));
    await p.getByRole('heading', { name: 'Things' }).waitFor();
    const things = p.getByRole('table', { name: 'Things' });
    await things.getByRole('link', { name: env('DEVICE_THING') }).waitFor();
    assert.equal(await things.getByRole('link', { name: 'lamp-1' }).count(), 0, 'lamp-1 is not theirs');
    assert.equal(await p.getByRole('link', { name: 'Policies' }).count(), 0, 'no policy pages for users');
    await snap(p, 'user-things');
    await p.getByLabel('Search').fill('lamp');
    await p.getByRole('button', { name: 'Filter' }).click();
    await things.getByText('No things match.').waitFor();
    await p.getByLabel('Search').fill('');
    await p.getByRole('button', { name: 'Filter' }).click();
    await things.getByRole('link', { name: env('DEVICE_THING') }).click();
    await p.getByRole('table', { name: 'Relationships' }).getByRole('cell', { name: 'user/' + env('USER_NAME') }).waitFor();
    await snap(p, 'user-thing');
    await p.goto(BASE + '/console/#/things/lamp-1');
    await p.getByText('No such thing').waitFor();
    await p.getByRole('button', { name: 'Sign out' }).click();
    await p.getByRole('heading', { name: 'Sign in' }).waitFor();
    await p.reload();
    await p.getByRole('heading', { name: 'Sign in' }).waitFor();
    await ctx.close();
  });

  step('an operator reads everything and may claim, but not administer', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    ctx.setDefaultTimeout(TIMEOUT);
    const p = await ctx.newPage();
    watch(p);
    await login(p, env('OPERATOR_NAME'), env('OPERATOR_PASSWORD'));
    await p.getByRole('heading', { name: 'Overview' }).waitFor();
    assert.equal(await p.getByRole('link', { name: 'Registration tokens' }).count(), 0, 'no registration tokens for operators');
    await p.getByRole('link', { name: 'Policies', exact: true }).click();
    await p.getByRole('table', { name: 'Policies' }).getByRole('link', { name: env('POLICY') }).waitFor();
    assert.equal(await p.getByRole('form', { name: 'Create a policy' }).count(), 0, 'operators do not create policies');
    await p.getByRole('link', { name: 'Device lobby' }).click();
    await p.getByRole('form', { name: 'Claim a device' }).waitFor();
    assert.equal(await p.getByRole('form', { name: 'Create a target' }).count(), 0, 'operators do not create targets');
    await snap(p, 'operator-lobby');
    await ctx.close();
  });

  step('live events arrive over the stream', async () => {
    await page.goto(BASE + '/console/#/events');
    await page.getByLabel('Type', { exact: true }).fill('thing.');
    await page.getByRole('button', { name: 'Apply' }).click();
    // The filtered page (lamp-1's creation among its rows) replaced the
    // unfiltered one, and its stream is live: count lamp-1's rows then.
    const lampRows = () => [...document.querySelectorAll('table.events tbody tr[data-id]')].filter((r) => r.textContent.includes('thing/lamp-1')).length;
    await page.waitForFunction(() => {
      const rs = [...document.querySelectorAll('table.events tbody tr[data-id]')];
      return rs.length > 0 && rs.every((r) => r.dataset.type.startsWith('thing.'));
    });
    await page.locator('.stream-status').filter({ hasText: 'live' }).waitFor();
    const before = await page.evaluate(lampRows);
    // Disable lamp-1 in another tab; the event shows up here.
    const other = await admin.newPage();
    await other.goto(BASE + '/console/#/things/lamp-1');
    await other.getByRole('button', { name: 'Disable' }).click();
    await other.getByRole('heading', { name: /lamp-1/ }).getByText('disabled').waitFor();
    await other.close();
    await page.waitForFunction((n) => [...document.querySelectorAll('table.events tbody tr[data-id]')].filter((r) => r.textContent.includes('thing/lamp-1')).length > n, before);
    await snap(page, 'events-live');
  });

  step('delete a thing', async () => {
    await page.goto(BASE + '/console/#/things');
    const create = page.getByRole('form', { name: 'Create a thing' });
    await create.getByLabel('Name').fill('lamp-2');
    await create.getByLabel('Thing type').selectOption('lamp');
    await create.getByLabel('Attributes').fill('site=paris');
    await create.getByRole('button', { name: 'Create thing' }).click();
    await page.getByRole('table', { name: 'Things' }).getByRole('link', { name: 'lamp-2' }).click();
    await page.getByRole('heading', { name: /lamp-2/ }).waitFor();
    await page.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('button', { name: 'Yes, delete' }).click();
    await page.getByRole('heading', { name: 'Things' }).waitFor();
    await page.getByRole('table', { name: 'Things' }).getByRole('link', { name: 'lamp-1' }).waitFor();
    assert.equal(await page.getByRole('table', { name: 'Things' }).getByRole('link', { name: 'lamp-2' }).count(), 0);
  });

  step('the overview charts draw the sampled metrics', async () => {
    await page.goto(BASE + '/console/#/');
    // The server samples every 10 s and the page reloads as often; meter-9
    // stays connected.
    await page.locator('ul.legend li').filter({ hasText: /^connections: [1-9]/ }).waitFor({ timeout: 40_000 });
    assert.ok(await page.locator('svg.chart .line, svg.chart .dot').count() >= 4, 'each chart draws its samples');
    await snap(page, 'overview-samples');
  });

  step('every page fits 1280x800 without sideways scrolling', async () => {
    const pages = ['', 'things', 'things/lamp-1', 'things/meter-9', 'thing-types', 'lobby', 'policies',
      'policies/' + encodeURIComponent(env('POLICY')), 'simulator', 'users', 'registration-tokens', 'pki', 'events'];
    for (const r of pages) await H.checkPage(page, r);
    await page.goto(BASE + '/console/#/pki');
    await page.locator('main .loading').waitFor({ state: 'detached' });
    await snap(page, 'pki');
  });

  step('no CSP violations and no script errors', () => H.checkClean());
});

async function assertDecision(sim, want) {
  const d = sim.getByTestId('decision');
  await d.filter({ hasText: want }).waitFor();
  assert.equal((await d.textContent()).trim(), want);
}
