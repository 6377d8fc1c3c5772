// Runs the real `streamspace` binary (control plane + Docker agent) and drives it over HTTP,
// like crates/cli/tests/common/mod.rs does for the Rust end-to-end tests.

import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import dns from 'node:dns';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';

import { listeningPorts } from '../listening.mjs';
import { removeAgentLeftovers } from '../leftovers.mjs';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const ADMIN_PASSWORD = 'admin-password-e2e-streaming';

export const BIN =
  process.env.STREAMSPACE_BIN ||
  path.join(process.env.CARGO_TARGET_DIR || path.join(REPO, '..', 'target'), 'debug', 'streamspace');

export const ARTIFACTS = process.env.STREAMSPACE_ARTIFACTS || path.join(REPO, 'artifacts');

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` every `interval` ms until it returns something other than undefined/false. */
export async function eventually(what, timeoutMs, check, interval = 200) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false && value !== null) return value;
    } catch (err) {
      last = err;
      if (err && err.fatal) throw err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await sleep(interval);
  }
}

export function docker(args) {
  try {
    return execFileSync('docker', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (err) {
    return `${err.stdout || ''}${err.stderr || ''}`.trim();
  }
}

export function requireDocker(images) {
  try {
    execFileSync('docker', ['version'], { stdio: 'ignore' });
  } catch {
    throw new Error('these tests need the Docker engine: run scripts/images/docker-up.sh');
  }
  const missing = images.filter((image) => !docker(['image', 'inspect', '--format', '{{.Id}}', image]).startsWith('sha256:'));
  if (missing.length) throw new Error(`missing images ${missing.join(', ')}: run scripts/images/build.sh`);
}

const running = new Set();
// Whatever happens to the test process, its children do not outlive it.
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** A child process whose stderr/stdout go to a log file; stopped with SIGTERM, then SIGKILL. */
class Proc {
  constructor(name, args, env, log) {
    this.name = name;
    this.log = log;
    const out = fs.openSync(log, 'a');
    this.child = spawn(BIN, args, { env: { ...process.env, ...env }, stdio: ['ignore', out, out] });
    fs.closeSync(out);
    running.add(this.child);
    this.child.once('exit', () => running.delete(this.child));
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    this.exitStatus = null;
    this.exited.then((status) => {
      this.exitStatus = status;
    });
  }

  async stop(graceMs = 15000) {
    if (this.exitStatus) return this.exitStatus;
    this.child.kill('SIGTERM');
    const timer = sleep(graceMs).then(() => 'timeout');
    if ((await Promise.race([this.exited, timer])) === 'timeout') {
      this.child.kill('SIGKILL');
    }
    return this.exited;
  }
}

/**
 * `fetch` for the platform's URLs: over HTTPS with the platform's own CA (`ca`, PEM) as the only
 * trusted root, and `*.localhost` on loopback; returns `{ status, text }`.
 */
export function request(url, { method = 'GET', headers = {}, body, ca } = {}) {
  const target = new URL(url);
  const transport = target.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const sent = transport.request(url, { method, headers, ca, lookup: loopbackLookup, timeout: 30000 }, (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    });
    sent.on('timeout', () => sent.destroy(new Error(`no answer from ${url}`)));
    sent.on('error', reject);
    sent.end(body);
  });
}

/** JSON over HTTP(S) with a bearer token; `ca` as for `request`. */
export class Api {
  constructor(base, token, ca) {
    this.base = base;
    this.token = token;
    this.ca = ca;
  }

  static async login(base, username, password, ca) {
    const reply = await request(`${base}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password }),
      ca,
    });
    const body = JSON.parse(reply.text);
    if (!body.access_token) throw new Error(`login ${username}: ${reply.status} ${reply.text}`);
    return new Api(base, body.access_token, ca);
  }

  async call(method, route, body) {
    const reply = await request(`${this.base}${route}`, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      ca: this.ca,
    });
    let json;
    try {
      json = JSON.parse(reply.text);
    } catch {
      json = reply.text;
    }
    return { status: reply.status, body: json };
  }

  async ok(method, route, body) {
    const reply = await this.call(method, route, body);
    if (reply.status < 200 || reply.status >= 300) {
      throw new Error(`${method} ${route}: ${reply.status} ${JSON.stringify(reply.body)}`);
    }
    return reply.body;
  }
}

