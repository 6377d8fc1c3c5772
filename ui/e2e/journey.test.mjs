// @ts-check
/**
 * End-to-end journey through the real UI served by a running control plane.
 *
 *   STREAMSPACE_URL=http://127.0.0.1:8000 STREAMSPACE_ADMIN_PASSWORD=... npm run test:e2e
 *
 * Environment:
 *   STREAMSPACE_URL              base URL of the control plane serving the UI (required)
 *   STREAMSPACE_ADMIN_PASSWORD   password of the admin account (required)
 *   STREAMSPACE_ADMIN_USERNAME   default "admin"
 *   STREAMSPACE_ARTIFACTS        directory for screenshots (default ./e2e-artifacts)
 *   STREAMSPACE_E2E_TEMPLATE     name of the template to launch (default: the first card of the catalog)
 *   STREAMSPACE_E2E_START_TIMEOUT_MS  how long a session may take to reach "running" (default 240000)
 *   STREAMSPACE_E2E_SKIP_SESSION set to 1 to skip launching a session (no agent available)
 *   CHROMIUM_PATH                default /usr/bin/chromium
 *
 * Runs with Node's own test runner; any failed step makes the process exit non-zero.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

/** The flags the project runs Debian's Chromium with (playwright adds its own on top). */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const BASE = (process.env.STREAMSPACE_URL ?? '').replace(/\/+$/, '');
const USERNAME = process.env.STREAMSPACE_ADMIN_USERNAME ?? 'admin';
const PASSWORD = process.env.STREAMSPACE_ADMIN_PASSWORD ?? '';
const ARTIFACTS = path.resolve(process.env.STREAMSPACE_ARTIFACTS ?? 'e2e-artifacts');
const TEMPLATE = process.env.STREAMSPACE_E2E_TEMPLATE ?? '';
const START_TIMEOUT = Number(process.env.STREAMSPACE_E2E_START_TIMEOUT_MS ?? 240_000);
const SKIP_SESSION = process.env.STREAMSPACE_E2E_SKIP_SESSION === '1';
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** @type {import('playwright-core').BrowserContext} */
let context;
/** @type {import('playwright-core').Page} */
let page;
/** @type {string} */
let userDataDir;
let shot = 0;
let failed = false;
/** @type {string[]} */
const pageErrors = [];
/** @type {string | null} */
let sessionId = null;

