// Live streaming in a real browser, through the StreamSpace session proxy: the built
// `streamspace` binary (control plane + Docker agent), the real session images, headless Chromium
// running the Selkies web client exactly as a user's browser would.
//
//   node --test streaming.test.mjs        (or ./run.sh)
//
// Environment: STREAMSPACE_BIN (the binary), STREAMSPACE_ARTIFACTS (where PNGs and the timings
// table go), CHROMIUM (the browser, default /usr/bin/chromium), STREAMSPACE_E2E_IMAGES (which
// images to time, default "chromium,firefox,desktop,vscode").

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

import {
  ARTIFACTS,
  BIN,
  Platform,
  eventually,
  loopbackGet,
  requireDocker,
  sleep,
  startViewerServer,
  upgradeStatus,
} from './harness.mjs';
import { launchOptions, reloadOnNetworkChange } from '../chromium.mjs';
import { changedShare, decodePng, pixelStats } from './png.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const IMAGES = (process.env.STREAMSPACE_E2E_IMAGES || 'chromium,firefox,desktop,vscode').split(',').filter(Boolean);
const VIEWPORT = { width: 1280, height: 720 };
const FIRST_FRAME_TIMEOUT = 45000;
/** What gets typed into the session's Chromium: a page that is red all over and keeps moving. */
const TYPED_URL = 'data:text/html,<body bgcolor=red><marquee><h1>typed through StreamSpace</h1></marquee>';

let platform;
let browser;
let viewer;
let userDataDir;
let failed = false;
const timings = [];

fs.mkdirSync(ARTIFACTS, { recursive: true });
for (const name of fs.readdirSync(ARTIFACTS)) {
  if (/^streaming-.*(-failure\.png|-diagnostics\.txt)$/.test(name)) fs.rmSync(path.join(ARTIFACTS, name));
}

async function cleanUp() {
  if (browser) await browser.close().catch(() => {});
  browser = undefined;
  const keep = failed || process.env.STREAMSPACE_E2E_KEEP === '1';
  if (platform) await platform.stop({ keep }).catch((err) => console.error(`# cleanup: ${err.message}`));
  platform = undefined;
  if (viewer) await viewer.close().catch(() => {});
  viewer = undefined;
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
  userDataDir = undefined;
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    console.error(`# ${signal}: stopping sessions and processes`);
    failed = true;
    cleanUp().finally(() => process.exit(130));
  });
}

before(async () => {
  requireDocker(IMAGES.map((image) => `streamspace/${image}:latest`));
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM)`);
  // Two stand-ins for the web UI: the first is the platform's public URL, the second another origin.
  viewer = await startViewerServer(2, VIEWPORT);
  platform = await Platform.start({ publicUrl: viewer.origins[0] });
  console.log(`# control plane ${platform.api}, session origin ${platform.sessionOrigin}, logs in ${platform.dir}`);
  console.log(`# binary ${BIN}`);
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'streamspace-e2e-chromium-'));
  browser = await chromium.launchPersistentContext(userDataDir, {
    ...(await launchOptions(chromium, CHROMIUM)),
    viewport: VIEWPORT,
  });
  await browser.addInitScript({ path: path.join(HERE, 'page-probe.js') });
});

after(async () => {
  if (timings.length) {
    const table = timingsTable(timings);
    console.log(`\n${table}`);
    fs.writeFileSync(path.join(ARTIFACTS, 'streaming-times.md'), table);
  }
  await cleanUp();
});

