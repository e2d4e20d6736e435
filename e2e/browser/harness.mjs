// The console's browser scenarios on one Chromium: launch, screenshots,
// steps that screenshot every open page when they fail (helpers.mjs's
// stepper), sign-in, and the checks every page gets (fits 1280 pixels,
// labelled controls, no CSP violation or script error). Built on
// helpers.mjs, which console-people.test.mjs uses directly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { env, watch, stepper, signIn } from './helpers.mjs';

export { env };

export const TIMEOUT = 15_000;

// harness returns the helpers bound to one browser with one 1280x800
// context; call start() in before() and stop() in after().
export function harness(shots) {
  const h = { browser: null, ctx: null, page: null, cspViolations: [], pageErrors: [], shot: 0 };
  const base = () => env('BASE_URL').replace(/\/$/, '');
  h.start = async (args = []) => {
    fs.mkdirSync(shots, { recursive: true });
    for (const f of fs.readdirSync(shots)) if (/^(\d\d|FAILED)-.*\.png$/.test(f)) fs.rmSync(path.join(shots, f));
    h.browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args });
    h.ctx = await h.browser.newContext({ viewport: { width: 1280, height: 800 } });
    h.ctx.setDefaultTimeout(TIMEOUT);
    h.page = await h.ctx.newPage();
    h.watch(h.page);
  };
  h.stop = async () => { if (h.browser) await h.browser.close(); };
  h.watch = (p) => watch(p, h.cspViolations, h.pageErrors);
  // snap saves a screenshot of the viewport (what fits 1280x800) and of
  // the whole page.
  h.snap = async (p, name) => {
    h.shot++;
    const file = path.join(shots, `${String(h.shot).padStart(2, '0')}-${name}`);
    await p.screenshot({ path: file + '.png' });
    await p.screenshot({ path: file + '-full.png', fullPage: true });
  };
  // step is a test that, when it fails, screenshots every open page and
  // leaves only the main page for the next steps; opts.skip skips it.
  const failing = stepper(() => h.browser, shots, '', async () => {
    for (const c of h.browser ? h.browser.contexts() : []) {
      if (c !== h.ctx) await c.close().catch(() => {});
      else for (const p of c.pages()) if (p !== h.page) await p.close().catch(() => {});
    }
  });
  h.step = (name, ...rest) => {
    const fn = rest.pop();
    const opts = rest[0] || {};
    return opts.skip ? test(name, opts, () => {}) : failing(name, fn);
  };
  h.login = (p, user, pass) => signIn(p, base(), user, pass);
  // checkPage opens #/route and checks that it fits 1280 pixels without
  // sideways scrolling and that every form control has a label.
  h.checkPage = async (p, route) => {
    await p.goto(base() + '/console/#/' + route);
    await p.locator('main h1').first().waitFor();
    await p.locator('main .loading').waitFor({ state: 'detached' });
    assert.equal(await p.getByRole('heading', { name: 'Something went wrong' }).count(), 0, `#/${route} failed to render`);
    const width = await p.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 1280, `#/${route} is ${width}px wide`);
    const unlabelled = await p.evaluate(() => [...document.querySelectorAll('main input, main select, main textarea')]
      .filter((el) => el.type !== 'hidden' && !el.labels?.length && !el.getAttribute('aria-label'))
      .map((el) => el.name || el.outerHTML.slice(0, 60)));
    assert.deepEqual(unlabelled, [], `#/${route} has unlabelled controls`);
  };
  // checkClean asserts that no page broke the CSP or threw.
  h.checkClean = () => {
    assert.deepEqual(h.cspViolations, []);
    assert.deepEqual(h.pageErrors, []);
  };
  return h;
}
