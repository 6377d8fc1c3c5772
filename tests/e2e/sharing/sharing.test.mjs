// Sharing a session, in two headless Chromium browsers: the built `streamspace` binary (control
// plane + Docker agent), the real Chromium session image, one browser for a viewer and one for a
// collaborator, each running the Selkies web client through the session proxy as a user would.
//
//   node --test sharing.test.mjs        (or ./run.sh)
//
// Environment: STREAMSPACE_BIN (the binary), STREAMSPACE_ARTIFACTS (where PNGs and diagnostics
// go), CHROMIUM (the browser, default /usr/bin/chromium).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

import { ARTIFACTS, Api, Platform, eventually, requireDocker, sleep, startViewerServer } from '../streaming/harness.mjs';
import { decodePng } from '../streaming/png.mjs';
import { launchOptions, reloadOnNetworkChange } from '../chromium.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PROBE = path.join(HERE, '..', 'streaming', 'page-probe.js');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const VIEWPORT = { width: 1280, height: 720 };
const PASSWORD = 'password-e2e-sharing';
/** Pages typed into the session's Chromium: one colour all over, so a screenshot tells them apart. */
const page = (colour) => `data:text/html,<body bgcolor=${colour}><h1>typed by a guest</h1>`;
/** A guest cut off must lose the stream within this (ADR 0016: a change takes effect within seconds). */
const CUT_WITHIN_MS = 5000;

let platform;
let ui;
const browsers = [];
const dirs = [];
let failed = false;

async function cleanUp() {
  for (const browser of browsers.splice(0)) await browser.close().catch(() => {});
  if (platform) await platform.stop({ keep: failed }).catch((err) => console.error(`# cleanup: ${err.message}`));
  platform = undefined;
  if (ui) await ui.close().catch(() => {});
  ui = undefined;
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    failed = true;
    cleanUp().finally(() => process.exit(130));
  });
}

/** A browser of its own (profile, cookies, process), as a second person's would be. */
async function launchBrowser() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'streamspace-e2e-sharing-'));
  dirs.push(dir);
  const browser = await chromium.launchPersistentContext(dir, {
    ...(await launchOptions(chromium, CHROMIUM)),
    viewport: VIEWPORT,
  });
  await browser.addInitScript({ path: PROBE });
  browsers.push(browser);
  return browser;
}

/** An org with the given members (all `member`), each signed in. */
async function orgWith(name, usernames) {
  const org = await platform.admin.ok('POST', '/api/v1/orgs', { name });
  const people = {};
  for (const username of usernames) {
    await platform.admin.ok('POST', '/api/v1/users', { username, password: PASSWORD, role: 'member', org_id: org.id });
    people[username] = await Api.login(platform.api, username, PASSWORD);
  }
  return people;
}

/** The share of pixels of `png` for which `match([r, g, b])` holds. */
function colourShare(png, match) {
  const image = decodePng(png);
  let hits = 0;
  const pixels = image.width * image.height;
  for (let i = 0; i < pixels; i++) {
    const o = i * image.channels;
    if (match([image.data[o], image.data[o + 1], image.data[o + 2]])) hits++;
  }
  return hits / pixels;
}
const red = ([r, g, b]) => r > 200 && g < 80 && b < 80;
const blue = ([r, g, b]) => b > 200 && r < 80 && g < 80;

/**
 * One guest's browser tab on the session: the connect URL the API gives them, with what the page
 * sent and received on its WebSockets.
 */
async function join(browser, api, id, secrets) {
  const connect = await api.ok('POST', `/api/v1/sessions/${id}/connect`, {});
  const tab = await browser.newPage();
  const seen = { sockets: [], console: [], leaks: [], sent: [] };
  const watch = (where, data) => {
    for (const [name, secret] of Object.entries(secrets)) if (data && data.includes(secret)) seen.leaks.push(`${name} in ${where}`);
  };
  tab.on('console', (m) => seen.console.push(`${m.type()}: ${m.text()}`));
  tab.on('response', async (r) => watch(`${r.url()}`, `${r.url()} ${JSON.stringify(await r.allHeaders().catch(() => ({})))}`));
  tab.on('websocket', (ws) => {
    const socket = { url: ws.url(), closedAt: 0 };
    seen.sockets.push(socket);
    watch('a WebSocket URL', ws.url());
    ws.on('framesent', (f) => {
      seen.sent.push(String(f.payload).slice(0, 40));
      watch('a WebSocket message from the browser', f.payload);
    });
    ws.on('framereceived', (f) => watch('a WebSocket message to the browser', f.payload));
    ws.on('close', () => {
      socket.closedAt = Date.now();
    });
  });
  // Docker changes the host's interfaces as containers come and go; Chromium drops the loads in flight.
  const recover = reloadOnNetworkChange(tab, () => tab.mainFrame());
  await tab.goto(connect.url, { waitUntil: 'load' });
  await eventually('frames decoded in the guest\'s browser', 45000, async () => {
    await recover();
    const frames = await tab.evaluate(() => window.__ssFrames.read());
    return frames.decoded >= 5 || frames.presented >= 5;
  }, 100);
  return { tab, seen, role: connect.role, media: () => seen.sockets.filter((s) => s.url.endsWith('/api/websockets')) };
}

