// @ts-check
/**
 * End-to-end journey through the real UI served by a running control plane with a Docker agent.
 * `e2e/run-journey.sh` starts a fresh `streamspace up`, creates the `fixture` template and runs this; to
 * run it against a server you started yourself:
 *
 *   STREAMSPACE_URL=http://localhost:8000 STREAMSPACE_ADMIN_PASSWORD=... npm run test:e2e
 *
 * The admin account must not have MFA yet: the journey enrolls it (TOTP codes computed from the secret
 * the page shows), signs out and back in with a code, launches the template, checks the live session
 * inside the viewer's iframe (session origin), hibernates, wakes and stops it, launches the streaming
 * template (Chromium) from the catalog and checks that the viewer's iframe decodes its video (frame counters
 * of e2e/frame-probe.mjs rise over 2 s), stops it from the toolbar, checks the admin pages and the audit
 * log, and checks that a member of another organization cannot see the session.
 *
 * Environment:
 *   STREAMSPACE_URL              base URL of the control plane serving the UI (required; use localhost)
 *   STREAMSPACE_ADMIN_PASSWORD   password of the admin account (required)
 *   STREAMSPACE_ADMIN_USERNAME   default "admin"
 *   STREAMSPACE_ARTIFACTS        directory for screenshots (default ./e2e-artifacts)
 *   STREAMSPACE_E2E_TEMPLATE     name of the template to launch (default "fixture")
 *   STREAMSPACE_E2E_FRAME_TEXT   heading the launched app shows (default "StreamSpace fixture")
 *   STREAMSPACE_E2E_STREAM_TEMPLATE  the streaming template to launch and watch (default "chromium"; empty:
 *                                skip the streaming step)
 *   STREAMSPACE_E2E_MIN_FRAMES   frames that must be decoded in the iframe over 2 s (default 10)
 *   STREAMSPACE_SESSION_DOMAIN   expected session domain (`localhost:<session port>`): each session is framed
 *                                from `http://<id>.<domain>` and the CSP frames `http://*.<domain>` (default: not checked)
 *   STREAMSPACE_E2E_START_TIMEOUT_MS  how long a session may take to reach "running" (default 120000)
 *   STREAMSPACE_E2E_SKIP_SESSION set to 1 to skip the session steps (no agent available)
 *   CHROMIUM_PATH                default /usr/bin/chromium
 *
 * Runs with Node's own test runner; any failed step makes the process exit non-zero.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';
import { launchOptions, reloadOnNetworkChange } from '../../tests/e2e/chromium.mjs';
import { installFrameProbe } from './frame-probe.mjs';
import { stepAt, totp } from './totp.mjs';


const BASE = (process.env.STREAMSPACE_URL ?? '').replace(/\/+$/, '');
const API = `${BASE}/api/v1`;
const USERNAME = process.env.STREAMSPACE_ADMIN_USERNAME ?? 'admin';
const PASSWORD = process.env.STREAMSPACE_ADMIN_PASSWORD ?? '';
const ARTIFACTS = path.resolve(process.env.STREAMSPACE_ARTIFACTS ?? 'e2e-artifacts');
const TEMPLATE = process.env.STREAMSPACE_E2E_TEMPLATE ?? 'fixture';
const FRAME_TEXT = process.env.STREAMSPACE_E2E_FRAME_TEXT ?? 'StreamSpace fixture';
const SESSION_DOMAIN = process.env.STREAMSPACE_SESSION_DOMAIN ?? '';
const START_TIMEOUT = Number(process.env.STREAMSPACE_E2E_START_TIMEOUT_MS ?? 120_000);
const SKIP_SESSION = process.env.STREAMSPACE_E2E_SKIP_SESSION === '1';
const STREAM_TEMPLATE = process.env.STREAMSPACE_E2E_STREAM_TEMPLATE ?? 'chromium';
const MIN_FRAMES = Number(process.env.STREAMSPACE_E2E_MIN_FRAMES ?? 10);
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const RUN = Date.now().toString(36);

/** @type {import('playwright-core').Browser} */
let browser;
/** @type {import('playwright-core').BrowserContext} */
let context;
/** @type {import('playwright-core').Page} */
let page;
let shot = 0;
let failed = false;
/** @type {string[]} */
const pageErrors = [];
/** @type {string[]} */
const screenshots = [];

/** Set up in `before`: an admin API key (for API-side checks), the template, another org's member. */
const fixture = {
  adminKey: '',
  adminKeyId: '',
  templateDisplayName: '',
  /** @type {string | null} */ sessionId: null,
  streamDisplayName: '',
  /** @type {string | null} */ streamSessionId: null,
  mfaSecret: '',
  other: { org: `e2e-other-${RUN}`, orgId: '', username: `e2e-member-${RUN}`, password: randomBytes(12).toString('base64url') },
  strict: { org: `e2e-mfa-${RUN}`, orgId: '', username: `e2e-mfa-${RUN}`, password: randomBytes(12).toString('base64url'), mfaSecret: '' },
};

// ---- helpers ----