/**
 * `streamspace serve` on loopback ports the system picks with a temporary data directory, plus one
 * `streamspace agent docker` registered through the API. URLs use `localhost` (a secure context
 * for WebCodecs).
 */
export class Platform {
  /**
   * `publicUrl`: the UI's origin (`--public-url`), the only page allowed to frame sessions. `tls`:
   * HTTPS on both listeners with certificates from the platform's local CA (`--tls-self-signed`),
   * which the agent and `this.admin` trust (`this.ca`).
   */
  static async start({ publicUrl, tls: secure = false } = {}) {
    if (!fs.existsSync(BIN)) {
      throw new Error(`no streamspace binary at ${BIN}: build it (make bin) or set STREAMSPACE_BIN`);
    }
    const self = new Platform();
    self.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'streamspace-e2e-streaming-'));
    self.serverLog = path.join(self.dir, 'server.log');
    self.agentLog = path.join(self.dir, 'agent.log');
    self.server = new Proc(
      'server',
      [
        'serve',
        '--listen', '127.0.0.1:0',
        '--session-listen', '127.0.0.1:0',
        '--data-dir', self.dir,
        '--heartbeat-interval', '2',
        ...(publicUrl ? ['--public-url', publicUrl] : []),
        ...(secure ? ['--tls-self-signed'] : []),
      ],
      {
        STREAMSPACE_ADMIN_PASSWORD: ADMIN_PASSWORD,
        STREAMSPACE_LOG_FORMAT: 'json',
        RUST_LOG: process.env.RUST_LOG || 'info,streamspace_server::proxy=debug',
      },
      self.serverLog,
    );
    const stillRunning = () => {
      if (self.server.exitStatus) {
        const err = new Error(`streamspace serve exited ${JSON.stringify(self.server.exitStatus)}; see ${self.serverLog}`);
        err.fatal = true;
        throw err;
      }
    };
    try {
      const [apiPort, sessionPort] = await eventually('the control plane to listen', 60000, () => {
        stillRunning();
        return listeningPorts(self.serverLog);
      });
      const scheme = secure ? 'https' : 'http';
      self.api = `${scheme}://localhost:${apiPort}`;
      self.sessionOrigin = `${scheme}://localhost:${sessionPort}`;
      if (secure) {
        self.caPath = path.join(self.dir, 'tls', 'ca.pem');
        self.ca = await eventually('the local CA', 30000, () => {
          const pem = fs.existsSync(self.caPath) ? fs.readFileSync(self.caPath, 'utf8') : '';
          return pem.endsWith('-----END CERTIFICATE-----\n') ? pem : undefined;
        });
      }
      await eventually('/healthz', 60000, async () => {
        stillRunning();
        return (await request(`${self.api}/healthz`, { ca: self.ca })).status === 200;
      });
      self.admin = await Api.login(self.api, 'admin', ADMIN_PASSWORD, self.ca);
      const name = `e2e-streaming-${apiPort}`;
      const { id, token } = await self.admin.ok('POST', '/api/v1/agents', { name, platform: 'docker' });
      self.agentId = id;
      self.agent = new Proc(
        'agent',
        ['agent', 'docker', '--server', self.api],
        // The agent trusts the system's roots; SSL_CERT_FILE names them (rustls-native-certs).
        { STREAMSPACE_AGENT_TOKEN: token, RUST_LOG: 'info', ...(secure ? { SSL_CERT_FILE: self.caPath } : {}) },
        self.agentLog,
      );
      await eventually(`agent ${name} online`, 30000, async () => {
        const agents = await self.admin.ok('GET', '/api/v1/agents');
        return agents.items.some((a) => a.name === name && a.status === 'online');
      });
    } catch (err) {
      await self.stop({ keep: true });
      throw err;
    }
    return self;
  }

  constructor() {
    this.sessions = new Set();
    /** The agent's id, which labels what it makes on the host. */
    this.agentId = '';
  }

  /** `POST /api/v1/sessions`; returns the session and the time of the request. */
  async createSession(template) {
    const postedAt = performance.now();
    const reply = await this.admin.call('POST', '/api/v1/sessions', { template });
    if (reply.status !== 202) throw new Error(`POST /api/v1/sessions: ${reply.status} ${JSON.stringify(reply.body)}`);
    this.sessions.add(reply.body.id);
    return { session: reply.body, postedAt };
  }

  async waitForState(id, state, timeoutMs = 120000) {
    return eventually(`session ${id} ${state}`, timeoutMs, async () => {
      const session = await this.admin.ok('GET', `/api/v1/sessions/${id}`);
      if (session.state === 'failed' && state !== 'failed') {
        const err = new Error(`session ${id} failed: ${session.failure_reason}`);
        err.fatal = true;
        throw err;
      }
      return session.state === state ? session : undefined;
    }, 100);
  }

  /** Every session has an origin of its own: `http(s)://<id>.localhost:<session port>`. */
  originOf(id) {
    return this.sessionOrigin.replace('://', `://${id}.`);
  }

  /** A certificate for `host` from the platform's local CA, with the CA in its chain (openssl). */
  issueCertificate(host) {
    const dir = fs.mkdtempSync(path.join(this.dir, 'issued-'));
    const file = (name) => path.join(dir, name);
    fs.writeFileSync(file('san.cnf'), `subjectAltName=DNS:${host}\n`);
    const openssl = (args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${host}`,
      '-keyout', file('key.pem'), '-out', file('csr.pem')]);
    openssl(['x509', '-req', '-in', file('csr.pem'), '-CA', this.caPath, '-CAkey', path.join(this.dir, 'tls', 'ca.key'),
      '-set_serial', `0x${crypto.randomBytes(8).toString('hex')}`, '-days', '1', '-extfile', file('san.cnf'),
      '-out', file('cert.pem')]);
    return { key: fs.readFileSync(file('key.pem')), cert: fs.readFileSync(file('cert.pem'), 'utf8') + this.ca };
  }

  /** Chromium's `--ignore-certificate-errors-spki-list` entry for the local CA: base64 SHA-256 of its key. */
  caSpkiHash() {
    const spki = new crypto.X509Certificate(this.ca).publicKey.export({ type: 'spki', format: 'der' });
    return crypto.createHash('sha256').update(spki).digest('base64');
  }

  async connectUrl(id) {
    return (await this.admin.ok('POST', `/api/v1/sessions/${id}/connect`, {})).url;
  }

  /** DELETE and wait until stopped (the container is gone). */
  async stopSession(id, timeoutMs = 60000) {
    const reply = await this.admin.call('DELETE', `/api/v1/sessions/${id}`);
    if (reply.status !== 202 && reply.status !== 404 && reply.status !== 409) {
      throw new Error(`DELETE session ${id}: ${reply.status} ${JSON.stringify(reply.body)}`);
    }
    if (reply.status === 202) await this.waitForState(id, 'stopped', timeoutMs).catch(() => {});
    this.sessions.delete(id);
  }

  /**
   * The session's streamer credentials as the control plane derives them (crates/server/src/app.rs:
   * HMAC-SHA256 of the data directory's session.key), to check that no browser ever sees them.
   */
  streamerSecrets(id) {
    const key = fs.readFileSync(path.join(this.dir, 'session.key'));
    const hmac = (message) => crypto.createHmac('sha256', key).update(message).digest('hex');
    return { 'the master token': hmac(`selkies-master:${id}`), 'the viewer token': hmac(`selkies-viewer:${id}`) };
  }

  /** The streamer's own address (the endpoint the proxy forwards to), from Docker. */
  static streamerEndpoint(id) {
    const [ip, port] = docker([
      'inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}} {{index .Config.Labels "streamspace.port"}}', `ss-${id}`,
    ]).split(' ');
    return `http://${ip}:${port || 8080}`;
  }

  /** Streamer logs of a session's container (for diagnostics). */
  static containerLogs(id, tail = 60) {
    return docker(['logs', '--tail', String(tail), `ss-${id}`]);
  }

  /**
   * Stops every session this platform started, then the agent and the control plane; removes the
   * data directory (logs included) unless `keep`.
   */
  async stop({ keep = false } = {}) {
    for (const id of [...this.sessions]) {
      try {
        await this.stopSession(id);
      } catch (err) {
        console.error(`# cannot stop session ${id}: ${err.message}`);
      }
    }
    if (this.agent) await this.agent.stop();
    if (this.server) await this.server.stop();
    try {
      removeAgentLeftovers(this.agentId);
    } catch (err) {
      console.error(`# cannot remove what the agent left: ${err.message}`);
    }
    if (keep) console.error(`# control plane and agent logs kept in ${this.dir}`);
    else fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Sends a WebSocket upgrade request and returns the HTTP status it gets (101 when the upgrade
 * is accepted; the socket is closed at once).
 */
/** glibc does not resolve `*.localhost` as browsers do; the per-session hosts are on loopback. */
function loopbackLookup(hostname, options, callback) {
  if (hostname !== 'localhost' && !hostname.endsWith('.localhost')) return dns.lookup(hostname, options, callback);
  if (options.all) return callback(null, [{ address: '127.0.0.1', family: 4 }]);
  return callback(null, '127.0.0.1', 4);
}

/** `GET url` with Node's http, on loopback for `*.localhost` (fetch and Playwright's request resolve with glibc). */
export function loopbackGet(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { lookup: loopbackLookup, headers, timeout: 30000 }, (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode, headers: response.headers, body: Buffer.concat(chunks) }));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`no answer from ${url}`)));
    request.on('error', reject);
  });
}