/** Types a page of `colour` into the session's Chromium from a guest's tab. */
async function typePage(guest, colour) {
  await guest.tab.mouse.click(VIEWPORT.width / 2, VIEWPORT.height * 0.75);
  await guest.tab.keyboard.press('Control+l');
  // The session's address bar takes a moment to take focus: a key typed sooner goes to the page.
  await sleep(300);
  await guest.tab.keyboard.type(page(colour), { delay: 15 });
  await guest.tab.keyboard.press('Enter');
}

/** The session's display as the streamer captures it (a PNG), fetched by a guest's tab with its cookie. */
async function screenshot(tab, id) {
  const url = `${platform.originOf(id)}/api/v1/http/${id}/api/screenshot`;
  const base64 = await tab.evaluate(async (target) => {
    const bytes = new Uint8Array(await (await fetch(target)).arrayBuffer());
    let binary = '';
    for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(binary);
  }, url);
  return Buffer.from(base64, 'base64');
}

async function droppedViewerFrames() {
  const text = await (await fetch(`${platform.api}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('streamspace_proxy_viewer_frames_dropped_total'));
  return line ? Number(line.split(' ').pop()) : 0;
}

before(async () => {
  requireDocker(['streamspace/chromium:latest']);
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM)`);
  ui = await startViewerServer(1, VIEWPORT);
  platform = await Platform.start({ publicUrl: ui.origins[0] });
  fs.mkdirSync(ARTIFACTS, { recursive: true });
});

after(cleanUp);

