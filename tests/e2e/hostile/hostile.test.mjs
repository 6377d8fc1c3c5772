// A hostile tenant in a real browser: the viewer has session B (streamspace/fixture) open and
// opens session A, whose page (streamspace/hostile) attacks B and the viewer's StreamSpace
// credentials. Every attack must fail; each is its own test. See README.md.
//
// Session URLs come only from the connect API and the UI, never from knowledge of how the proxy
// lays them out, so the same test runs against any session-origin design.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { launchOptions, reloadOnNetworkChange } from '../chromium.mjs';
import { ARTIFACTS, HOSTILE_IMAGE, VICTIM_IMAGE, Platform, eventually, isRefreshCookie, requireImages } from './harness.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
/** The fixture's page heading: proof that the victim's own document is what a frame shows. */
const VICTIM_TEXT = 'StreamSpace fixture';
const ATTACK_TIMEOUT_MS = 120000;
const PLANTED_COOKIES = ['cookie-longer-path', 'cookie-parent-domain', 'cookie-host-prefix', 'cookie-secure-prefix'];

let platform;
let browser;
let victim;
let hostile;
let attacker;

before(async () => {
  requireImages([HOSTILE_IMAGE, VICTIM_IMAGE]);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  platform = await Platform.start();
  await platform.template('victim', VICTIM_IMAGE);
  await platform.template('hostile', HOSTILE_IMAGE);
  attacker = await platform.attacker();
  [victim, hostile] = await Promise.all([platform.startSession('victim'), platform.startSession('hostile')]);
  browser = await chromium.launch(await launchOptions(chromium, CHROMIUM));
}, { timeout: 300000 });

after(async () => {
  await browser?.close();
  await platform?.stop();
}, { timeout: 120000 });

/** Signs in through the UI's form, so the browser holds the refresh cookie as a user's would. */
async function signIn(context) {
  const page = await context.newPage();
  const recover = reloadOnNetworkChange(page, () => page.mainFrame());
  page.on('requestfailed', (request) => console.log(`# ${request.url()} failed: ${request.failure()?.errorText}`));
  await page.goto(`${platform.ui}/`);
  await eventually('the sign-in form', 30000, async () => {
    await recover();
    return page.getByLabel('Username').isVisible();
  });
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill(platform.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await eventually('the refresh cookie after signing in', 30000, async () =>
    (await context.cookies(`${platform.ui}/api/v1/auth/refresh`)).some((c) => isRefreshCookie(c.name)),
  );
  await page.close();
}

/** The session's iframe in the UI's viewer page `/sessions/<id>`, once its document has loaded. */
async function viewerFrame(page, id) {
  await page.goto(`${platform.ui}/sessions/${id}`);
  const element = await page.locator('iframe').elementHandle({ timeout: 60000 });
  const frame = await eventually(`the viewer's frame of ${id}`, 60000, () => element.contentFrame());
  await frame.waitForLoadState('load');
  return frame;
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) }).catch((err) => console.error(`# screenshot ${name}: ${err.message}`));
}

/** The victim opened the two ways users open sessions; returns its top-level page and URL. */
async function openVictim(context, mode) {
  const viewer = await context.newPage();
  const frame = await viewerFrame(viewer, victim.id);
  await frame.getByText(VICTIM_TEXT).first().waitFor({ timeout: 30000 });
  await shot(viewer, `${mode}-1-victim-in-viewer`);
  const page = await context.newPage();
  await page.goto(await platform.connectUrl(victim.id));
  await page.getByText(VICTIM_TEXT).first().waitFor({ timeout: 30000 });
  // The URL the browser ended at: the ticket has been traded for the session's cookie.
  return { page, url: page.url() };
}

/** What the attack page needs: where the victim is, the UI's origin, the attacker's own tokens. */
async function attackParameters(victimUrl) {
  const plant = [];
  for (let i = 0; i < PLANTED_COOKIES.length; i++) plant.push(await platform.refreshToken(attacker.username, attacker.password));
  return { victim: victimUrl, ui: platform.ui, nonce: crypto.randomBytes(6).toString('hex'), plant };
}

/** Opens the hostile session through the UI's viewer page: the page attacks from inside its iframe. */
async function attackFromViewer(context, params) {
  const page = await context.newPage();
  const frame = await viewerFrame(page, hostile.id);
  await frame.waitForFunction(() => typeof window.hostile?.run === 'function', undefined, { timeout: 30000 });
  const results = await frame.evaluate((p) => window.hostile.run(p), params);
  return { page, frame, results };
}

