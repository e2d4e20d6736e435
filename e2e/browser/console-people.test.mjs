// Browser scenarios of the console's people, access and admin pages and of
// its MQTT test client, run by e2e/console_people_test.go against a real
// `gatehouse serve` it prepared. Each step saves a screenshot into
// SCREENSHOT_DIR as people-NN-<step>.png.
//
//   BASE_URL                  http://127.0.0.1:port of the server
//   ADMIN_USER, ADMIN_PASSWORD            the administrator
//   OWNER_NAME, OWNER_PASSWORD            a person (role user) who owns lamp-1
//   REQUESTER_NAME, REQUESTER_PASSWORD    a person (role user) with no things
//   CERT_ID                   a certificate of thing cam-1
//   AUTH_KEY_PEM              a public key for a custom authorizer
//   SCREENSHOT_DIR            where screenshots go (default e2e/browser/artifacts)
//   CHROMIUM                  the browser (default /usr/bin/chromium)
//
// lamp-1 is a real MQTT client on the Go side: it echoes every command on
// things/lamp-1/commands/X as telemetry on things/lamp-1/telemetry/X.
import { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { env, watch as watchPage, stepper, signIn } from './helpers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const BASE = env('BASE_URL').replace(/\/$/, '');
const SHOTS = process.env.SCREENSHOT_DIR || path.join(here, 'artifacts');
const TIMEOUT = 15_000;
const OWNER = env('OWNER_NAME');
const REQUESTER = env('REQUESTER_NAME');

let browser;
const ctxs = {};
const pages = {};
const cspViolations = [];
const pageErrors = [];
let shot = 0;

async function snap(p, name) {
  shot++;
  await p.screenshot({ path: path.join(SHOTS, `people-${String(shot).padStart(2, '0')}-${name}.png`), fullPage: true });
}

const watch = (p) => watchPage(p, cspViolations, pageErrors);
const step = stepper(() => browser, SHOTS, 'people-');

// person opens a browser context of its own (its own cookies) and signs in.
async function person(key, user, pass) {
  if (!ctxs[key]) {
    ctxs[key] = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    ctxs[key].setDefaultTimeout(TIMEOUT);
    pages[key] = await ctxs[key].newPage();
    watch(pages[key]);
  }
  await signIn(pages[key], BASE, user, pass);
  return pages[key];
}

async function open(p, hash) {
  await p.goto(BASE + '/console/#/' + hash);
  await p.locator('main h1').first().waitFor();
  await p.locator('main .loading').waitFor({ state: 'detached' });
}

// activity waits for a line in the MQTT test client's activity log.
async function activity(p, kind, text) {
  const row = p.getByRole('table', { name: 'Activity' }).getByRole('row').filter({ hasText: text }).first();
  await row.waitFor();
  assert.equal((await row.locator('.badge').textContent()).trim(), kind, `activity "${text}"`);
  return (await row.textContent()).trim();
}

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  for (const f of fs.readdirSync(SHOTS)) if (/^people-.*\.png$/.test(f)) fs.rmSync(path.join(SHOTS, f));
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium' });
});

after(async () => {
  if (browser) await browser.close();
});