/** Starts a session from `template`, opens it in a new tab and waits for its first frame. */
async function openSession(template) {
  const postedAt = Date.now();
  const { session } = await platform.createSession(template);
  const id = session.id;
  const view = { id, template, postedAt, console: [], sockets: [], page: undefined, leaks: [] };
  view.secrets = platform.streamerSecrets(id);
  const watchFor = (where, data) => {
    for (const [name, secret] of Object.entries(view.secrets)) {
      if (data && data.includes(secret)) view.leaks.push(`${name} in ${where}`);
    }
  };
  view.watchFor = watchFor;
  try {
    await platform.waitForState(id, 'running', 120000);
    view.runningAt = Date.now();
    const url = await platform.connectUrl(id);
    assert.ok(url.startsWith(`${platform.originOf(id)}/api/v1/http/${id}/?ticket=`), url);

    const page = await browser.newPage();
    view.page = page;
    page.on('console', (m) => view.console.push(`${new Date().toISOString()} ${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => view.console.push(`pageerror: ${e.message}`));
    page.on('response', async (r) => {
      if (r.status() >= 400) view.console.push(`HTTP ${r.status()} ${r.url()}`);
      watchFor(`the URL or headers of ${r.url()}`, `${r.url()} ${JSON.stringify(await r.allHeaders().catch(() => ({})))}`);
      if (/html|javascript|json|text/.test(r.headers()['content-type'] || '')) {
        watchFor(`the body of ${r.url()}`, await r.text().catch(() => ''));
      }
    });
    page.on('websocket', (ws) => {
      const socket = { url: ws.url(), openedAt: Date.now(), closedAt: 0, received: 0, bytes: 0, errors: [] };
      view.sockets.push(socket);
      watchFor('a WebSocket URL', ws.url());
      ws.on('framereceived', (f) => {
        socket.received++;
        socket.bytes += f.payload.length;
        watchFor('a WebSocket message to the browser', f.payload);
      });
      ws.on('framesent', (f) => watchFor('a WebSocket message from the browser', f.payload));
      ws.on('socketerror', (e) => socket.errors.push(String(e)));
      ws.on('close', () => {
        socket.closedAt = Date.now();
      });
    });
    const recover = reloadOnNetworkChange(page, () => page.mainFrame());
    await page.goto(url, { waitUntil: 'load' });
    view.loadedAt = Date.now();
    assert.equal(page.url(), `${platform.originOf(id)}/api/v1/http/${id}/`, 'the ticket is traded for a cookie and leaves the URL');

    const first = await eventually('the first video frame in the browser', FIRST_FRAME_TIMEOUT, async () => {
      await recover();
      const frames = await page.evaluate(() => window.__ssFrames.read());
      return frames.firstPresentedAt || frames.firstDecodedAt ? frames : undefined;
    }, 50);
    view.firstDecodedAt = first.firstDecodedAt || first.firstPresentedAt;
    // Presentation follows decoding by a frame or two (when the client uses a <video> sink).
    const shown = await eventually('the first presented frame', 5000, async () => {
      const frames = await page.evaluate(() => window.__ssFrames.read());
      return frames.firstPresentedAt ? frames : undefined;
    }, 50).catch(() => first);
    view.firstPresentedAt = shown.firstPresentedAt;
    const socket = view.sockets.find((s) => s.url.endsWith('/api/websockets'));
    view.wsOpenedAt = socket ? socket.openedAt : 0;
    return view;
  } catch (err) {
    await diagnose(view, err);
    await platform.stopSession(id).catch(() => {});
    if (view.page) await view.page.close().catch(() => {});
    throw err;
  }
}

async function closeSession(view) {
  if (view.page) await view.page.close().catch(() => {});
  await platform.stopSession(view.id);
}

/** Neither streamer credential reached the browser: URLs, headers, bodies, messages, storage. */
async function assertNoLeaks(view, frame) {
  if (frame) {
    view.watchFor(
      'the page state',
      await frame.evaluate(() =>
        JSON.stringify({
          href: location.href,
          cookie: document.cookie,
          local: { ...localStorage },
          session: { ...sessionStorage },
          html: document.documentElement.outerHTML,
        }),
      ),
    );
  }
  assert.deepEqual(view.leaks, [], 'the browser never holds a streamer token');
}

/** Frames counted in the page over `ms` (and the bitrate of `socket`, when given). */
async function framesOver(page, ms, socket) {
  const bytes = socket ? socket.bytes : 0;
  const start = await page.evaluate(() => window.__ssFrames.read());
  await sleep(ms);
  const end = await page.evaluate(() => window.__ssFrames.read());
  const seconds = (end.now - start.now) / 1000;
  return {
    mbps: socket ? Math.round(((socket.bytes - bytes) * 8) / 1e6 / seconds * 100) / 100 : undefined,
    start,
    end,
    seconds,
    presented: end.presented - start.presented,
    decoded: end.decoded - start.decoded,
    fps: Math.round((Math.max(end.presented - start.presented, end.decoded - start.decoded) / seconds) * 10) / 10,
  };
}

/**
 * Opens a page on `origin` (a stand-in for the web UI, see startViewerServer) that frames a fresh
 * connect URL of the session the way ui/src/features/sessions/components/SessionViewerPage.tsx does,
 * and waits for frames in the iframe, or (`expectBlocked`) for the browser to refuse the frame.
 */
async function embed(view, origin, { expectBlocked = false } = {}) {
  const url = await platform.connectUrl(view.id);
  const page = await browser.newPage();
  const blocked = [];
  page.on('console', (m) => {
    view.console.push(`[embed ${origin}] ${m.type()}: ${m.text()}`);
    if (/frame-ancestors|Refused to frame/i.test(m.text())) blocked.push(m.text());
  });
  page.on('response', async (r) => view.watchFor(`${r.url()} (embedded)`, `${r.url()} ${JSON.stringify(await r.allHeaders().catch(() => ({})))}`));
  page.on('websocket', (ws) => {
    view.watchFor('a WebSocket URL (embedded)', ws.url());
    ws.on('framereceived', (f) => view.watchFor('a WebSocket message to the browser (embedded)', f.payload));
    ws.on('framesent', (f) => view.watchFor('a WebSocket message from the browser (embedded)', f.payload));
  });
  const host = `${origin}/sessions/${view.id}?src=${encodeURIComponent(url)}`;
  await page.goto(host, { waitUntil: 'load' });
  const sessionPage = `${platform.originOf(view.id)}/api/v1/http/${view.id}/`;
  if (expectBlocked) {
    const reason = await eventually(`${origin} refused to frame the session`, 10000, async () => {
      if (blocked.length) return blocked[0];
      const child = page.frames().find((f) => f !== page.mainFrame());
      if (child && child.url().startsWith('chrome-error://')) return child.url();
      return undefined;
    }, 100);
    const child = page.frames().find((f) => f.url() === sessionPage);
    const frames = child ? await child.evaluate(() => window.__ssFrames.read()).catch(() => null) : null;
    assert.ok(!frames || !frames.decoded, `no frames in a page ${origin} frames: ${JSON.stringify(frames)}`);
    return { page, reason };
  }
  const frame = await eventually('the session page in the iframe', 15000, async () => {
    const child = page.frames().find((f) => f.url() === sessionPage);
    return child && (await child.evaluate(() => window.__ssFrames.read().firstDecodedAt)) ? child : undefined;
  }, 100);
  return { page, frame };
}

/**
 * The session's display as the streamer sees it, fetched through the proxy by the session's own page
 * (its origin, its cookie), as the browser would.
 */
async function serverScreenshot(view) {
  const url = `${platform.originOf(view.id)}/api/v1/http/${view.id}/api/screenshot`;
  const reply = await view.page.evaluate(async (target) => {
    const response = await fetch(target);
    const bytes = new Uint8Array(await response.arrayBuffer());
    let binary = '';
    for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return { status: response.status, type: response.headers.get('content-type') || '', base64: btoa(binary) };
  }, url);
  const body = Buffer.from(reply.base64, 'base64');
  assert.equal(reply.status, 200, `GET ${url} with the session cookie: ${reply.status} ${body.toString().slice(0, 200)}`);
  assert.match(reply.type, /image\/png/);
  return { png: body, image: decodePng(body) };
}

/** Writes everything that explains a failure next to the artifacts and to the test output. */
async function diagnose(view, err) {
  failed = true;
  const lines = [`# ${view.template} session ${view.id}: ${err && err.message}`];
  if (view.page) {
    try {
      lines.push(`frames: ${JSON.stringify(await view.page.evaluate(() => window.__ssFrames && window.__ssFrames.read()))}`);
      await view.page.screenshot({ path: path.join(ARTIFACTS, `streaming-${view.template}-failure.png`) });
    } catch (e) {
      lines.push(`(page not readable: ${e.message})`);
    }
  }
  lines.push(`websockets: ${JSON.stringify(view.sockets)}`);
  lines.push('--- browser console (last 60) ---', ...view.console.slice(-60));
  lines.push(`--- docker logs ss-${view.id} (last 60) ---`, Platform.containerLogs(view.id, 60));
  try {
    const serverLog = fs.readFileSync(platform.serverLog, 'utf8').split('\n');
    lines.push('--- control plane log (proxy/streamer, last 30) ---');
    lines.push(...serverLog.filter((l) => /proxy|streamer|upstream|WARN|ERROR/i.test(l)).slice(-30));
  } catch {
    // no log yet
  }
  const text = lines.join('\n');
  fs.writeFileSync(path.join(ARTIFACTS, `streaming-${view.template}-diagnostics.txt`), `${text}\n`);
  console.error(text);
}

function record(view, frames) {
  const since = (t) => (t ? ((t - view.postedAt) / 1000).toFixed(1) : 'n/a');
  timings.push({
    template: view.template,
    running: since(view.runningAt),
    loaded: since(view.loadedAt),
    socket: since(view.wsOpenedAt),
    decoded: since(view.firstDecodedAt),
    presented: since(view.firstPresentedAt),
    fps: frames ? frames.fps : 'n/a',
    mbps: frames && frames.mbps !== undefined ? frames.mbps : 'n/a',
  });
}

function timingsTable(rows) {
  const load = os.loadavg().map((l) => l.toFixed(1)).join(' ');
  return [
    '# Time to first frame through the StreamSpace session proxy',
    '',
    `Seconds from \`POST /api/v1/sessions\`; headless Chromium ${VIEWPORT.width}x${VIEWPORT.height}; ` +
      `${os.cpus().length} cores, load average ${load}; ${new Date().toISOString()}.`,
    '',
    '| Image | running | page loaded | WebSocket open | first decoded frame | first presented frame | fps over 2 s | Mbit/s |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.template} | ${r.running} | ${r.loaded} | ${r.socket} | ${r.decoded} | ${r.presented} | ${r.fps} | ${r.mbps} |`,
    ),
    '',
    'Columns: seconds since `POST /api/v1/sessions` until the API reports `running`, the session page has',
    'loaded (connect URL, ticket redirect, client), its media WebSocket opened, WebCodecs output the first',
    'frame of the stream, and the <video> presented it; then frames per second and the media WebSocket',
    'bitrate over the next 2 s (initial screen of each image).',
    '',
  ].join('\n');
}

test('chromium: video decoded through the proxy, typed input reaches the app, the page shows it', { timeout: 150000 }, async (t) => {
  if (!IMAGES.includes('chromium')) return t.skip('chromium not in STREAMSPACE_E2E_IMAGES');
  const view = await openSession('chromium');
  let frames;
  try {
    const { page, id } = view;

    // The browser reaches the streamer only through the proxy, and never holds a streamer token.
    const media = view.sockets.filter((s) => s.url.includes('/api/websockets'));
    assert.equal(media.length, 1, `one media WebSocket: ${JSON.stringify(view.sockets)}`);
    assert.equal(media[0].url, `${platform.originOf(id).replace('http://', 'ws://')}/api/v1/http/${id}/api/websockets`);
    const shotUrl = `${platform.originOf(id)}/api/v1/http/${id}/api/screenshot`;
    assert.equal((await loopbackGet(shotUrl)).status, 401, 'no session cookie, no screenshot');

    // The streamer credentials are real (the streamer itself takes them) ...
    const endpoint = Platform.streamerEndpoint(id);
    const direct = (headers) => fetch(`${endpoint}/api/screenshot`, { headers }).then((r) => r.status);
    assert.equal(await direct({ authorization: `Bearer ${view.secrets['the viewer token']}` }), 200, endpoint);
    assert.equal(await direct({}), 401, `${endpoint} needs a token`);

    // (a) Frames keep being decoded and presented.
    frames = await framesOver(page, 2000, media[0]);
    console.log(
      `# chromium: ${frames.decoded} frames decoded, ${frames.presented} presented in ${frames.seconds.toFixed(1)} s ` +
        `(${frames.fps} fps, ${frames.mbps} Mbit/s through the proxy); video ${JSON.stringify(frames.end.videos)}`,
    );
    assert.ok(Math.max(frames.decoded, frames.presented) >= 10, `frames must keep coming: ${JSON.stringify(frames)}`);
    assert.equal(media[0].closedAt, 0, 'the media WebSocket stays open');

    // (b) Keyboard input reaches the app: type a URL into the session's Chromium.
    const before = await serverScreenshot(view);
    fs.writeFileSync(path.join(ARTIFACTS, 'streaming-chromium-server-before.png'), before.png);
    assert.ok(pixelStats(before.image).redShare < 0.05, 'the session does not start red');
    await page.mouse.click(VIEWPORT.width / 2, VIEWPORT.height * 0.75); // focus the stream (the app's page area)
    await page.keyboard.press('Control+l'); // the app's address bar (lower case: 'L' would be Ctrl+Shift+L)
    await sleep(300);
    await page.keyboard.type(TYPED_URL, { delay: 15 });
    await page.keyboard.press('Enter');
    const after = await eventually('the typed page on the session display', 20000, async () => {
      const shot = await serverScreenshot(view);
      return pixelStats(shot.image).redShare > 0.3 ? shot : undefined;
    }, 500);
    fs.writeFileSync(path.join(ARTIFACTS, 'streaming-chromium-server-after.png'), after.png);
    const changed = changedShare(before.image, after.image);
    console.log(`# chromium: server screenshots differ in ${(changed * 100).toFixed(1)}% of pixels after typing`);
    assert.ok(!before.png.equals(after.png) && changed > 0.3, `the display changed: ${changed}`);

    // (c) The browser shows it: a PNG of the page, not blank, with the typed page in it.
    const pagePng = path.join(ARTIFACTS, 'streaming-chromium.png');
    const shown = await eventually('the typed page in the browser', 10000, async () => {
      const png = await page.screenshot({ path: pagePng });
      const stats = pixelStats(decodePng(png));
      return stats.redShare > 0.3 ? stats : undefined;
    }, 300);
    console.log(`# chromium: page screenshot ${pagePng}: ${JSON.stringify(shown)}`);
    assert.ok(shown.colours >= 4 && shown.lumaStdDev > 5, `the page screenshot is not blank: ${JSON.stringify(shown)}`);

    // Still streaming after all that, now with a moving picture.
    const moving = await framesOver(page, 2000, media[0]);
    console.log(`# chromium: ${moving.fps} fps, ${moving.mbps} Mbit/s while the typed page scrolls`);
    assert.ok(Math.max(moving.decoded, moving.presented) >= 5, `frames keep coming: ${JSON.stringify(moving)}`);

    // The streamer takes the WebSocket only from the session origin, even with a valid cookie.
    const [cookie] = await page.context().cookies(`${platform.originOf(id)}/api/v1/http/${id}/`);
    assert.equal(cookie && cookie.name, '__Host-ss_session');
    const wsUrl = `${platform.originOf(id)}/api/v1/http/${id}/api/websockets`;
    const foreign = await upgradeStatus(wsUrl, { origin: 'http://evil.example', cookie: `${cookie.name}=${cookie.value}` });
    assert.equal(foreign, 403, 'a WebSocket from another origin is refused');

    // (d) As the web UI shows it: in an iframe on the UI origin (CSP frame-ancestors, the cookie
    // set inside a frame, a second connection to the same streamer). A page on any other origin
    // cannot frame the session.
    await page.close();
    view.page = undefined;
    const embedded = await embed(view, viewer.origins[0]);
    const inFrame = await framesOver(embedded.frame, 2000);
    console.log(`# chromium: embedded in ${viewer.origins[0]} (the UI origin): ${inFrame.fps} fps in the iframe`);
    assert.ok(Math.max(inFrame.decoded, inFrame.presented) >= 10, `frames in the iframe: ${JSON.stringify(inFrame)}`);
    await assertNoLeaks(view, embedded.frame);
    await embedded.page.close();
    const other = viewer.origins[1];
    const refused = await embed(view, other, { expectBlocked: true });
    console.log(`# chromium: embedding from ${other} refused (${String(refused.reason).trim()})`);
    await refused.page.close();

    // ... and no browser page ever held them.
    await assertNoLeaks(view);
  } catch (err) {
    await diagnose(view, err);
    throw err;
  } finally {
    record(view, frames);
    await closeSession(view);
  }
});

for (const template of IMAGES.filter((i) => i !== 'chromium')) {
  test(`${template}: time to the first frame in the browser`, { timeout: 120000 }, async () => {
    const view = await openSession(template);
    let frames;
    try {
      const media = view.sockets.find((s) => s.url.endsWith('/api/websockets'));
      frames = await framesOver(view.page, 2000, media);
      console.log(
        `# ${template}: ${frames.decoded} frames decoded, ${frames.presented} presented in 2 s, ${frames.mbps} Mbit/s`,
      );
      await view.page.screenshot({ path: path.join(ARTIFACTS, `streaming-${template}.png`) });
      assert.ok(Math.max(frames.decoded, frames.presented) >= 1, `frames arrive: ${JSON.stringify(frames)}`);
      await assertNoLeaks(view, view.page.mainFrame());
    } catch (err) {
      await diagnose(view, err);
      throw err;
    } finally {
      record(view, frames);
      await closeSession(view);
    }
  });
}

test('chromium over HTTPS: the session streams on its own https origin, framed by an https page', { timeout: 150000 }, async () => {
  // A platform of its own with --tls-self-signed; the browser trusts its local CA by the CA's key
  // (no certificate error is ignored for anything else), and the UI stand-in is HTTPS too.
  const secureViewer = await startViewerServer(1, VIEWPORT, { tls: true });
  const secure = await Platform.start({ publicUrl: secureViewer.origins[0], tls: true });
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'streamspace-e2e-chromium-tls-'));
  let context;
  let id;
  try {
    secureViewer.useCertificate(secure.issueCertificate('localhost'));
    const options = await launchOptions(chromium, CHROMIUM);
    context = await chromium.launchPersistentContext(dataDir, {
      ...options,
      args: [...options.args, `--ignore-certificate-errors-spki-list=${secure.caSpkiHash()}`],
      viewport: VIEWPORT,
    });
    await context.addInitScript({ path: path.join(HERE, 'page-probe.js') });
    ({ session: { id } } = await secure.createSession('chromium'));
    await secure.waitForState(id, 'running', 120000);
    const url = await secure.connectUrl(id);
    const sessionPage = `${secure.originOf(id)}/api/v1/http/${id}/`;
    assert.ok(sessionPage.startsWith(`https://${id}.localhost:`) && url.startsWith(`${sessionPage}?ticket=`), url);

    const page = await context.newPage();
    const seen = [];
    page.on('console', (m) => seen.push(`${m.type()}: ${m.text()}`));
    page.on('framenavigated', (f) => seen.push(`navigated: ${f.url()}`));
    page.on('response', (r) => r.status() >= 400 && seen.push(`HTTP ${r.status()} ${r.url()}`));
    page.on('requestfailed', (r) => seen.push(`failed (${r.failure()?.errorText}) ${r.url()}`));
    const sessionFrame = () => page.frames().find((f) => f.url() === sessionPage);
    // The session's iframe opens it with a single-use ticket: a load the network change cut short
    // (the frame then shows Chromium's error page) opens the viewer again with a fresh one.
    const open = async (connect) =>
      page.goto(`${secureViewer.origins[0]}/sessions/${id}?src=${encodeURIComponent(connect)}`, { waitUntil: 'load' });
    const recover = reloadOnNetworkChange(page, () => page.mainFrame(), 2, async () => open(await secure.connectUrl(id)));
    await open(url);
    const frame = await eventually('frames decoded in the https iframe', FIRST_FRAME_TIMEOUT, async () => {
      await recover();
      const child = sessionFrame();
      return child && (await child.evaluate(() => window.__ssFrames.read().decoded)) ? child : undefined;
    }, 100).catch((err) => {
      throw new Error(`${err.message}\n${seen.slice(-40).join('\n')}`);
    });
    const security = await frame.evaluate(() => ({ secure: window.isSecureContext, protocol: location.protocol }));
    assert.deepEqual(security, { secure: true, protocol: 'https:' });
    const [cookie] = await context.cookies(sessionPage);
    assert.ok(cookie && cookie.secure, `the session cookie is Secure: ${JSON.stringify(cookie)}`);
    assert.ok(
      page.frames().every((f) => !f.url().startsWith('chrome-error://')),
      'no certificate error page anywhere',
    );
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    if (context) await context.close().catch(() => {});
    if (id) await secure.stopSession(id).catch(() => {});
    await secure.stop({ keep: failed });
    await secureViewer.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});