/** Opens the hostile session at top level with a fresh connect URL: no frame, no sandbox. */
async function attackAtTopLevel(context, params) {
  const page = await context.newPage();
  const fragment = new URLSearchParams({ ...params, plant: params.plant.join(',') });
  await page.goto(`${await platform.connectUrl(hostile.id)}#${fragment}`);
  await page.waitForFunction(() => window.__hostileDone === true, undefined, { timeout: ATTACK_TIMEOUT_MS });
  return { page, frame: page.mainFrame(), results: await page.evaluate(() => window.__results) };
}

/** The text of the hostile page's own frame of the victim, as the browser rendered it. */
async function framedVictimText(frame) {
  const element = await frame.$('#victim-frame');
  const inner = await element?.contentFrame();
  if (!inner) return '';
  return inner.evaluate(() => document.body?.innerText ?? '').catch(() => '');
}

/** Requests the victim app received, asked from the victim's own page (it holds the cookie). */
async function victimRequests(page) {
  const log = await page.evaluate(async () => {
    const reply = await fetch('requests', { cache: 'no-store' });
    return { status: reply.status, text: await reply.text() };
  });
  assert.equal(log.status, 200, `the victim image must report its requests (GET requests): ${log.status} ${log.text.slice(0, 200)}`);
  const requests = JSON.parse(log.text);
  // The log must show the victim page's own load through the proxy, or a log that misses requests
  // would prove nothing.
  assert.ok(
    requests.some((r) => r.method === 'GET' && r.target.split('?')[0] === '/'),
    `the victim's request log does not show its own page load: ${JSON.stringify(requests.slice(0, 5))}`,
  );
  return requests;
}

/** Whether a service worker controls the victim when the viewer opens it after the attack. */
async function victimController(context, url, mode) {
  const page = await context.newPage();
  await page.goto(url);
  await page.getByText(VICTIM_TEXT).first().waitFor({ timeout: 30000 });
  await shot(page, `${mode}-4-victim-reopened`);
  const controller = await page.evaluate(() => navigator.serviceWorker?.controller?.scriptURL ?? null);
  await page.close();
  return controller;
}

/** Who the UI's own refresh (on load) signs in, with whatever cookies the browser now sends. */
async function uiRefresh(context, mode) {
  const page = await context.newPage();
  const refreshed = page.waitForResponse((r) => r.url() === `${platform.ui}/api/v1/auth/refresh` && r.request().method() === 'POST');
  await page.goto(`${platform.ui}/`);
  const reply = await refreshed;
  const body = await reply.json().catch(() => null);
  await shot(page, `${mode}-5-ui-after-attack`);
  await page.close();
  return { status: reply.status(), username: body?.user?.username ?? null };
}

/** Runs the whole attack in a fresh browser profile and gathers what every test looks at. */
async function attack(mode, open) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  try {
    await signIn(context);
    const target = await openVictim(context, mode);
    const params = await attackParameters(target.url);
    const popups = [];
    context.on('page', (page) => popups.push(page));
    const run = await open(context, params);
    const text = await framedVictimText(run.frame);
    await shot(run.page, `${mode}-2-hostile`);
    // A form posted to a new window: its request is sent once the window has loaded.
    for (const popup of popups.filter((p) => p !== run.page)) {
      await popup.waitForLoadState('load').catch(() => undefined);
      await shot(popup, `${mode}-3-hostile-popup`);
      await popup.close();
    }
    const requests = await victimRequests(target.page);
    const controller = await victimController(context, target.url, mode);
    const cookies = await context.cookies([
      `${platform.ui}/`,
      `${platform.ui}/api/v1/auth/refresh`,
      `${platform.ui}/api/v1/auth/logout`,
    ]);
    const audit = await platform.auditBetween(run.results.startedAt, run.results.finishedAt);
    const refresh = await uiRefresh(context, mode);
    const evidence = { mode, victim: target.url, results: run.results, framedVictimText: text, requests, controller, cookies, audit, refresh };
    fs.writeFileSync(path.join(ARTIFACTS, `${mode}-evidence.json`), JSON.stringify(evidence, null, 2));
    return { ...evidence, params };
  } finally {
    await context.close();
  }
}