describe('console: people, access, admin objects, MQTT test client', () => {
  step('a user page: email, password reset, sessions signed out, API tokens, disable', async () => {
    const carol = await person('requester', REQUESTER, env('REQUESTER_PASSWORD'));
    const admin = await person('admin', env('ADMIN_USER', 'admin'), env('ADMIN_PASSWORD'));
    await open(admin, 'users');
    await admin.getByRole('table', { name: 'Users' }).getByRole('link', { name: REQUESTER }).click();
    await admin.getByRole('heading', { name: new RegExp('^' + REQUESTER) }).waitFor();
    await admin.locator('main .loading').waitFor({ state: 'detached' });

    const edit = admin.getByRole('form', { name: 'Edit user' });
    await edit.getByLabel('Email').fill(REQUESTER + '@example.com');
    await edit.getByRole('button', { name: 'Save' }).click();
    await admin.locator('dl.facts dd').filter({ hasText: REQUESTER + '@example.com' }).waitFor();

    // Her console session is listed; signing it out signs her browser out.
    const sessions = admin.getByRole('table', { name: 'Console sessions' });
    assert.equal(await sessions.getByRole('row').count(), 2, 'one session row under the header');
    await snap(admin, 'user-page');
    await sessions.getByRole('button', { name: 'Sign out' }).click();
    await sessions.getByRole('button', { name: 'Yes, sign out' }).click();
    await sessions.getByRole('cell', { name: 'No console sessions.' }).waitFor();
    await carol.reload();
    await carol.getByRole('heading', { name: 'Sign in' }).waitFor();

    // Password reset: the old one stops working, the new one signs in.
    const reset = admin.getByRole('form', { name: 'Reset password' });
    await reset.getByLabel('New password').fill('carol has a new password');
    await reset.getByRole('button', { name: 'Reset password' }).click();
    await admin.getByRole('status').filter({ hasText: 'Password reset' }).waitFor();
    await carol.getByLabel('Username').fill(REQUESTER);
    await carol.getByLabel('Password').fill(env('REQUESTER_PASSWORD'));
    await carol.getByRole('button', { name: 'Sign in' }).click();
    await carol.getByRole('alert').filter({ hasText: 'Wrong username or password' }).waitFor();

    // An API token acting as her, shown once, then revoked.
    const tokForm = admin.getByRole('form', { name: 'Create an API token for this user' });
    await tokForm.getByLabel('Token name').fill('carol-cli');
    await tokForm.getByRole('button', { name: 'Create token' }).click();
    const secret = (await admin.locator('output.secret').textContent()).trim();
    assert.match(secret, /^ghat_/, 'the new token is shown once');
    const toks = admin.getByRole('table', { name: 'API tokens of ' + REQUESTER });
    await toks.getByRole('cell', { name: 'carol-cli' }).waitFor();
    await snap(admin, 'user-api-token');
    await toks.getByRole('button', { name: 'Revoke' }).click();
    await toks.getByRole('button', { name: 'Yes, revoke' }).click();
    await toks.getByRole('cell', { name: 'No API tokens act as this user.' }).waitFor();
    const r = await fetch(BASE + '/api/v1/things', { headers: { Authorization: 'Bearer ' + secret } });
    assert.equal(r.status, 401, 'the revoked token is refused');

    // Disable, then enable again.
    await admin.getByRole('button', { name: 'Disable' }).click();
    await admin.getByRole('heading', { name: new RegExp('^' + REQUESTER) }).getByText('disabled').waitFor();
    await admin.getByRole('button', { name: 'Enable' }).click();
    await admin.getByRole('heading', { name: new RegExp('^' + REQUESTER) }).getByText('active').waitFor();
    process.env.REQUESTER_PASSWORD = 'carol has a new password';
    await person('requester', REQUESTER, env('REQUESTER_PASSWORD'));
  });

  step('groups with members', async () => {
    const admin = pages.admin;
    await open(admin, 'groups');
    const form = admin.getByRole('form', { name: 'Create a group' });
    await form.getByLabel('Name').fill('night-shift');
    await form.getByLabel('Description').fill('who watches the lamps at night');
    await form.getByRole('button', { name: 'Create group' }).click();
    await admin.getByRole('table', { name: 'Groups' }).getByRole('link', { name: 'night-shift' }).click();
    await admin.getByRole('heading', { name: 'Group night-shift' }).waitFor();
    const add = admin.getByRole('form', { name: 'Add a member' });
    const members = admin.getByRole('table', { name: 'Members' });
    await add.getByLabel('Member').fill(REQUESTER);
    await add.getByRole('button', { name: 'Add member' }).click();
    // The form is reset once the member is added: the next one after that.
    await members.getByRole('link', { name: REQUESTER }).waitFor();
    await add.getByLabel('Kind').selectOption('thing');
    await add.getByLabel('Member').fill('lamp-9');
    await add.getByRole('button', { name: 'Add member' }).click();
    await members.getByRole('link', { name: 'lamp-9' }).waitFor();
    await snap(admin, 'group-members');
    await members.getByRole('row').filter({ hasText: 'lamp-9' }).getByRole('button', { name: 'Remove' }).click();
    await members.getByRole('button', { name: 'Yes, remove' }).click();
    await members.getByRole('link', { name: 'lamp-9' }).waitFor({ state: 'detached' });
  });

  step('a gateway -> child relationship', async () => {
    const admin = pages.admin;
    await open(admin, 'relationships');
    const form = admin.getByRole('form', { name: 'Add a relationship of any kind' });
    await form.getByLabel('Subject kind').selectOption('thing');
    await form.getByLabel('Subject', { exact: true }).fill('gw-1');
    assert.deepEqual(await form.getByLabel('Relation').locator('option').allTextContents(), ['gateway']);
    await form.getByLabel('Thing').fill('sensor-7');
    await form.getByRole('button', { name: 'Add relationship' }).click();
    const table = admin.getByRole('table', { name: 'All relationships' });
    await table.getByRole('row').filter({ hasText: 'gateway' }).filter({ hasText: 'sensor-7' }).waitFor();
    await admin.getByRole('search', { name: 'Filter relationships' }).getByLabel('Relation').selectOption('gateway');
    await admin.getByRole('button', { name: 'Filter' }).click();
    await table.getByRole('link', { name: 'owen' }).waitFor({ state: 'detached' });
    await snap(admin, 'relationships-gateway');
  });

  step('a person with role user asks for access; the owner approves one with an expiry and denies another', async () => {
    const carol = pages.requester;
    await carol.getByRole('link', { name: 'Access requests' }).click();
    await carol.getByRole('heading', { name: 'Access requests' }).waitFor();
    const ask = async (relation, reason) => {
      const form = carol.getByRole('form', { name: 'Request access' });
      await form.getByLabel('Thing').fill('lamp-1');
      await form.getByLabel('Relation').selectOption(relation);
      await form.getByLabel('Reason').fill(reason);
      await form.getByRole('button', { name: 'Request access' }).click();
      await carol.getByRole('table', { name: 'Access requests' }).getByRole('cell', { name: reason }).waitFor();
    };
    await ask('viewer', 'night watch');
    await ask('operator', 'switch it off');
    await snap(carol, 'access-requested');

    const owen = await person('owner', OWNER, env('OWNER_PASSWORD'));
    await owen.getByRole('link', { name: 'Access requests' }).click();
    const reqs = owen.getByRole('table', { name: 'Access requests' });
    const viewer = reqs.getByRole('row').filter({ hasText: 'night watch' });
    await viewer.getByLabel(/^Access for/).selectOption('168h');
    await viewer.getByLabel(/^Note/).fill('for the week');
    await snap(owen, 'access-decide');
    await viewer.getByRole('button', { name: 'Approve' }).click();
    await viewer.waitFor({ state: 'detached' }); // pending list
    await reqs.getByRole('row').filter({ hasText: 'switch it off' }).getByRole('button', { name: 'Deny' }).click();
    await reqs.getByRole('cell', { name: 'No access requests.' }).waitFor();

    await carol.getByRole('search', { name: 'Filter access requests' }).getByLabel('State').selectOption('');
    await carol.getByRole('button', { name: 'Filter' }).click();
    const mine = carol.getByRole('table', { name: 'Access requests' });
    const approved = mine.getByRole('row').filter({ hasText: 'night watch' });
    await approved.getByText('approved').waitFor();
    assert.match(await approved.textContent(), /until \d{4}-\d\d-\d\d/, 'the grant shows its expiry');
    await mine.getByRole('row').filter({ hasText: 'switch it off' }).getByText('denied').waitFor();
    await snap(carol, 'access-decided');
  });

  step('a person signs out a session of theirs left open elsewhere', async () => {
    const carol = pages.requester;
    // Another browser of hers: a sign-in from here.
    const r = await fetch(BASE + '/console/api/login', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: REQUESTER, password: env('REQUESTER_PASSWORD') }) });
    assert.equal(r.status, 200);
    const cookie = r.headers.get('set-cookie').split(';')[0];
    const session = () => fetch(BASE + '/console/api/session', { headers: { Cookie: cookie } }).then((x) => x.status);
    assert.equal(await session(), 200);
    await carol.getByRole('link', { name: 'My account' }).click();
    await carol.getByRole('heading', { name: 'My account' }).waitFor();
    const sessions = carol.getByRole('table', { name: 'Console sessions' });
    await sessions.getByRole('row').nth(2).waitFor();
    assert.equal(await sessions.getByRole('row').count(), 3, 'two sessions under the header');
    await snap(carol, 'my-account');
    // Newest first: the other browser's.
    await sessions.getByRole('row').nth(1).getByRole('button', { name: 'Sign out' }).click();
    await sessions.getByRole('button', { name: 'Yes, sign out' }).click();
    await sessions.getByRole('row').nth(2).waitFor({ state: 'detached' });
    assert.equal(await session(), 401, 'the other browser is signed out');
    await carol.reload();
    await carol.getByRole('heading', { name: 'My account' }).waitFor();
  });

  step('custom authorizers: keys and the default', async () => {
    const admin = pages.admin;
    await open(admin, 'authorizers');
    const form = admin.getByRole('form', { name: 'Create an authorizer' });
    await form.getByLabel('Name', { exact: true }).fill('devices');
    await form.getByLabel('Token key name', { exact: true }).fill('x-token');
    await form.getByLabel('Key name', { exact: true }).fill('key-1');
    await form.getByLabel('Public key (PEM)').fill(env('AUTH_KEY_PEM'));
    await form.getByRole('button', { name: 'Create authorizer' }).click();
    const table = admin.getByRole('table', { name: 'Authorizers' });
    const row = table.getByRole('row').filter({ hasText: 'devices' });
    await row.getByRole('button', { name: 'Make default' }).click();
    await row.getByText('default', { exact: true }).waitFor();
    const keyForm = admin.getByRole('form', { name: 'Add a signing key' });
    await keyForm.getByLabel('Key name').fill('key-2');
    await keyForm.getByLabel('Public key (PEM)').fill(env('AUTH_KEY_PEM'));
    await keyForm.getByRole('button', { name: 'Add key' }).click();
    await row.getByRole('button', { name: /key-2/ }).waitFor();
    // A key that is not PEM is refused with the reason.
    await keyForm.getByLabel('Key name').fill('key-3');
    await keyForm.getByLabel('Public key (PEM)').fill('not a key');
    await keyForm.getByRole('button', { name: 'Add key' }).click();
    await keyForm.locator('.form-error, .field-error').filter({ hasText: /\S/ }).first().waitFor();
    await snap(admin, 'authorizers');
  });

  step('OAuth apps, API tokens and AWS keys show their secrets once', async () => {
    const admin = pages.admin;
    await open(admin, 'apps');
    const app = admin.getByRole('form', { name: 'Register an app' });
    await app.getByLabel('Name').fill('dashboard');
    await app.getByLabel('Redirect URIs').fill('https://dashboard.example/callback');
    await app.getByRole('button', { name: 'Register app' }).click();
    await admin.locator('output.secret').waitFor();
    await admin.getByRole('table', { name: 'Apps' }).getByRole('cell', { name: 'app.dashboard' }).waitFor();
    await snap(admin, 'apps');

    await open(admin, 'api-tokens');
    const tok = admin.getByRole('form', { name: 'Create an API token' });
    await tok.getByLabel('Name').fill('ci-deploy');
    await tok.getByLabel('Role').selectOption('operator');
    await tok.getByRole('button', { name: 'Create API token' }).click();
    assert.match((await admin.locator('output.secret').textContent()).trim(), /^ghat_/);
    const key = admin.getByRole('form', { name: 'Create an AWS access key' });
    await key.getByLabel('Name').fill('aws-cli');
    await key.getByRole('button', { name: 'Create access key' }).click();
    await admin.locator('.once').filter({ hasText: 'Secret access key' }).waitFor();
    const keys = admin.getByRole('table', { name: 'AWS access keys' });
    await keys.getByRole('cell', { name: 'aws-cli' }).waitFor();
    await snap(admin, 'api-tokens-aws-keys');
    const tokens = admin.getByRole('table', { name: 'API tokens' });
    await tokens.getByRole('row').filter({ hasText: 'ci-deploy' }).getByRole('button', { name: 'Revoke' }).click();
    await tokens.getByRole('button', { name: 'Yes, revoke' }).click();
    await tokens.getByRole('cell', { name: 'ci-deploy', exact: true }).waitFor({ state: 'detached' });
  });

  step('manufacturer CAs with subject and expiry; a certificate: chain, revoke with a reason, status history', async () => {
    const admin = pages.admin;
    await open(admin, 'pki');
    const cas = admin.getByRole('table', { name: 'Manufacturer CAs' });
    const acme = cas.getByRole('row').filter({ hasText: 'acme' });
    assert.match(await acme.textContent(), /CN=/, 'the CA subject is shown');
    assert.match(await acme.textContent(), /\d{4}-\d\d-\d\dT?\s?\d\d:\d\d/, 'the CA expiry is shown');
    await admin.getByRole('table', { name: 'Certificates' }).getByRole('link', { name: env('CERT_ID').slice(0, 16) + '…' }).click();
    await admin.getByRole('heading', { name: /^Certificate(?!s)/, level: 1 }).waitFor();
    await admin.locator('main .loading').waitFor({ state: 'detached' });
    const chain = admin.getByRole('list', { name: 'Certificate chain' });
    await chain.getByRole('listitem').nth(1).waitFor();
    assert.ok(await chain.getByRole('listitem').count() >= 2, 'the chain reaches Gatehouse\'s CA');
    const revoke = admin.getByRole('form', { name: 'Revoke the certificate' });
    await revoke.getByLabel('Reason').selectOption({ label: 'key compromise' });
    await revoke.getByRole('button', { name: 'Revoke' }).click();
    await admin.getByRole('heading', { name: /^Certificate/ }).getByText('REVOKED').waitFor();
    const history = admin.getByRole('table', { name: 'Status history' });
    await history.getByRole('cell', { name: 'revoked' }).waitFor();
    await history.getByRole('cell', { name: 'issued' }).waitFor();
    await admin.locator('dd').filter({ hasText: 'key compromise' }).waitFor();
    await snap(admin, 'certificate');
  });

  step('MQTT test client: a viewer subscribes; a denied subscription and a denied publish show their reason', async () => {
    const carol = pages.requester;
    await carol.getByRole('link', { name: 'MQTT test client' }).click();
    await carol.getByRole('heading', { name: 'MQTT test client' }).waitFor();
    await carol.getByRole('button', { name: 'Connect', exact: true }).click();
    await carol.getByTestId('mqtt-status').filter({ hasText: /^connected$/ }).waitFor();
    await activity(carol, 'ok', 'Connected as ' + REQUESTER);
    const sub = carol.getByRole('form', { name: 'Subscribe' });
    await sub.getByLabel('Topic filter').fill('things/lamp-1/telemetry/#');
    await sub.getByRole('button', { name: 'Subscribe' }).click();
    await activity(carol, 'ok', 'Subscribed to things/lamp-1/telemetry/#');
    await sub.getByLabel('Topic filter').fill('things/lamp-9/telemetry/#');
    await sub.getByRole('button', { name: 'Subscribe' }).click();
    assert.match(await activity(carol, 'denied', 'things/lamp-9/telemetry/#'), /Not authorized \(0x87\)/);
    const pub = carol.getByRole('form', { name: 'Publish' });
    await pub.getByLabel('Topic').fill('things/lamp-1/commands/from-carol');
    await pub.getByLabel('Payload').fill('off');
    await pub.getByRole('button', { name: 'Publish' }).click();
    assert.match(await activity(carol, 'denied', 'Publish to things/lamp-1/commands/from-carol'), /Not authorized \(0x87\)/);
    await snap(carol, 'mqtt-denied');
  });

  step('MQTT test client: the owner commands lamp-1 and sees its telemetry, under their own identity', async () => {
    const owen = pages.owner;
    await owen.getByRole('link', { name: 'MQTT test client' }).click();
    await owen.getByRole('button', { name: 'Connect', exact: true }).click();
    await owen.getByTestId('mqtt-status').filter({ hasText: /^connected$/ }).waitFor();
    assert.match(await owen.locator('main p.muted').nth(1).textContent(), new RegExp('As ' + OWNER + ' with client id ' + OWNER + '~console-'));
    const sub = owen.getByRole('form', { name: 'Subscribe' });
    await sub.getByLabel('Topic filter').fill('things/lamp-1/telemetry/#');
    await sub.getByLabel('QoS').selectOption('1');
    await sub.getByRole('button', { name: 'Subscribe' }).click();
    await activity(owen, 'ok', 'Subscribed to things/lamp-1/telemetry/#');
    const pub = owen.getByRole('form', { name: 'Publish' });
    await pub.getByLabel('Topic').fill('things/lamp-1/commands/on');
    await pub.getByLabel('Payload').fill('{"on":true}');
    await pub.getByRole('button', { name: 'Publish' }).click();
    await activity(owen, 'ok', 'Published to things/lamp-1/commands/on');
    const msgs = owen.getByRole('table', { name: 'Messages' });
    const echo = msgs.getByRole('row').filter({ hasText: 'things/lamp-1/telemetry/on' });
    await echo.waitFor();
    assert.match(await echo.textContent(), /\{"on":true\}/);
    // Another's thing: refused.
    await pub.getByLabel('Topic').fill('things/lamp-9/commands/on');
    await pub.getByRole('button', { name: 'Publish' }).click();
    assert.match(await activity(owen, 'denied', 'Publish to things/lamp-9/commands/on'), /Not authorized \(0x87\)/);
    await snap(owen, 'mqtt-owner');
    await owen.getByRole('button', { name: 'Disconnect' }).click();
    await owen.getByTestId('mqtt-status').filter({ hasText: /^disconnected$/ }).waitFor();
  });

  step('the mqtt-token endpoint needs the session\'s CSRF token', async () => {
    const owen = pages.owner;
    const status = await owen.evaluate(async () => (await fetch('/console/api/mqtt-token', { method: 'POST' })).status);
    assert.equal(status, 403);
  });

  step('every new page fits 1280x800 without sideways scrolling, with labelled controls', async () => {
    const admin = pages.admin;
    const list = ['users/' + REQUESTER, 'groups', 'groups/night-shift', 'relationships', 'access-requests', 'authorizers',
      'apps', 'api-tokens', 'pki', 'certificates/' + env('CERT_ID'), 'mqtt'];
    for (const r of list) {
      await open(admin, r);
      const width = await admin.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 1280, `#/${r} is ${width}px wide`);
      const unlabelled = await admin.evaluate(() => [...document.querySelectorAll('main input, main select, main textarea')]
        .filter((el) => el.type !== 'hidden' && !el.labels?.length && !el.getAttribute('aria-label'))
        .map((el) => el.name || el.outerHTML.slice(0, 60)));
      assert.deepEqual(unlabelled, [], `#/${r} has unlabelled controls`);
    }
    for (const [who, r] of [['requester', 'access-requests'], ['requester', 'mqtt'], ['requester', 'account']]) {
      await open(pages[who], r);
      const width = await pages[who].evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 1280, `#/${r} for a user is ${width}px wide`);
    }
    // A person with role user has no admin pages.
    await open(pages.requester, 'authorizers');
    await pages.requester.getByRole('heading', { name: 'Not found' }).waitFor();
    assert.equal(await pages.requester.getByRole('link', { name: 'Custom authorizers' }).count(), 0);
    await open(admin, 'mqtt');
    await snap(admin, 'mqtt-page');
  });

  step('no CSP violations and no script errors', () => {
    assert.deepEqual(cspViolations, []);
    assert.deepEqual(pageErrors, []);
  });
});
