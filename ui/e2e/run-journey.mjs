// @ts-check
/**
 * Runs the UI journey (journey.test.mjs) against a fresh all-in-one control plane, and cleans up after.
 * Builds nothing: it needs the `streamspace` binary and `ui/dist`.
 *
 *   e2e/run-journey.sh            (or: node e2e/run-journey.mjs)
 *
 * 1. starts `streamspace up` on two free ports (API+UI, session origin) with a temporary data directory
 *    and STREAMSPACE_ADMIN_PASSWORD (random unless set), its log in <artifacts>/server.log;
 * 2. waits for /readyz and the built-in Docker agent, creates the `fixture` template
 *    (streamspace/fixture:latest) through the API, checks that the image of the streaming template the
 *    journey launches (seeded `chromium`: streamspace/chromium:latest) is there;
 * 3. runs the journey with `node --test`;
 * 4. stops every session it left (API), SIGTERMs the server, removes leftover containers of this run's
 *    agent and the data directory.
 *
 * Environment:
 *   STREAMSPACE_BIN          the binary (default ${CARGO_TARGET_DIR:-<repo>/../target}/debug/streamspace)
 *   STREAMSPACE_ARTIFACTS    screenshots, server log (default ui/e2e-artifacts)
 *   STREAMSPACE_ADMIN_PASSWORD  admin password for the new installation (default: random)
 *   STREAMSPACE_E2E_IMAGE    image of the fixture template (default streamspace/fixture:latest)
 *   STREAMSPACE_E2E_KEEP     1: keep the data directory
 *   STREAMSPACE_E2E_STREAM_TEMPLATE  streaming template the journey launches (default chromium; empty: none)
 *   plus what journey.test.mjs reads (CHROMIUM_PATH, STREAMSPACE_E2E_START_TIMEOUT_MS, ...).
 */
import { spawn, execFile } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { removeAgentLeftovers } from '../../tests/e2e/leftovers.mjs';

const run = promisify(execFile);
const UI_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REPO = path.resolve(UI_DIR, '..');
const TARGET = path.resolve(REPO, process.env.CARGO_TARGET_DIR ?? path.join('..', 'target'));
const BIN = path.resolve(process.env.STREAMSPACE_BIN ?? path.join(TARGET, 'debug', 'streamspace'));
const ARTIFACTS = path.resolve(process.env.STREAMSPACE_ARTIFACTS ?? path.join(UI_DIR, 'e2e-artifacts'));
const PASSWORD = process.env.STREAMSPACE_ADMIN_PASSWORD ?? `journey-${randomBytes(9).toString('base64url')}`;
const IMAGE = process.env.STREAMSPACE_E2E_IMAGE ?? 'streamspace/fixture:latest';
const KEEP = process.env.STREAMSPACE_E2E_KEEP === '1';
const STREAM_TEMPLATE = process.env.STREAMSPACE_E2E_STREAM_TEMPLATE ?? 'chromium';
const TERMINAL = new Set(['stopped', 'failed']);

const started = Date.now();
const log = (/** @type {string} */ m) => console.log(`[journey ${((Date.now() - started) / 1000).toFixed(1)}s] ${m}`);
const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** @type {import('node:child_process').ChildProcess | null} */
let server = null;
/** @type {import('node:child_process').ChildProcess | null} */
let journey = null;
let dataRoot = '';
let apiBase = '';
let apiKey = '';
let agentId = '';
let cleaning = false;

/**
 * @param {string} method @param {string} p @param {{ token?: string, body?: unknown }} [o]
 * @returns {Promise<{ status: number, body: any }>}
 */
async function call(method, p, o = {}) {
  const res = await fetch(apiBase + p, {
    method,
    headers: {
      ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
      ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: o.body !== undefined ? JSON.stringify(o.body) : undefined,
  });
  const text = await res.text();
  let body = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // not JSON
  }
  return { status: res.status, body };
}