/**
 * A JSON API call (outside the browser).
 * @param {string} method @param {string} p @param {{ token?: string, body?: unknown }} [o]
 * @returns {Promise<{ status: number, body: any }>}
 */
async function apiCall(method, p, o = {}) {
  const res = await fetch(API + p, {
    method,
    headers: {
      ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
      ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: o.body !== undefined ? JSON.stringify(o.body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** @param {{ status: number, body: any }} res @param {number} want @param {string} what */
function expectStatus(res, want, what) {
  assert.equal(res.status, want, `${what}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** @param {string} name */
async function screenshot(name, target = page) {
  shot += 1;
  const file = path.join(ARTIFACTS, `${String(shot).padStart(2, '0')}-${name}.png`);
  // Full-page shots draw fixed elements (the app bar) where they sit in the scrolled viewport: scroll to
  // the top first. Finished transitions, so dialogs are not caught half faded in.
  await target.evaluate(() => window.scrollTo(0, 0));
  await target.screenshot({ path: file, fullPage: true, animations: 'disabled' });
  screenshots.push(path.basename(file));
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

/**
 * Per page, what reloads it after the host's network changed during one of its loads: Docker changes the
 * host's interfaces whenever a session's container starts or stops, Chromium then abandons the loads in
 * flight, and an app module that did not load leaves the page blank.
 * @type {WeakMap<import('playwright-core').Page, () => Promise<void>>}
 */
const recoveries = new WeakMap();

/** Watch `target`'s loads from now on; call before its first navigation. */
function recovery(/** @type {import('playwright-core').Page} */ target) {
  let recover = recoveries.get(target);
  if (!recover) {
    // A reload, not a new navigation to the same URL: the app's history state (where to go after
    // signing in) survives it.
    recover = reloadOnNetworkChange(target, () => ({ url: () => target.url(), goto: () => target.reload({ waitUntil: 'load' }) }));
    recoveries.set(target, recover);
  }
  return recover;
}

/**
 * Waits until `locator` is visible, riding out a load the host's network change broke.
 * @param {import('playwright-core').Locator} locator
 */
async function shows(locator, target = page, timeout = 20_000) {
  const recover = recovery(target);
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await locator.waitFor({ timeout: Math.max(1, Math.min(1_000, deadline - Date.now())) });
    } catch (e) {
      if (Date.now() >= deadline) throw e;
      await recover();
    }
  }
}

/** @param {string} name */
async function expectHeading(name, target = page) {
  await shows(target.getByRole('heading', { name, level: 1 }), target);
}

/** @param {string} pathname */
async function goto(pathname, target = page) {
  recovery(target);
  await target.goto(BASE + pathname, { waitUntil: 'domcontentloaded' });
}

async function settled(target = page) {
  await target.waitForFunction(() => document.querySelectorAll('.MuiSkeleton-root').length === 0, undefined, { timeout: 20_000 });
}

/** Navigate with the app's own navigation (no full reload), check the page rendered without errors, screenshot it. */
async function visit(/** @type {string} */ link, /** @type {string} */ heading, /** @type {string} */ shotName) {
  await page.getByRole('link', { name: link, exact: true }).click();
  await expectHeading(heading);
  await settled();
  const alerts = await page.locator('.MuiAlert-standardError').allInnerTexts();
  assert.deepEqual(alerts, [], `error shown on ${heading}`);
  await screenshot(shotName);
}

/** Per secret, the TOTP step of the last code used: the server accepts each step once per user. */
const lastSteps = new Map();

/** The code of `secret` for a step not used yet (waits for the next 30 s step to begin if needed). */
async function freshCode(/** @type {string} */ secret) {
  while (stepAt() <= (lastSteps.get(secret) ?? 0)) await new Promise((r) => setTimeout(r, 250));
  const step = stepAt();
  lastSteps.set(secret, step);
  return totp(secret, step);
}

/**
 * Sign in through the form; answers the MFA step with a code of `mfaSecret` when given.
 * @param {import('playwright-core').Page} target @param {string} username @param {string} password
 */
async function signIn(target, username, password, mfaSecret = '') {
  await shows(target.getByRole('button', { name: 'Sign in' }), target, 30_000);
  await target.getByLabel('Username').fill(username);
  await target.getByLabel('Password').fill(password);
  await target.getByRole('button', { name: 'Sign in' }).click();
  if (!mfaSecret) return;
  const codeField = target.getByLabel('Authentication code');
  await codeField.waitFor();
  if (target === page) await screenshot('sign-in-mfa-code', target);
  await codeField.fill(await freshCode(mfaSecret));
  await target.getByRole('button', { name: 'Verify' }).click();
}

/** The state chip in the viewer's top bar. */
const stateChip = () => page.locator('header .MuiChip-label').first();

/**
 * Wait until the viewer's state chip matches `state` (or shows "failed", which is an error unless wanted).
 * @param {string | RegExp} state
 */
async function waitForSessionState(state, timeout = START_TIMEOUT, id = fixture.sessionId) {
  const want = typeof state === 'string' ? `^${state}$` : state.source;
  await page.waitForFunction(
    (pattern) => {
      const text = document.querySelector('header .MuiChip-label')?.textContent ?? '';
      return new RegExp(pattern).test(text) || text === 'failed';
    },
    want,
    { timeout, polling: 250 },
  );
  const text = await stateChip().innerText();
  if (text === 'failed' && !new RegExp(want).test(text)) {
    const reason = await page.locator('.MuiAlert-message').first().innerText().catch(() => '');
    throw new Error(`session ${String(id)} failed: ${reason}`);
  }
}

/**
 * The viewer's iframe, checked to be served from the session origin, and its frame.
 * @param {string | null} id the session
 */
async function sessionIframe(id) {
  const frame = page.locator('iframe[sandbox]');
  await frame.waitFor({ timeout: 30_000 });
  // The org and template keep the default session policy: everything allowed (ADR 0032).
  assert.equal(await frame.getAttribute('allow'), 'autoplay; fullscreen; clipboard-read; clipboard-write; microphone');
  assert.equal(await frame.getAttribute('sandbox'), 'allow-scripts allow-same-origin allow-pointer-lock allow-downloads');
  const src = new URL((await frame.getAttribute('src')) ?? '');
  assert.notEqual(src.origin, new URL(BASE).origin, 'the app is framed from the session origin, not the UI origin');
  if (SESSION_DOMAIN) assert.equal(src.origin, `http://${String(id)}.${SESSION_DOMAIN}`, 'each session on its own origin');
  assert.equal(src.pathname, `/api/v1/http/${String(id)}/`);
  const content = await (await frame.elementHandle())?.contentFrame();
  assert.ok(content, 'the iframe has a frame');
  return content;
}

/** The viewer's iframe shows the app, served from the session origin. */
async function expectLiveApp() {
  await sessionIframe(fixture.sessionId);
  const app = page.frameLocator('iframe[allow*="clipboard-read"]');
  await app.getByRole('heading', { name: FRAME_TEXT }).waitFor({ timeout: 30_000 });
  assert.equal(await app.locator('#status').innerText(), 'ok');
}

/**
 * The frame counters of e2e/frame-probe.mjs in `frame`.
 * @param {import('playwright-core').Frame} frame
 * @returns {Promise<import('./frame-probe.mjs').FrameCounts>}
 */
function readFrames(frame) {
  return frame.evaluate(() => /** @type {any} */ (window).__ssFrames.read());
}

/**
 * What the session page in `frame` shows of the stream: the client's <video> (its box against the frame's
 * viewport, whether it is hidden) and a 320x200 copy of its current picture (distinct colours, luma range).
 * @param {import('playwright-core').Frame} frame
 */
function streamPicture(frame) {
  return frame.evaluate(() => {
    const video = document.querySelector('video#videoStream') ?? document.querySelector('video');
    if (!(video instanceof HTMLVideoElement)) return null;
    const box = video.getBoundingClientRect();
    const style = getComputedStyle(video);
    const canvas = document.createElement('canvas');
    canvas.width = 320;
    canvas.height = 200;
    const g = canvas.getContext('2d');
    if (!g) return null;
    g.drawImage(video, 0, 0, canvas.width, canvas.height);
    const { data } = g.getImageData(0, 0, canvas.width, canvas.height);
    const colours = new Set();
    let min = 255;
    let max = 0;
    for (let i = 0; i < data.length; i += 4) {
      const r = data[i] ?? 0;
      const green = data[i + 1] ?? 0;
      const b = data[i + 2] ?? 0;
      colours.add(((r >> 4) << 8) | ((green >> 4) << 4) | (b >> 4));
      const luma = 0.299 * r + 0.587 * green + 0.114 * b;
      min = Math.min(min, luma);
      max = Math.max(max, luma);
    }
    return {
      shownShare: Math.round(((box.width * box.height) / (window.innerWidth * window.innerHeight)) * 100) / 100,
      hidden: style.display === 'none' || style.visibility === 'hidden' || Number(style.opacity) === 0,
      colours: colours.size,
      lumaRange: Math.round(max - min),
    };
  });
}

// ---- the journey ----

describe('StreamSpace UI journey', { concurrency: false }, () => {
  before(async () => {
    assert.ok(BASE, 'set STREAMSPACE_URL to the control plane URL, e.g. http://localhost:8000');
    assert.ok(PASSWORD, 'set STREAMSPACE_ADMIN_PASSWORD');
    mkdirSync(ARTIFACTS, { recursive: true });
    // Screenshots of an earlier run would mix with this one's.
    for (const f of readdirSync(ARTIFACTS)) if (/^\d\d-.*\.png$/.test(f)) rmSync(path.join(ARTIFACTS, f));

    // API-side fixtures, made while the admin has no MFA yet: an API key for later checks (keys need no
    // second factor), the other organizations and their users.
    const login = await apiCall('POST', '/auth/login', { body: { username: USERNAME, password: PASSWORD } });
    if (login.status === 401 && login.body?.error?.code === 'mfa_required') {
      assert.fail(`${USERNAME} already has MFA: run the journey on a fresh installation (e2e/run-journey.sh does)`);
    }
    const token = expectStatus(login, 200, 'admin API sign-in').access_token;
    const key = expectStatus(await apiCall('POST', '/me/api-keys', { token, body: { name: `journey-${RUN}` } }), 201, 'API key');
    fixture.adminKey = key.key;
    fixture.adminKeyId = key.id;
    const admin = { token: fixture.adminKey };

    const templates = expectStatus(await apiCall('GET', '/templates?limit=500', admin), 200, 'templates').items;
    const template = templates.find((/** @type {any} */ t) => t.name === TEMPLATE);
    if (!SKIP_SESSION) assert.ok(template?.enabled, `no enabled template named ${TEMPLATE} (e2e/run-journey.sh creates "fixture")`);
    fixture.templateDisplayName = template?.display_name ?? TEMPLATE;
    if (STREAM_TEMPLATE && !SKIP_SESSION) {
      const streaming = templates.find((/** @type {any} */ t) => t.name === STREAM_TEMPLATE);
      assert.ok(streaming?.enabled, `no enabled template named ${STREAM_TEMPLATE} (seeded by streamspace up; STREAMSPACE_E2E_STREAM_TEMPLATE= skips the streaming step)`);
      fixture.streamDisplayName = streaming.display_name;
    }

    for (const who of [fixture.other, fixture.strict]) {
      const org = expectStatus(await apiCall('POST', '/orgs', { ...admin, body: { name: who.org } }), 201, `org ${who.org}`);
      who.orgId = org.id;
      const user = { username: who.username, password: who.password, role: 'member', org_id: org.id };
      expectStatus(await apiCall('POST', '/users', { ...admin, body: user }), 201, `user ${who.username}`);
    }
    expectStatus(await apiCall('PATCH', `/orgs/${fixture.strict.orgId}`, { ...admin, body: { mfa_required: true } }), 200, 'MFA policy');

    browser = await chromium.launch(await launchOptions(chromium, CHROMIUM));
    context = await browser.newContext({ viewport: { width: 1366, height: 900 }, acceptDownloads: true, colorScheme: 'light' });
    // Frame counters in every page and frame (the viewer's iframe on the session origin too).
    await context.addInitScript(installFrameProbe);
    page = await context.newPage();
    page.setDefaultTimeout(20_000);
    page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      // A CSP violation means the embedded build would break under the production policy.
      if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) pageErrors.push(`console: ${m.text()}`);
    });
  });

  after(async () => {
    // Leave nothing running even when a step failed half-way.
    for (const id of [fixture.sessionId, fixture.streamSessionId]) {
      if (!fixture.adminKey || !id) continue;
      const s = await apiCall('GET', `/sessions/${id}`, { token: fixture.adminKey }).catch(() => null);
      if (s?.body && !['stopped', 'failed', 'stopping'].includes(s.body.state)) {
        await apiCall('DELETE', `/sessions/${id}`, { token: fixture.adminKey }).catch(() => undefined);
      }
    }
    if (fixture.adminKeyId) await apiCall('DELETE', `/me/api-keys/${fixture.adminKeyId}`, { token: fixture.adminKey }).catch(() => undefined);
    await browser?.close().catch(() => undefined);
    if (screenshots.length) console.log(`# screenshots in ${ARTIFACTS}:\n${screenshots.map((s) => `#   ${s}`).join('\n')}`);
  });

  step('serves the SPA under the strict CSP (no inline scripts; API paths never fall back)', async () => {
    const res = await fetch(`${BASE}/some/deep/client/route`);
    assert.equal(res.status, 200, 'SPA fallback must answer deep links with index.html');
    const html = await res.text();
    assert.match(html, /<div id="root">/);
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/i, 'index.html must not contain inline scripts');
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.match(csp, /frame-src [^;]+/);
    if (SESSION_DOMAIN) assert.ok(csp.includes(`frame-src http://*.${SESSION_DOMAIN};`), `CSP frames every session: ${csp}`);
    const missing = await fetch(`${API}/no-such-route`);
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).error.code, 'route_not_found');
  });

  step('a page whose code fails to download says so, and a reload brings the app', async () => {
    const other = await browser.newContext({ viewport: { width: 1366, height: 900 }, colorScheme: 'light' });
    try {
      const p = await other.newPage();
      // As when the network changes mid-load: a module the app's entry imports does not arrive.
      const dependency = /\/assets\/react-[^/]+\.js$/;
      await p.route(dependency, (route) => route.abort('internetdisconnected'));
      await goto('/', p);
      await shows(p.getByRole('heading', { name: 'StreamSpace could not load' }), p);
      await screenshot('app-failed-to-load', p);
      await p.unroute(dependency);
      await p.getByRole('button', { name: 'Reload' }).click();
      await shows(p.getByRole('button', { name: 'Sign in' }), p);
      assert.equal(await p.getByRole('heading', { name: 'StreamSpace could not load' }).count(), 0);
    } finally {
      await other.close();
    }
  });

  step('redirects to sign-in and signs in as admin', async () => {
    await goto('/');
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    assert.match(new URL(page.url()).pathname, /^\/login/);
    await screenshot('sign-in');
    await signIn(page, USERNAME, PASSWORD);
    await expectHeading('Catalog');
  });

  step('shows the catalog, keeps the token out of Web Storage, restores the session after a reload', async () => {
    await settled();
    await page.getByRole('article', { name: fixture.templateDisplayName }).waitFor();
    await screenshot('catalog');
    const stored = await page.evaluate(() => JSON.stringify({ ...window.localStorage, ...window.sessionStorage }));
    assert.doesNotMatch(stored, /ey[A-Za-z0-9_-]{10,}\.|access_token|Bearer/i, 'tokens must live in memory only');
    await page.reload({ waitUntil: 'domcontentloaded' });
    await expectHeading('Catalog');
  });

  step('enrolls MFA on the account page (TOTP computed from the shown secret)', async () => {
    await page.getByRole('link', { name: 'Account', exact: true }).click();
    await expectHeading('Account');
    const section = page.getByRole('region', { name: 'Two-factor authentication' });
    await section.getByRole('button', { name: 'Set up two-factor authentication' }).click();
    fixture.mfaSecret = (await section.getByTestId('mfa-secret').innerText()).trim();
    assert.match(fixture.mfaSecret, /^[A-Z2-7]{16,}$/, 'a base32 secret is shown');
    const qr = section.getByRole('img', { name: /QR code/ });
    await qr.waitFor();
    assert.ok(await qr.evaluate((img) => /** @type {HTMLImageElement} */ (img).naturalWidth > 0), 'the QR code renders');
    await screenshot('account-mfa-setup');
    await section.getByLabel('Code from the app').fill(await freshCode(fixture.mfaSecret));
    await section.getByRole('button', { name: 'Turn on' }).click();
    const dialog = page.getByRole('dialog', { name: 'Recovery codes' });
    const codes = (await dialog.getByTestId('one-time-secret').innerText()).split(/\s+/).filter(Boolean);
    assert.equal(codes.length, 10, 'ten recovery codes are shown once');
    await screenshot('account-mfa-recovery-codes');
    await dialog.getByRole('button', { name: 'I have saved it' }).click();
    await section.getByText('On', { exact: true }).waitFor();
    await section.getByText('10 recovery codes left').waitFor();
    await screenshot('account-mfa-on');
    // Turning MFA on revokes the API keys made with the password alone: the journey's key now fails.
    expectStatus(await apiCall('GET', '/me', { token: fixture.adminKey }), 401, 'the key made without MFA');
    const code = await freshCode(fixture.mfaSecret);
    const body = { username: USERNAME, password: PASSWORD, totp_code: code };
    const token = expectStatus(await apiCall('POST', '/auth/login', { body }), 200, 'admin API sign-in with MFA').access_token;
    const key = expectStatus(await apiCall('POST', '/me/api-keys', { token, body: { name: `journey-mfa-${RUN}` } }), 201, 'API key');
    fixture.adminKey = key.key;
    fixture.adminKeyId = key.id;
    const me = expectStatus(await apiCall('GET', '/me', { token: fixture.adminKey }), 200, 'GET /me');
    assert.equal(me.mfa_enabled, true);
  });

  step('a user whose organization requires MFA only gets the setup page, enrolls there and must sign in again', async () => {
    const other = await browser.newContext({ viewport: { width: 1366, height: 900 }, colorScheme: 'light' });
    try {
      const p = await other.newPage();
      p.on('pageerror', (e) => pageErrors.push(`pageerror (mfa user): ${e.message}`));
      await goto('/', p);
      await signIn(p, fixture.strict.username, fixture.strict.password);
      await expectHeading('Set up two-factor authentication', p);
      assert.equal(new URL(p.url()).pathname, '/setup-mfa');
      await screenshot('mfa-setup-required', p);
      // Nothing else is reachable.
      await goto('/admin/audit', p);
      await expectHeading('Set up two-factor authentication', p);
      await p.getByRole('button', { name: 'Set up two-factor authentication' }).click();
      fixture.strict.mfaSecret = (await p.getByTestId('mfa-secret').innerText()).trim();
      await p.getByLabel('Code from the app').fill(await freshCode(fixture.strict.mfaSecret));
      await p.getByRole('button', { name: 'Turn on' }).click();
      const dialog = p.getByRole('dialog', { name: 'Recovery codes' });
      await dialog.getByTestId('one-time-secret').waitFor();
      await dialog.getByRole('button', { name: 'I have saved it' }).click();
      await p.getByText('Two-factor authentication is on. Sign in again').waitFor();
      assert.equal(new URL(p.url()).pathname, '/login');
      await screenshot('mfa-setup-done-sign-in-again', p);
    } finally {
      await other.close();
    }
  });

  step('signs out and back in with a TOTP code', async () => {
    await page.getByRole('button', { name: 'Account menu' }).click();
    await page.getByRole('menuitem', { name: 'Sign out' }).click();
    await signIn(page, USERNAME, PASSWORD, fixture.mfaSecret);
    await expectHeading('Catalog');
  }, { timeout: 90_000 });

  step(
    'launches the template and the viewer shows the live session from the session origin',
    async () => {
      if (SKIP_SESSION) return;
      await settled();
      await page.getByRole('article', { name: fixture.templateDisplayName }).getByRole('button', { name: /^Launch / }).click();
      await page.waitForURL(/\/sessions\/[^/]+$/);
      fixture.sessionId = decodeURIComponent(new URL(page.url()).pathname.split('/').pop() ?? '');
      await stateChip().waitFor();
      await screenshot('viewer-starting');
      await waitForSessionState('running');
      await expectLiveApp();
      await screenshot('viewer-running');
    },
    { timeout: START_TIMEOUT + 60_000 },
  );

  step('a member of another organization cannot see the session (API 404, not listed, viewer "not found")', async () => {
    if (SKIP_SESSION) return;
    const id = String(fixture.sessionId);
    const login = await apiCall('POST', '/auth/login', { body: { username: fixture.other.username, password: fixture.other.password } });
    const member = { token: expectStatus(login, 200, 'member sign-in').access_token };
    for (const [method, p] of [
      ['GET', `/sessions/${id}`],
      ['POST', `/sessions/${id}/connect`],
      ['POST', `/sessions/${id}/hibernate`],
      ['DELETE', `/sessions/${id}`],
    ]) {
      const res = await apiCall(String(method), String(p), member);
      assert.equal(res.status, 404, `${method} ${p} as another org's member`);
      assert.equal(res.body.error.code, 'not_found');
    }
    const listed = expectStatus(await apiCall('GET', '/sessions?limit=500', member), 200, 'member session list');
    assert.ok(!listed.items.some((/** @type {any} */ s) => s.id === id), 'the session is not in the member\'s list');

    // The same through the UI, in a separate browser context (own cookies).
    const other = await browser.newContext({ viewport: { width: 1366, height: 900 }, colorScheme: 'light' });
    try {
      const p = await other.newPage();
      p.on('pageerror', (e) => pageErrors.push(`pageerror (member): ${e.message}`));
      await goto('/sessions', p);
      await signIn(p, fixture.other.username, fixture.other.password);
      await expectHeading('My sessions', p);
      await p.getByLabel('Show ended').check();
      await settled(p);
      await p.getByText('You have no sessions.').waitFor();
      assert.equal(await p.locator(`a[href="/sessions/${id}"]`).count(), 0);
      await screenshot('member-my-sessions', p);
      await goto(`/sessions/${id}`, p);
      await shows(p.getByText('Session not found'), p);
      await screenshot('member-session-not-found', p);
    } finally {
      await other.close();
    }
  });

  step('the user of the MFA-requiring organization signs in with a code and gets the app', async () => {
    const other = await browser.newContext({ viewport: { width: 1366, height: 900 }, colorScheme: 'light' });
    try {
      const p = await other.newPage();
      p.on('pageerror', (e) => pageErrors.push(`pageerror (mfa user): ${e.message}`));
      await goto('/', p);
      await signIn(p, fixture.strict.username, fixture.strict.password, fixture.strict.mfaSecret);
      await expectHeading('Catalog', p);
      const login = await apiCall('POST', '/auth/login', { body: { username: fixture.strict.username, password: fixture.strict.password } });
      assert.equal(login.body?.error?.code, 'mfa_required', 'the account now asks for a second factor');
    } finally {
      await other.close();
    }
  }, { timeout: 90_000 });

  step(
    'hibernates, wakes and stops the session from the viewer',
    async () => {
      if (SKIP_SESSION) return;
      await page.getByRole('button', { name: 'Hibernate' }).click();
      await waitForSessionState('hibernated', 120_000);
      await page.getByRole('button', { name: 'Wake' }).waitFor();
      await screenshot('viewer-hibernated');
      await page.getByRole('button', { name: 'Wake' }).click();
      await waitForSessionState('running');
      await expectLiveApp();
      await screenshot('viewer-woken');
      await page.getByRole('button', { name: 'Stop' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Stop' }).click();
      await waitForSessionState('stopped', 120_000);
      await screenshot('viewer-stopped');
      const s = expectStatus(await apiCall('GET', `/sessions/${String(fixture.sessionId)}`, { token: fixture.adminKey }), 200, 'session');
      assert.equal(s.state, 'stopped');
    },
    { timeout: START_TIMEOUT + 300_000 },
  );

  step(
    `launches the streaming template (${STREAM_TEMPLATE || 'none'}) from the catalog; the viewer streams it (decoded frames rise); stops it`,
    async () => {
      if (SKIP_SESSION || !STREAM_TEMPLATE) return;
      await page.getByRole('link', { name: 'Back to catalog' }).click();
      await expectHeading('Catalog');
      await settled();
      const launched = Date.now();
      await page.getByRole('article', { name: fixture.streamDisplayName }).getByRole('button', { name: /^Launch / }).click();
      await page.waitForURL(/\/sessions\/[^/]+$/);
      const id = decodeURIComponent(new URL(page.url()).pathname.split('/').pop() ?? '');
      assert.notEqual(id, fixture.sessionId, 'a new session');
      fixture.streamSessionId = id;
      await waitForSessionState('running', START_TIMEOUT, id);
      const frame = await sessionIframe(id);
      // The Selkies client in the iframe decodes the stream (WebCodecs), then keeps decoding it.
      await frame
        .waitForFunction(() => /** @type {any} */ (window).__ssFrames?.read().firstDecodedAt > 0, undefined, { timeout: 60_000, polling: 100 })
        .catch(async (/** @type {unknown} */ e) => {
          const counts = await readFrames(frame).catch((/** @type {unknown} */ r) => String(r));
          throw new Error(`no decoded frame in the viewer's iframe (${frame.url()}): ${JSON.stringify(counts)}: ${String(e)}`);
        });
      const framed = new URL(frame.url());
      assert.equal(`${framed.pathname}${framed.search}`, `/api/v1/http/${id}/`, 'the ticket is traded for the cookie and leaves the URL');
      const firstFrameAfter = ((Date.now() - launched) / 1000).toFixed(1);
      const start = await readFrames(frame);
      await new Promise((r) => setTimeout(r, 2_000));
      const end = await readFrames(frame);
      const seconds = (end.now - start.now) / 1000;
      const decoded = end.decoded - start.decoded;
      const presented = end.presented - start.presented;
      console.log(
        `# ${STREAM_TEMPLATE}: first frame in the viewer ${firstFrameAfter} s after Launch; ${decoded} frames decoded, ` +
          `${presented} presented in the viewer's iframe over ${seconds.toFixed(1)} s; video ${JSON.stringify(end.videos)}`,
      );
      assert.ok(decoded >= MIN_FRAMES, `decoded frames rise in the iframe: ${JSON.stringify({ start, end })}`);
      // The stream is on screen: the client's <video> has a picture of the remote display (the session's
      // browser window, not a blank or black one) and fills the viewer.
      assert.ok(end.videos.some((v) => v.width > 0 && v.height > 0), `a <video> has the stream: ${JSON.stringify(end.videos)}`);
      const picture = await streamPicture(frame);
      console.log(`# ${STREAM_TEMPLATE}: the viewer shows ${JSON.stringify(picture)}`);
      assert.ok(picture && !picture.hidden && picture.shownShare >= 0.5, `the <video> fills the viewer: ${JSON.stringify(picture)}`);
      assert.ok(picture.colours >= 4 && picture.lumaRange >= 64, `the streamed picture is not blank: ${JSON.stringify(picture)}`);
      await screenshot(`viewer-${STREAM_TEMPLATE}-streaming`);
      await page.getByRole('button', { name: 'Stop' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Stop' }).click();
      await waitForSessionState('stopped', 120_000, id);
      await page.getByRole('link', { name: 'Back to catalog' }).waitFor();
      await screenshot(`viewer-${STREAM_TEMPLATE}-stopped`);
      const s = expectStatus(await apiCall('GET', `/sessions/${id}`, { token: fixture.adminKey }), 200, 'streaming session');
      assert.equal(s.state, 'stopped');
    },
    { timeout: START_TIMEOUT + 180_000 },
  );

  step('admin pages render; the agent is online', async () => {
    await page.getByRole('link', { name: 'Back to catalog' }).click();
    await expectHeading('Catalog');
    await visit('Dashboard', 'Dashboard', 'admin-dashboard');
    await page.getByRole('link', { name: /^Agents online: [1-9]/ }).waitFor();
    await visit('Agents', 'Agents', 'admin-agents');
    const local = page.getByRole('row').filter({ hasText: 'local' });
    await local.getByText('online', { exact: true }).waitFor();
    await visit('All sessions', 'All sessions', 'admin-sessions');
    if (fixture.sessionId) await page.getByRole('row').filter({ hasText: fixture.templateDisplayName }).first().waitFor();
    await visit('Users', 'Users', 'admin-users');
    await page.getByRole('cell', { name: fixture.other.username, exact: true }).waitFor();
    await visit('Organizations', 'Organizations', 'admin-orgs');
    await page.getByRole('cell', { name: fixture.other.org, exact: true }).waitFor();
    await visit('Templates', 'Templates', 'admin-templates');
    await page.getByRole('button', { name: `Warm pool of ${fixture.templateDisplayName}` }).waitFor();
    await visit('Warm pools', 'Warm pools', 'admin-pools');
    await visit('Org settings', 'Organization settings', 'admin-settings');
  });

  step('the audit log lists the journey\'s actions', async () => {
    await visit('Audit log', 'Audit log', 'admin-audit');
    const rows = page.locator('tbody tr');
    const wanted = ['auth.login', 'auth.mfa_enroll', 'auth.mfa_verify', 'auth.logout'];
    if (fixture.sessionId) wanted.push('session.create', 'session.connect', 'session.hibernate', 'session.wake', 'session.stop');
    const actions = new Set((await rows.locator('td:nth-child(3)').allInnerTexts()).map((t) => t.trim()));
    for (const a of wanted) assert.ok(actions.has(a), `the audit log shows ${a} (saw ${[...actions].join(', ')})`);
    // Narrow to this session's events with the free-text search.
    if (fixture.sessionId) {
      await page.getByLabel('Search').fill(String(fixture.sessionId));
      // Wait for the filtered list (debounced): every row is about this session.
      await page.waitForFunction(
        (tail) => {
          const targets = [...document.querySelectorAll('tbody tr td:nth-child(4)')].map((td) => td.textContent ?? '');
          return targets.length >= 5 && targets.every((t) => t.endsWith(tail));
        },
        String(fixture.sessionId).slice(-8),
        { timeout: 10_000 },
      );
      const filtered = (await rows.locator('td:nth-child(3)').allInnerTexts()).map((t) => t.trim());
      for (const a of ['session.create', 'session.connect', 'session.hibernate', 'session.wake', 'session.stop']) {
        assert.ok(filtered.includes(a), `filtered audit log shows ${a} (saw ${filtered.join(', ')})`);
      }
      await screenshot('admin-audit-session');
      await page.getByRole('button', { name: 'Clear filters' }).click();
    }
  });

  step('audit log exports CSV with the bearer token', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export CSV' }).click()]);
    const file = path.join(ARTIFACTS, download.suggestedFilename() || 'audit.csv');
    await download.saveAs(file);
    const csv = readFileSync(file, 'utf8');
    assert.match(csv.split('\n')[0] ?? '', /^seq,id,time,actor_id,actor_name/, 'the export starts with the CSV header');
    assert.ok(csv.includes('auth.mfa_enroll'));
    rmSync(file);
  });

  step('adds an agent, gives it a new token and deletes it', async () => {
    await page.getByRole('link', { name: 'Agents', exact: true }).click();
    await expectHeading('Agents');
    const name = `e2e-agent-${RUN}`;
    await page.getByRole('button', { name: 'Add agent' }).click();
    const form = page.getByRole('dialog', { name: 'Add agent' });
    await form.getByLabel('Name').fill(name);
    await form.getByRole('button', { name: 'Create' }).click();
    const first = page.getByRole('dialog', { name: 'Agent token' });
    const token1 = (await first.getByTestId('one-time-secret').innerText()).trim();
    assert.match(token1, /^ssa_/);
    await screenshot('agent-token');
    await first.getByRole('button', { name: 'I have saved it' }).click();
    await page.getByRole('button', { name: `New token for agent ${name}` }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'New token' }).click();
    const second = page.getByRole('dialog', { name: `New token for ${name}` });
    const token2 = (await second.getByTestId('one-time-secret').innerText()).trim();
    assert.match(token2, /^ssa_/);
    assert.notEqual(token2, token1, 'rotation gives a different token');
    await screenshot('agent-token-rotated');
    await second.getByRole('button', { name: 'I have saved it' }).click();
    await page.getByRole('button', { name: `Delete agent ${name}` }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('button', { name: `Delete agent ${name}` }).waitFor({ state: 'detached' });
    const local = page.getByRole('row').filter({ hasText: 'local' });
    await local.getByText('online', { exact: true }).waitFor();
  });

  step('creates and revokes an API key (shown once)', async () => {
    await page.getByRole('link', { name: 'Account', exact: true }).click();
    await expectHeading('Account');
    const name = `e2e-${RUN}`;
    await page.getByRole('button', { name: 'Create API key' }).click();
    const form = page.getByRole('dialog', { name: 'Create API key' });
    await form.getByLabel('Name').fill(name);
    await form.getByRole('button', { name: 'Create' }).click();
    const shown = page.getByRole('dialog', { name: 'New API key' });
    const key = (await shown.getByTestId('one-time-secret').innerText()).trim();
    assert.match(key, /^ssk_/, 'an API key is shown');
    await screenshot('api-key-once');
    await shown.getByRole('button', { name: 'I have saved it' }).click();
    const me = await fetch(`${API}/me`, { headers: { Authorization: `Bearer ${key}` } });
    assert.equal(me.status, 200, 'GET /me with the new API key');
    await page.getByRole('button', { name: `Revoke API key ${name}` }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
    await page.getByRole('button', { name: `Revoke API key ${name}` }).waitFor({ state: 'detached' });
    assert.equal((await fetch(`${API}/me`, { headers: { Authorization: `Bearer ${key}` } })).status, 401, 'a revoked key stops working');
  });

  step('my sessions page lists the ended session; dark theme', async () => {
    await page.getByRole('link', { name: 'My sessions', exact: true }).click();
    await expectHeading('My sessions');
    await page.getByLabel('Show ended').check();
    await settled();
    if (fixture.sessionId) await page.getByRole('row').filter({ hasText: 'stopped' }).first().waitFor();
    await screenshot('my-sessions');
    await page.getByRole('button', { name: 'Switch to dark theme' }).click();
    await screenshot('my-sessions-dark');
    await page.getByRole('button', { name: 'Switch to light theme' }).click();
  });

  step('signs out; a reload stays signed out', async () => {
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