const MODES = [
  ['viewer', 'framed by the UI viewer page', attackFromViewer],
  ['top-level', 'at top level (a fresh connect URL, no sandbox)', attackAtTopLevel],
];

for (const [mode, description, open] of MODES) {
  describe(`the hostile session ${description}`, () => {
    let seen;
    before(async () => {
      seen = await attack(mode, open);
    }, { timeout: 300000 });

    /** The attack page's own verdict, with what happened as the failure message. */
    const pageSays = (name) => {
      const outcome = seen.results[name];
      assert.ok(outcome, `the attack page published no result for ${name}`);
      assert.equal(outcome.blocked, true, `${name} succeeded: ${outcome.detail}`);
    };
    /** The attack ran to its end (sent, or refused by the browser), without a bug of the page. */
    const ran = (name) => {
      const outcome = seen.results[name];
      assert.ok(outcome, `the attack page published no result for ${name}`);
      assert.notEqual(outcome.blocked, 'error', `${name}: ${outcome.detail}`);
      return outcome;
    };
    /** The request the attack aimed at the victim's app (its path names the run's nonce) did not reach it. */
    const victimDidNotGet = (name, marker) => {
      ran(name);
      const hits = seen.requests.filter((r) => r.target.includes(`${marker}-${seen.params.nonce}`));
      assert.deepEqual(hits, [], `${name} reached the victim app`);
    };
    const auditShowsNo = (name, actions) => {
      const { at } = ran(name);
      const events = seen.audit.filter((e) => actions.includes(e.action) && Date.parse(e.time) >= at[0] && Date.parse(e.time) <= at[1]);
      assert.deepEqual(events.map((e) => `${e.action} ${e.result} ${e.actor_name}`), [], `${name} reached the API with the viewer's cookie`);
    };

    test('fetch with credentials cannot read the victim', () => pageSays('fetch-read'));
    test('a blind no-cors POST does not reach the victim', () => victimDidNotGet('fetch-nocors-post', '/echo/hostile-nocors'));
    test('a form POST into a frame does not reach the victim', () => victimDidNotGet('form-post-frame', '/echo/hostile-form-frame'));
    test('a form POST into a new window does not reach the victim', () => victimDidNotGet('form-post-window', '/echo/hostile-form-window'));
    test('a WebSocket to the victim does not open', () => pageSays('websocket'));
    test("an iframe of the victim: its document is not readable", () => pageSays('iframe-read'));
    test('an iframe of the victim: the victim does not render inside the hostile page', () => {
      assert.ok(!seen.framedVictimText.includes(VICTIM_TEXT), `the victim rendered in the hostile page's frame: ${seen.framedVictimText.slice(0, 120)}`);
    });
    test("a service worker cannot read the victim", () => pageSays('sw-read'));
    test("a service worker does not see the victim's navigations", () => pageSays('sw-intercept'));
    test('no service worker controls the victim when the viewer opens it again', () => {
      assert.equal(seen.controller, null, `the victim page is controlled by ${seen.controller}`);
    });
    test("the API's session list is not readable with the viewer's cookies", () => pageSays('api-read-sessions'));
    test('a CORS refresh with the CSRF header mints no readable token', () => pageSays('api-refresh-cors'));
    test('a blind no-cors refresh mints no token', () => auditShowsNo('api-refresh-nocors', ['auth.refresh', 'auth.refresh_reuse']));
    test('a blind no-cors logout does not sign the viewer out', () => auditShowsNo('api-logout-nocors', ['auth.logout']));
    PLANTED_COOKIES.forEach((name, i) => {
      test(`a planted refresh cookie (${name}) does not reach the UI's origin`, () => {
        const token = seen.params.plant[i];
        const { detail } = ran(name);
        const planted = seen.cookies.filter((c) => c.value === token);
        assert.deepEqual(planted.map((c) => `${c.name}; Domain=${c.domain}; Path=${c.path}`), [], `${name} was planted for the UI (${detail})`);
      });
    });
    test("the UI's own refresh still signs in the viewer, not the attacker", () => {
      assert.equal(seen.refresh.status, 200, 'the viewer was signed out');
      assert.equal(seen.refresh.username, 'admin', `the UI signed in ${seen.refresh.username} instead of the viewer`);
    });
  });
}
