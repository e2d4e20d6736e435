// What the console's browser scenarios share: environment, CSP and script
// error watching, and steps that screenshot every open page when they fail.
import { test } from 'node:test';
import path from 'node:path';

// env reads a variable, with a default; without either it throws.
export const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) throw new Error(`environment variable ${k} is required`);
  return v;
};

// watch collects p's Content-Security-Policy violations and script errors.
export function watch(p, cspViolations, pageErrors) {
  p.on('pageerror', (e) => pageErrors.push(e.message));
  p.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
}

// stepper returns step(name, fn): a test that, when it fails, saves a
// screenshot of every page of browser() into dir as <prefix>FAILED-*.png,
// then calls cleanup (if any).
export function stepper(browser, dir, prefix = '', cleanup = async () => {}) {
  return (name, fn) => test(name, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      const slug = name.replace(/[^a-z0-9]+/gi, '-').slice(0, 40);
      let i = 0;
      const b = browser();
      for (const p of b ? b.contexts().flatMap((c) => c.pages()) : []) {
        await p.screenshot({ path: path.join(dir, `${prefix}FAILED-${slug}-${++i}.png`), fullPage: true }).catch(() => {});
      }
      await cleanup();
      throw e;
    }
  });
}

// signIn opens the console at base on page p and signs in.
export async function signIn(p, base, user, pass) {
  await p.goto(base + '/console/');
  await p.getByRole('heading', { name: 'Sign in' }).waitFor();
  await p.getByLabel('Username').fill(user);
  await p.getByLabel('Password').fill(pass);
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.locator('#whoami').filter({ hasText: user }).waitFor();
}
