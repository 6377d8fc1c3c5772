// The platform under attack: the real `streamspace up` (control plane, UI and its built-in Docker
// agent) on free loopback ports with a temporary data directory, driven over its public API.

import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { listeningPorts } from '../listening.mjs';
import { removeAgentLeftovers } from '../leftovers.mjs';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const BIN =
  process.env.STREAMSPACE_BIN ||
  path.join(process.env.CARGO_TARGET_DIR || path.join(REPO, '..', 'target'), 'debug', 'streamspace');
export const ARTIFACTS = path.join(process.env.STREAMSPACE_ARTIFACTS || path.join(REPO, 'artifacts'), 'hostile');
export const HOSTILE_IMAGE = process.env.STREAMSPACE_E2E_HOSTILE_IMAGE || 'streamspace/hostile:latest';
export const VICTIM_IMAGE = process.env.STREAMSPACE_E2E_VICTIM_IMAGE || 'streamspace/fixture:latest';
const KEEP = process.env.STREAMSPACE_E2E_KEEP === '1';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns a truthy value; an error with `fatal` set ends the wait at once. */
export async function eventually(what, timeoutMs, check, interval = 200) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      if (err.fatal) throw err;
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(interval);
  }
}

function docker(args) {
  return execFileSync('docker', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

export function requireImages(images) {
  try {
    docker(['version']);
  } catch {
    throw new Error('this test needs the Docker engine: run scripts/images/docker-up.sh');
  }
  const missing = images.filter((image) => {
    try {
      return !docker(['image', 'inspect', '--format', '{{.Id}}', image]).startsWith('sha256:');
    } catch {
      return true;
    }
  });
  if (missing.length) throw new Error(`missing images ${missing.join(', ')}: run scripts/images/build.sh fixture hostile`);
}

/** The value of the refresh cookie a sign-in sets, whatever its name's prefix. */
export const isRefreshCookie = (name) => /(^|-)ss_refresh$/.test(name);

async function call(base, method, route, { token, body } = {}) {
  const reply = await fetch(`${base}${route}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await reply.text();
  let json = text;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text for the error message
  }
  return { status: reply.status, body: json, headers: reply.headers };
}

const running = new Set();
// Whatever ends the test process, the control plane does not outlive it.
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export class Platform {
  /**
   * `listen` and `publicUrl` for suites whose URLs must be known before the start (an identity provider
   * sends the browser back to the public URL); by default the system picks the ports.
   */
  static async start({ listen = '127.0.0.1:0', publicUrl = undefined } = {}) {
    if (!fs.existsSync(BIN)) throw new Error(`no streamspace binary at ${BIN}: build it (make bin), or set STREAMSPACE_BIN`);
    const self = new Platform();
    self.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'streamspace-e2e-hostile-'));
    self.password = crypto.randomBytes(12).toString('base64url');
    self.log = path.join(self.dir, 'server.log');
    const out = fs.openSync(self.log, 'a');
    self.child = spawn(
      BIN,
      ['up', '--data-dir', path.join(self.dir, 'data'), '--listen', listen, '--session-listen', '127.0.0.1:0'],
      {
        env: { ...process.env, STREAMSPACE_ADMIN_PASSWORD: self.password, NO_COLOR: '1', ...(publicUrl ? { STREAMSPACE_PUBLIC_URL: publicUrl } : {}) },
        stdio: ['ignore', out, out],
      },
    );
    fs.closeSync(out);
    running.add(self.child);
    self.exited = new Promise((resolve) => self.child.once('exit', (code, signal) => resolve({ code, signal })));
    self.exited.then(() => running.delete(self.child));
    const stillRunning = () => {
      if (self.child.exitCode !== null || self.child.signalCode !== null) {
        throw Object.assign(new Error(`streamspace up exited; see ${self.log}`), { fatal: true });
      }
    };
    try {
      const [apiPort] = await eventually('the control plane to listen', 60000, () => {
        stillRunning();
        return listeningPorts(self.log);
      });
      self.ui = `http://localhost:${apiPort}`;
      await eventually('/readyz', 60000, async () => {
        stillRunning();
        return (await fetch(`${self.ui}/readyz`)).ok;
      });
      const login = await self.login('admin', self.password);
      self.adminId = login.body.user.id;
      self.key = (await self.ok('POST', '/me/api-keys', { token: login.body.access_token, body: { name: 'e2e-hostile' } })).key;
      const agent = await eventually('the built-in agent online', 30000, async () =>
        (await self.ok('GET', '/agents')).items.find((a) => a.status === 'online'),
      );
      self.agentId = agent.id;
    } catch (err) {
      await self.stop({ keep: true });
      throw err;
    }
    return self;
  }

  async login(username, password) {
    const reply = await call(this.ui, 'POST', '/api/v1/auth/login', { body: { username, password } });
    if (reply.status !== 200) throw new Error(`sign-in of ${username}: ${reply.status} ${JSON.stringify(reply.body)}`);
    return reply;
  }

  /** A refresh token of `username`'s own, fresh sign-in: what an attacker holds of their account. */
  async refreshToken(username, password) {
    const reply = await this.login(username, password);
    const cookie = reply.headers
      .getSetCookie()
      .map((line) => line.split(';')[0].split('='))
      .find(([name]) => isRefreshCookie(name));
    if (!cookie) throw new Error(`the sign-in of ${username} set no refresh cookie`);
    return cookie[1];
  }

  async ok(method, route, { token = this.key, body } = {}) {
    const reply = await call(this.ui, method, `/api/v1${route}`, { token, body });
    if (reply.status < 200 || reply.status >= 300) throw new Error(`${method} ${route}: ${reply.status} ${JSON.stringify(reply.body)}`);
    return reply.body;
  }

  async template(name, image) {
    const body = { name, display_name: name, description: `e2e hostile: ${image}`, image, cpu_millis: 250, memory_mb: 256, shm_mb: 64, port: 8080, tags: ['test'] };
    return this.ok('POST', '/templates', { body });
  }

  /** A user of a new organization of their own: the tenant who wrote the hostile image. */
  async attacker() {
    const suffix = crypto.randomBytes(4).toString('hex');
    const org = await this.ok('POST', '/orgs', { body: { name: `hostile-${suffix}` } });
    const user = { username: `mallory-${suffix}`, password: crypto.randomBytes(12).toString('base64url') };
    await this.ok('POST', '/users', { body: { ...user, role: 'member', org_id: org.id } });
    return user;
  }

  async startSession(template) {
    const session = await this.ok('POST', '/sessions', { body: { template } });
    return eventually(`session ${session.id} (${template}) running`, 120000, async () => {
      const now = await this.ok('GET', `/sessions/${session.id}`);
      if (now.state === 'failed') throw Object.assign(new Error(`session ${session.id} failed: ${now.failure_reason}`), { fatal: true });
      return now.state === 'running' && now;
    });
  }

  /** A fresh connect URL (one-time ticket) for the admin, the viewer of every session here. */
  async connectUrl(id) {
    return (await this.ok('POST', `/sessions/${id}/connect`, { body: {} })).url;
  }

  /** Audit events with `time` in [from, to] (Unix ms), oldest first. */
  async auditBetween(from, to) {
    const since = new Date(from - 1000).toISOString();
    const events = (await this.ok('GET', `/audit?limit=500&since=${encodeURIComponent(since)}`)).items;
    return events.filter((e) => Date.parse(e.time) >= from && Date.parse(e.time) <= to).reverse();
  }

  /** Stops every session, then the control plane; removes what the agent left and the data directory. */
  async stop({ keep = KEEP } = {}) {
    if (this.key && this.child.exitCode === null) {
      const sessions = await this.ok('GET', '/sessions?limit=500').catch(() => ({ items: [] }));
      const open = sessions.items.filter((s) => !['stopped', 'failed'].includes(s.state));
      for (const s of open) await this.ok('DELETE', `/sessions/${s.id}`).catch(() => undefined);
      await eventually('sessions stopped', 60000, async () =>
        (await this.ok('GET', '/sessions?limit=500')).items.every((s) => ['stopped', 'failed'].includes(s.state)),
      ).catch((err) => console.error(`# ${err.message}`));
    }
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const timedOut = await Promise.race([this.exited.then(() => false), sleep(30000).then(() => true)]);
      if (timedOut) {
        this.child.kill('SIGKILL');
        await this.exited;
      }
    }
    try {
      removeAgentLeftovers(this.agentId);
    } catch (err) {
      console.error(`# cannot remove what the agent left: ${err.message}`);
    }
    if (keep) console.error(`# control plane data and log kept in ${this.dir}`);
    else fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