/** @param {string} name */
async function screenshot(name) {
  shot += 1;
  const file = path.join(ARTIFACTS, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/**
 * A journey step: skipped once an earlier step failed (the later ones would only repeat the error).
 * @param {string} name
 * @param {() => Promise<void>} fn
 * @param {{ timeout?: number }} [opts]
 */
function step(name, fn, opts = {}) {
  test(name, { timeout: opts.timeout ?? 60_000 }, async (t) => {
    if (failed) {
      t.skip('an earlier step failed');
      return;
    }
    try {
      await fn();
    } catch (e) {
      failed = true;
      await screenshot(`FAILED-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`).catch(() => undefined);
      throw e;
    }
  });
}

/** @param {string} name */
async function expectHeading(name) {
  await page.getByRole('heading', { name, level: 1 }).waitFor({ timeout: 20_000 });
}

/** @param {string} pathname */
async function goto(pathname) {
  await page.goto(BASE + pathname, { waitUntil: 'domcontentloaded' });
}

/** Navigate with the app's own navigation (no full reload) and check the page rendered. */
async function visit(/** @type {string} */ link, /** @type {string} */ heading, /** @type {string} */ shotName) {
  await page.getByRole('link', { name: link, exact: true }).click();
  await expectHeading(heading);
  // Wait for tables and cards to settle (no skeletons left).
  await page.waitForFunction(() => document.querySelectorAll('.MuiSkeleton-root').length === 0, undefined, { timeout: 20_000 });
  const alerts = await page.locator('.MuiAlert-standardError').allInnerTexts();
  assert.deepEqual(alerts, [], `error shown on ${heading}`);
  await screenshot(shotName);
}

/**
 * Wait until the viewer's state chip matches `state` (or shows "failed", which is an error unless wanted).
 * @param {string | RegExp} state
 */
async function waitForSessionState(state, timeout = START_TIMEOUT) {
  const want = typeof state === 'string' ? `^${state}$` : state.source;
  await page.waitForFunction(
    (pattern) => {
      const text = document.querySelector('header .MuiChip-label')?.textContent ?? '';
      return new RegExp(pattern).test(text) || text === 'failed';
    },
    want,
    { timeout, polling: 500 },
  );
  const text = await page.locator('header .MuiChip-label').first().innerText();
  if (text === 'failed' && !new RegExp(want).test(text)) {
    const reason = await page.locator('.MuiAlert-message').first().innerText().catch(() => '');
    throw new Error(`session ${sessionId} failed: ${reason}`);
  }
}

describe('StreamSpace UI journey', { concurrency: false }, () => {
  before(async () => {
    assert.ok(BASE, 'set STREAMSPACE_URL to the control plane URL, e.g. http://127.0.0.1:8000');
    assert.ok(PASSWORD, 'set STREAMSPACE_ADMIN_PASSWORD');
    mkdirSync(ARTIFACTS, { recursive: true });
    userDataDir = mkdtempSync(path.join(tmpdir(), 'streamspace-e2e-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport: { width: 1366, height: 900 },
      acceptDownloads: true,
      colorScheme: 'light',
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(20_000);
    page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      // A CSP violation means the embedded build would break under the production policy.
      if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) pageErrors.push(`console: ${m.text()}`);
    });
  });

  after(async () => {
    await context?.close().catch(() => undefined);
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  });

  step('serves the SPA with a strict CSP-compatible page (no inline scripts)', async () => {
    const res = await fetch(`${BASE}/some/deep/client/route`);
    assert.equal(res.status, 200, 'SPA fallback must answer deep links with index.html');
    const html = await res.text();
    assert.match(html, /<div id="root">/);
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/i, 'index.html must not contain inline scripts');
  });

  step('redirects to sign-in and signs in as admin', async () => {
    await goto('/');
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    assert.match(new URL(page.url()).pathname, /^\/login/);
    await screenshot('sign-in');
    await page.getByLabel('Username').fill(USERNAME);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await Promise.race([
      expectHeading('Catalog'),
      page
        .getByRole('alert')
        .waitFor({ timeout: 20_000 })
        .then(async () => {
          throw new Error(`sign-in failed: ${await page.getByRole('alert').innerText()}`);
        }),
      page
        .getByLabel('Authentication code')
        .waitFor({ timeout: 20_000 })
        .then(() => {
          throw new Error('the admin account asks for MFA; use an account without MFA for the journey');
        }),
    ]);
  });

  step('shows the catalog and keeps the token out of Web Storage', async () => {
    await page.waitForFunction(() => document.querySelectorAll('.MuiSkeleton-root').length === 0);
    await screenshot('catalog');
    const stored = await page.evaluate(() => JSON.stringify({ ...window.localStorage, ...window.sessionStorage }));
    assert.doesNotMatch(stored, /ey[A-Za-z0-9_-]{10,}\.|access_token|Bearer/i, 'tokens must live in memory only');
  });

  step('restores the session after a reload (refresh cookie)', async () => {
    await page.reload({ waitUntil: 'domcontentloaded' });
    await expectHeading('Catalog');
  });

  step('admin pages render', async () => {
    await visit('Dashboard', 'Dashboard', 'admin-dashboard');
    await visit('Agents', 'Agents', 'admin-agents');
    await visit('All sessions', 'All sessions', 'admin-sessions');
    await visit('Users', 'Users', 'admin-users');
    if (await page.getByRole('link', { name: 'Organizations', exact: true }).count()) {
      await visit('Organizations', 'Organizations', 'admin-orgs');
    }
    await visit('Templates', 'Templates', 'admin-templates');
    await visit('Audit log', 'Audit log', 'admin-audit');
    await visit('Org settings', 'Organization settings', 'admin-settings');
  });

  step('audit log exports CSV with the bearer token', async () => {
    await page.getByRole('link', { name: 'Audit log', exact: true }).click();
    await expectHeading('Audit log');
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export CSV' }).click()]);
    const file = path.join(ARTIFACTS, download.suggestedFilename() || 'audit.csv');
    await download.saveAs(file);
    const csv = readFileSync(file, 'utf8');
    assert.ok(csv.split('\n')[0]?.includes(','), 'the export starts with a CSV header line');
  });

  step('creates and revokes an API key (shown once)', async () => {
    await page.getByRole('link', { name: 'Account', exact: true }).click();
    await expectHeading('Account');
    await screenshot('account');
    const name = `e2e-${Date.now()}`;
    await page.getByRole('button', { name: 'Create API key' }).click();
    const form = page.getByRole('dialog', { name: 'Create API key' });
    await form.getByLabel('Name').fill(name);
    await form.getByRole('button', { name: 'Create' }).click();
    const shown = page.getByRole('dialog', { name: 'New API key' });
    const key = (await shown.getByTestId('one-time-secret').innerText()).trim();
    assert.ok(key.length >= 16, 'an API key is shown');
    await screenshot('api-key-once');
    await shown.getByRole('button', { name: 'I have saved it' }).click();
    // The key works against the API.
    const me = await fetch(`${BASE}/api/v1/me`, { headers: { Authorization: `Bearer ${key}` } });
    assert.equal(me.status, 200, 'GET /me with the new API key');
    await page.getByRole('button', { name: `Revoke API key ${name}` }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
    await page.getByRole('button', { name: `Revoke API key ${name}` }).waitFor({ state: 'detached' });
  });

  step(
    'launches a session from the catalog and streams it in the viewer',
    async () => {
      if (SKIP_SESSION) return;
      await page.getByRole('link', { name: 'Catalog', exact: true }).click();
      await expectHeading('Catalog');
      const launch = TEMPLATE
        ? page.getByRole('article').filter({ hasText: TEMPLATE }).getByRole('button', { name: /^Launch / })
        : page.getByRole('button', { name: /^Launch / }).first();
      assert.ok((await launch.count()) > 0, 'the catalog offers at least one template to launch');
      await launch.first().click();
      await page.waitForURL(/\/sessions\/[^/]+$/);
      sessionId = decodeURIComponent(new URL(page.url()).pathname.split('/').pop() ?? '');
      await page.locator('header .MuiChip-label').first().waitFor();
      await screenshot('viewer-starting');
      await waitForSessionState('running');
      const frame = page.locator('iframe[allow*="clipboard-read"]');
      await frame.waitFor({ timeout: 30_000 });
      const src = (await frame.getAttribute('src')) ?? '';
      assert.ok(src, 'the viewer shows the connect URL');
      assert.equal(await frame.getAttribute('allow'), 'autoplay; clipboard-read; clipboard-write; fullscreen');
      // Give the streamer a moment to paint before the screenshot.
      await page.waitForTimeout(5_000);
      await screenshot('viewer-running');
    },
    { timeout: START_TIMEOUT + 60_000 },
  );

  step(
    'hibernates, wakes and stops the session',
    async () => {
      if (SKIP_SESSION || !sessionId) return;
      await page.getByRole('button', { name: 'Hibernate' }).click();
      await waitForSessionState('hibernated', 120_000);
      await screenshot('viewer-hibernated');
      await page.getByRole('button', { name: 'Wake' }).click();
      await waitForSessionState('running');
      await page.locator('iframe[allow*="clipboard-read"]').waitFor({ timeout: 30_000 });
      await page.getByRole('button', { name: 'Stop' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Stop' }).click();
      await waitForSessionState(/^(stopping|stopped)$/, 120_000);
      await screenshot('viewer-stopped');
    },
    { timeout: START_TIMEOUT + 300_000 },
  );

  step('my sessions page lists sessions live', async () => {
    await goto('/sessions');
    await expectHeading('My sessions');
    await page.getByLabel('Show ended').check();
    await page.waitForFunction(() => document.querySelectorAll('.MuiSkeleton-root').length === 0);
    await screenshot('my-sessions');
  });

  step('dark theme', async () => {
    await page.getByRole('button', { name: 'Switch to dark theme' }).click();
    await screenshot('my-sessions-dark');
    await page.getByRole('button', { name: 'Switch to light theme' }).click();
  });

  step('signs out', async () => {
    await page.getByRole('button', { name: 'Account menu' }).click();
    await page.getByRole('menuitem', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    // The refresh cookie is gone: a reload stays signed out.
    await page.reload({ waitUntil: 'domcontentloaded' });
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    await screenshot('signed-out');
  });

  step('no page errors or CSP violations', async () => {
    assert.deepEqual(pageErrors, []);
  });
});