test('a viewer watches and cannot type, a collaborator types, revoking ends their streams, another org sees nothing', { timeout: 240000 }, async () => {
  const acme = await orgWith('acme', ['owner', 'watcher', 'helper']);
  const globex = await orgWith('globex', ['outsider']);
  const { owner, watcher, helper } = acme;
  const session = await owner.ok('POST', '/api/v1/sessions', { template: 'chromium' });
  const id = session.id;
  platform.sessions.add(id);
  const key = fs.readFileSync(path.join(platform.dir, 'session.key'));
  const hmac = (purpose) => crypto.createHmac('sha256', key).update(`${purpose}:${id}`).digest('hex');
  const secrets = Object.fromEntries(
    ['selkies-master', 'selkies-viewer', 'selkies-collaborator', 'selkies-watcher'].map((p) => [p, hmac(p)]),
  );
  let viewer;
  let collaborator;
  try {
    await platform.waitForState(id, 'running', 120000);

    // The owner invites a viewer by name and makes a link for collaborators; the link's token is
    // shown once, in the URL's fragment.
    const invitation = await owner.ok('POST', `/api/v1/sessions/${id}/shares`, { user: 'watcher', role: 'viewer' });
    assert.equal(invitation.kind, 'user');
    const link = await owner.ok('POST', `/api/v1/sessions/${id}/shares`, { role: 'collaborator', expires_in_minutes: 30 });
    assert.equal(link.kind, 'link');
    const token = new URL(link.url).hash.slice(1);
    assert.ok(token.startsWith('sss_'), link.url);

    // Another org's user sees nothing of it: not the session, not through the link.
    const outsider = globex.outsider;
    assert.equal((await outsider.call('GET', `/api/v1/sessions/${id}`)).status, 404);
    assert.equal((await outsider.call('POST', `/api/v1/sessions/${id}/connect`, {})).status, 404);
    assert.equal((await outsider.call('POST', '/api/v1/shares/join', { token })).status, 404);
    assert.equal((await outsider.call('POST', `/api/v1/sessions/${id}/shares`, { user: 'outsider', role: 'viewer' })).status, 404);
    assert.equal((await owner.call('POST', `/api/v1/sessions/${id}/shares`, { user: 'outsider', role: 'viewer' })).status, 404, 'only members of the org are invited');
    // A member of the org without a share cannot open it either, until they join through the link.
    assert.equal((await helper.call('POST', `/api/v1/sessions/${id}/connect`, {})).status, 404);
    assert.deepEqual(await helper.ok('POST', '/api/v1/shares/join', { token }), { session_id: id, role: 'collaborator' });
    assert.deepEqual((await watcher.ok('GET', '/api/v1/shared-sessions')).map((s) => [s.session.id, s.role]), [[id, 'viewer']]);

    // Two browsers: the viewer's and the collaborator's. Both see frames.
    const droppedBefore = await droppedViewerFrames();
    viewer = await join(await launchBrowser(), watcher, id, secrets);
    collaborator = await join(await launchBrowser(), helper, id, secrets);
    assert.equal(viewer.role, 'viewer');
    assert.equal(collaborator.role, 'collaborator');

    // The owner sees who is watching.
    const watching = await eventually('two people watching', 10000, async () => {
      const shares = await owner.ok('GET', `/api/v1/sessions/${id}/shares`);
      return shares.watching.length === 2 ? shares.watching : undefined;
    });
    assert.deepEqual(watching.map((w) => [w.username, w.role]).sort(), [['helper', 'collaborator'], ['watcher', 'viewer']]);

    // The viewer types a red page: their browser sends the keys, the proxy keeps them from the
    // streamer, and the screen never turns red.
    const before = await screenshot(collaborator.tab, id);
    assert.ok(colourShare(before, red) < 0.05 && colourShare(before, blue) < 0.05, 'the session starts neither red nor blue');
    await typePage(viewer, 'red');
    // Selkies' client, told it is a viewer, sends no key events of its own; what it still sends that
    // drives something (`kr`, `cr`) the proxy drops.
    const dropped = await eventually('the viewer\'s key events dropped by the proxy', 10000, async () => {
      const now = await droppedViewerFrames();
      return now - droppedBefore >= 1 ? now - droppedBefore : undefined;
    });
    console.log(`# the proxy kept ${dropped} of the viewer's frames from the streamer`);
    // A POST from the viewer's page (an upload, a command) is refused before the streamer.
    const post = await viewer.tab.evaluate(async (target) => (await fetch(target, { method: 'POST', body: 'x' })).status,
      `${platform.originOf(id)}/api/v1/http/${id}/api/upload`);
    assert.equal(post, 403);

    // The collaborator types a blue page, and it shows; never the viewer's red one in between.
    await typePage(collaborator, 'blue');
    let redSeen = 0;
    const typed = await eventually('the collaborator\'s page on the session display', 30000, async () => {
      const shot = await screenshot(collaborator.tab, id);
      redSeen = Math.max(redSeen, colourShare(shot, red));
      return colourShare(shot, blue) > 0.3 ? shot : undefined;
    }, 300);
    fs.writeFileSync(path.join(ARTIFACTS, 'sharing-collaborator-typed.png'), typed);
    assert.ok(redSeen < 0.05, `the viewer's typing never reached the session (red share ${redSeen})`);
    // The viewer watches it happen: their own browser shows the blue page.
    await eventually('the blue page in the viewer\'s browser', 15000, async () => {
      const shot = await viewer.tab.screenshot({ path: path.join(ARTIFACTS, 'sharing-viewer.png') });
      return colourShare(shot, blue) > 0.3;
    }, 300);

    // Revoking the viewer's invitation ends their stream within seconds, and they cannot come back.
    const revokedAt = Date.now();
    assert.equal((await owner.call('DELETE', `/api/v1/sessions/${id}/shares/${invitation.id}`)).status, 204);
    await eventually('the viewer\'s stream cut', CUT_WITHIN_MS, () => viewer.media().every((s) => s.closedAt > 0), 50);
    console.log(`# viewer cut ${Math.max(...viewer.media().map((s) => s.closedAt)) - revokedAt} ms after the revocation`);
    assert.equal((await watcher.call('POST', `/api/v1/sessions/${id}/connect`, {})).status, 404);
    const shotAfter = await viewer.tab.evaluate(async (target) => (await fetch(target)).status,
      `${platform.originOf(id)}/api/v1/http/${id}/api/screenshot`);
    assert.equal(shotAfter, 403, 'the viewer\'s session cookie no longer opens anything');
    assert.ok(collaborator.media().some((s) => s.closedAt === 0), 'the collaborator keeps streaming');

    // Revoking the link ends the stream of whoever joined through it.
    const cutAt = Date.now();
    assert.equal((await owner.call('DELETE', `/api/v1/sessions/${id}/shares/${link.id}`)).status, 204);
    await eventually('the collaborator\'s stream cut', CUT_WITHIN_MS, () => collaborator.media().every((s) => s.closedAt > 0), 50);
    console.log(`# collaborator cut ${Math.max(...collaborator.media().map((s) => s.closedAt)) - cutAt} ms after the link was revoked`);
    assert.equal((await helper.call('POST', '/api/v1/shares/join', { token })).status, 404, 'a revoked link is gone');
    assert.deepEqual((await owner.ok('GET', `/api/v1/sessions/${id}/shares`)).shares, []);

    // Every step is in the audit log, and no browser ever held a streamer token.
    const audit = await platform.admin.ok('GET', `/api/v1/audit?target=session:${id}&limit=200`);
    const actions = audit.items.filter((e) => e.target === `session:${id}`).map((e) => e.action);
    for (const action of ['session.share', 'session.share_join', 'session.share_revoke']) {
      assert.ok(actions.includes(action), `${action} audited: ${actions}`);
    }
    assert.deepEqual([...viewer.seen.leaks, ...collaborator.seen.leaks], []);
  } catch (err) {
    failed = true;
    for (const [who, guest] of [['viewer', viewer], ['collaborator', collaborator]]) {
      if (!guest) continue;
      await guest.tab.screenshot({ path: path.join(ARTIFACTS, `sharing-${who}-failure.png`) }).catch(() => {});
      console.error(`# ${who}: sockets ${JSON.stringify(guest.seen.sockets)}\n${guest.seen.console.slice(-30).join('\n')}`);
    }
    console.error(Platform.containerLogs(id, 60));
    throw err;
  }
});