export function upgradeStatus(url, headers) {
  return new Promise((resolve, reject) => {
    const request = http.request(url, {
      lookup: loopbackLookup,
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': crypto.randomBytes(16).toString('base64'),
        ...headers,
      },
      timeout: 10000,
    });
    request.on('upgrade', (response, socket) => {
      socket.destroy();
      resolve(response.statusCode);
    });
    request.on('response', (response) => {
      response.resume();
      resolve(response.statusCode);
    });
    request.on('timeout', () => request.destroy(new Error(`no answer from ${url}`)));
    request.on('error', reject);
    request.end();
  });
}

/**
 * Stands in for the web UI: serves, on each of `ports`, a page that frames the URL in its
 * `?src=` the way ui/src/features/sessions/components/SessionViewerPage.tsx does. With `tls`, over
 * HTTPS with the certificate given later to `useCertificate` (the page's origin must be known
 * before the platform that issues it starts).
 */
export async function startViewerServer(count, { width, height }, { tls: secure = false } = {}) {
  let context;
  const page = (request, response) => {
    const src = new URL(request.url, 'http://localhost').searchParams.get('src') || 'about:blank';
    const attr = src.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    response.end(
      '<!doctype html><title>session viewer</title><body style="margin:0">' +
        `<iframe src="${attr}" allow="autoplay; clipboard-read; clipboard-write; fullscreen" allowfullscreen ` +
        `style="width:${width}px;height:${height}px;border:0;display:block"></iframe>`,
    );
  };
  const sni = (_name, done) => (context ? done(null, context) : done(new Error('no certificate yet')));
  const servers = [];
  for (let i = 0; i < count; i++) {
    const server = secure ? https.createServer({ SNICallback: sni }, page) : http.createServer(page);
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push(server);
  }
  return {
    origins: servers.map((s) => `${secure ? 'https' : 'http'}://localhost:${s.address().port}`),
    useCertificate: ({ key, cert }) => {
      context = tls.createSecureContext({ key, cert });
    },
    close: () => Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve)))),
  };
}