/** @param {() => Promise<boolean>} check @param {number} timeoutMs @param {string} what */
async function waitFor(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (server && server.exitCode !== null) throw new Error(`the server exited (${server.exitCode}) while waiting for ${what}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await sleep(250);
  }
}

async function setUp() {
  if (!existsSync(BIN)) throw new Error(`no streamspace binary at ${BIN}: build it (make bin) or set STREAMSPACE_BIN`);
  if (!existsSync(path.join(UI_DIR, 'dist', 'index.html'))) throw new Error('ui/dist is missing: run `npm run build` in ui/ first');
  if (!existsSync(path.join(UI_DIR, 'node_modules', 'playwright-core'))) throw new Error('ui/node_modules is missing: run `npm ci` in ui/ first');
  const chromium = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  if (!existsSync(chromium)) throw new Error(`no Chromium at ${chromium}: install it or set CHROMIUM_PATH`);
  mkdirSync(ARTIFACTS, { recursive: true });
  const apiPort = await freePort();
  let sessionPort = await freePort();
  while (sessionPort === apiPort) sessionPort = await freePort();
  dataRoot = mkdtempSync(path.join(tmpdir(), 'streamspace-journey-'));
  const dataDir = path.join(dataRoot, 'data');
  mkdirSync(dataDir);
  apiBase = `http://localhost:${apiPort}/api/v1`;
  const sessionDomain = `localhost:${sessionPort}`;

  const serverLog = createWriteStream(path.join(ARTIFACTS, 'server.log'));
  log(`starting ${BIN} up (API+UI :${apiPort}, sessions :${sessionPort}, data ${dataDir})`);
  server = spawn(BIN, ['up', '--data-dir', dataDir, '--listen', `127.0.0.1:${apiPort}`, '--session-listen', `127.0.0.1:${sessionPort}`], {
    env: { ...process.env, STREAMSPACE_ADMIN_PASSWORD: PASSWORD, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout?.pipe(serverLog);
  server.stderr?.pipe(serverLog);
  await waitFor(async () => (await fetch(`http://localhost:${apiPort}/readyz`)).ok, 60_000, '/readyz');

  const login = await call('POST', '/auth/login', { body: { username: 'admin', password: PASSWORD } });
  if (login.status !== 200) throw new Error(`admin sign-in: ${login.status} ${JSON.stringify(login.body)}`);
  const key = await call('POST', '/me/api-keys', { token: login.body.access_token, body: { name: 'journey-runner' } });
  if (key.status !== 201) throw new Error(`creating the runner's API key: ${key.status} ${JSON.stringify(key.body)}`);
  apiKey = key.body.key;

  await waitFor(
    async () => {
      const agents = await call('GET', '/agents', { token: apiKey });
      const local = (agents.body?.items ?? []).find((/** @type {any} */ a) => a.status === 'online');
      if (local) agentId = local.id;
      return Boolean(local);
    },
    30_000,
    'the built-in agent to come online',
  );

  const template = await call('POST', '/templates', {
    token: apiKey,
    body: {
      name: 'fixture',
      display_name: 'Fixture',
      description: 'Test application: an HTTP and WebSocket echo page.',
      image: IMAGE,
      cpu_millis: 250,
      memory_mb: 256,
      shm_mb: 64,
      port: 8080,
      tags: ['test'],
    },
  });
  if (template.status !== 201 && template.status !== 409) {
    throw new Error(`creating the fixture template: ${template.status} ${JSON.stringify(template.body)}`);
  }
  log(`agent ${agentId} online; template fixture (${IMAGE}) ready`);

  if (STREAM_TEMPLATE && process.env.STREAMSPACE_E2E_SKIP_SESSION !== '1') {
    const templates = await call('GET', '/templates?limit=500', { token: apiKey });
    const streaming = (templates.body?.items ?? []).find((/** @type {any} */ t) => t.name === STREAM_TEMPLATE);
    if (!streaming) throw new Error(`no template ${STREAM_TEMPLATE} to stream (STREAMSPACE_E2E_STREAM_TEMPLATE= skips the streaming step)`);
    try {
      await run('docker', ['image', 'inspect', '--format', '{{.Id}}', streaming.image]);
    } catch {
      throw new Error(
        `the image ${streaming.image} of the ${STREAM_TEMPLATE} template is missing: build the session images ` +
          '(scripts/images/build.sh), or skip the streaming step with STREAMSPACE_E2E_STREAM_TEMPLATE=',
      );
    }
    log(`template ${STREAM_TEMPLATE} (${streaming.image}) ready to stream`);
  }

  const url = `http://localhost:${apiPort}`;
  const index = await fetch(`${url}/`);
  const html = await index.text();
  if (!html.includes('<div id="root">')) {
    throw new Error(
      `the binary does not serve the UI (GET / answered ${index.status}: ${JSON.stringify(html.slice(0, 120))}); ` +
        'build ui/dist (npm run build) before the binary',
    );
  }
  return { url, sessionDomain };
}

/** @param {{ url: string, sessionDomain: string }} target */
function runJourney(target) {
  return new Promise((resolve) => {
    const child = (journey = spawn(process.execPath, ['--test', '--test-concurrency=1', 'e2e/journey.test.mjs'], {
      cwd: UI_DIR,
      stdio: 'inherit',
      env: {
        ...process.env,
        STREAMSPACE_URL: target.url,
        STREAMSPACE_SESSION_DOMAIN: target.sessionDomain,
        STREAMSPACE_ADMIN_USERNAME: 'admin',
        STREAMSPACE_ADMIN_PASSWORD: PASSWORD,
        STREAMSPACE_ARTIFACTS: ARTIFACTS,
        STREAMSPACE_E2E_TEMPLATE: 'fixture',
      },
    }));
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

async function stopSessions() {
  if (!apiKey || !server || server.exitCode !== null) return;
  const list = await call('GET', '/sessions?limit=500', { token: apiKey });
  const open = (list.body?.items ?? []).filter((/** @type {any} */ s) => !TERMINAL.has(s.state));
  if (open.length === 0) return;
  log(`stopping ${open.length} session(s) left running`);
  for (const s of open) await call('DELETE', `/sessions/${s.id}`, { token: apiKey });
  await waitFor(
    async () => {
      const again = await call('GET', '/sessions?limit=500', { token: apiKey });
      return (again.body?.items ?? []).every((/** @type {any} */ s) => TERMINAL.has(s.state));
    },
    90_000,
    'the sessions to stop',
  ).catch((e) => log(`warning: ${String(e)}`));
}

async function stopServer() {
  const child = server;
  if (!child || child.exitCode !== null) return;
  log('stopping the server (SIGTERM)');
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timedOut = await Promise.race([exited.then(() => false), sleep(30_000).then(() => true)]);
  if (timedOut) {
    log('the server did not stop within 30 s: SIGKILL');
    child.kill('SIGKILL');
    await exited;
  }
}

/** Containers, networks and home volumes this run's agent made that are still there. */
function removeLeftovers() {
  try {
    const removed = removeAgentLeftovers(agentId);
    if (removed) log(`removed ${removed} container(s), network(s) and volume(s) the agent left`);
  } catch (e) {
    log(`warning: could not remove what the agent left: ${String(e)}`);
  }
}

async function cleanUp() {
  if (cleaning) return;
  cleaning = true;
  await stopSessions().catch((e) => log(`warning: stopping sessions: ${String(e)}`));
  await stopServer();
  removeLeftovers();
  if (dataRoot && !KEEP) rmSync(dataRoot, { recursive: true, force: true });
  else if (dataRoot) log(`kept ${dataRoot}`);
}

for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
  process.once(signal, () => {
    log(`${signal}: cleaning up`);
    if (journey && journey.exitCode === null) journey.kill('SIGTERM');
    void cleanUp().finally(() => process.exit(130));
  });
}

let code = 1;
try {
  const target = await setUp();
  log(`running the journey against ${target.url}`);
  code = Number(await runJourney(target));
} catch (e) {
  console.error(`[journey] setup failed: ${e instanceof Error ? e.message : String(e)}`);
  const logFile = path.join(ARTIFACTS, 'server.log');
  if (existsSync(logFile)) console.error(`[journey] server log (last lines; all of it in ${logFile}):\n${readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n')}`);
} finally {
  await cleanUp();
}
log(`${code === 0 ? 'passed' : 'FAILED'} in ${((Date.now() - started) / 1000).toFixed(0)} s; artifacts in ${ARTIFACTS}`);
process.exit(code);
