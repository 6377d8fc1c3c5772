// @ts-check
/**
 * An in-memory stand-in for the control plane, for UI development and for dry-running the e2e
 * journey before the Rust backend exists. It follows the API contract the UI is written against,
 * serves `dist/` with an SPA fallback under the production CSP, and serves a fake "session origin"
 * on PORT+1 for the viewer's iframe. Not a test of the backend: a test of the UI.
 *
 *   npm run build && node e2e/mock-server.mjs            # UI + API on :8000, sessions on :8001
 *   STREAMSPACE_URL=http://127.0.0.1:8000 STREAMSPACE_ADMIN_PASSWORD=admin-password npm run test:e2e
 */
import { createServer } from 'node:http';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PORT = Number(process.env.PORT ?? 8000);
const HOST = '127.0.0.1';
const SESSION_ORIGIN = `http://${HOST}:${PORT + 1}`;
const DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const ADMIN_PASSWORD = process.env.STREAMSPACE_ADMIN_PASSWORD ?? 'admin-password';
const FAST = process.env.MOCK_FAST === '1';

const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: https:",
  `frame-src ${SESSION_ORIGIN}`,
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

const now = () => new Date().toISOString();
const id = () => randomUUID();

/** @typedef {{id:string,username:string,org_id:string,role:string,mfa_enabled:boolean,disabled:boolean,created_at:string,password:string}} User */
/** @type {Map<string, any>} */ const orgs = new Map();
/** @type {Map<string, User>} */ const users = new Map();
/** @type {Map<string, any>} */ const templates = new Map();
/** @type {Map<string, any>} */ const sessions = new Map();
/** @type {Map<string, any>} */ const agents = new Map();
/** @type {Map<string, {user:string, key:any}>} */ const apiKeys = new Map();
/** @type {Map<string, string>} */ const accessTokens = new Map();
/** @type {Map<string, string>} */ const refreshTokens = new Map();
/** @type {any[]} */ const audit = [];
/** @type {Set<import('node:http').ServerResponse>} */ const streams = new Set();

const org = { id: id(), name: 'Default', mfa_required: false, max_sessions: null, max_sessions_per_user: 3, max_cpu_millis: null, max_memory_mb: null, created_at: now() };
orgs.set(org.id, org);
const adminUser = { id: id(), username: 'admin', org_id: org.id, role: 'platform_admin', mfa_enabled: false, disabled: false, created_at: now(), password: ADMIN_PASSWORD };
users.set(adminUser.id, adminUser);
const icon = (/** @type {string} */ c) =>
  `data:image/svg+xml;base64,${Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 48 48"><rect width="48" height="48" rx="10" fill="${c}"/><circle cx="24" cy="24" r="11" fill="#fff" opacity=".85"/></svg>`).toString('base64')}`;
for (const [name, display, desc, tags, color] of [
  ['firefox', 'Firefox', 'Mozilla Firefox web browser.', ['browser', 'web'], '#e66000'],
  ['chromium', 'Chromium', 'The open-source browser behind Chrome.', ['browser', 'web'], '#4285f4'],
  ['xfce', 'Linux desktop', 'A full XFCE desktop with a terminal and file manager.', ['desktop'], '#2d9b4e'],
  ['gimp', 'GIMP', 'Image editor.', ['graphics'], '#7a6a53'],
]) {
  const t = { id: id(), org_id: null, name, display_name: display, description: desc, icon: icon(String(color)), image: `streamspace/${name}:latest`, env: {}, cpu_millis: 2000, memory_mb: 2048, shm_mb: 256, port: 8080, tags, enabled: true, created_at: now(), updated_at: now() };
  templates.set(t.id, t);
}
const agent = { id: id(), name: 'local-docker', platform: 'docker', labels: { zone: 'local' }, status: 'online', version: '0.1.0-mock', capacity: { max_sessions: 10, cpu_millis: 8000, memory_mb: 16384 }, session_count: 0, last_heartbeat_at: now(), created_at: now() };
agents.set(agent.id, agent);

/** @param {string} event @param {unknown} data */
function broadcast(event, data) {
  for (const s of streams) s.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

setInterval(() => {
  agent.last_heartbeat_at = now();
  agent.session_count = [...sessions.values()].filter((s) => !['stopped', 'failed'].includes(s.state)).length;
  broadcast('agent', agent);
  for (const s of streams) s.write(': keep-alive\n\n');
}, 5000).unref();

/** @param {any} s @param {Record<string, unknown>} patch */
function update(s, patch) {
  Object.assign(s, patch, { updated_at: now() });
  broadcast('session', s);
}

/** Drive a session through pending -> scheduled -> starting (pull %) -> running. @param {any} s */
function start(s) {
  const tick = FAST ? 50 : 600;
  const steps = [
    () => update(s, { state: 'scheduled', agent_id: agent.id }),
    () => update(s, { state: 'starting', phase: 'pulling_image', progress: 0 }),
    ...[20, 45, 70, 100].map((p) => () => update(s, { progress: p })),
    () => update(s, { phase: 'starting', progress: null }),
    () => update(s, { state: 'running', phase: null, progress: null, started_at: now() }),
  ];
  steps.forEach((f, i) => setTimeout(() => s.state !== 'stopped' && s.state !== 'stopping' && f(), tick * (i + 1)));
}

/** @param {any} u */
const publicUser = (u) => ({ id: u.id, username: u.username, org_id: u.org_id, role: u.role, mfa_enabled: u.mfa_enabled, disabled: u.disabled, created_at: u.created_at });

/** @param {any} user @param {string} action @param {string} target @param {string} result @param {import('node:http').IncomingMessage} req */
function record(user, action, target, result, req) {
  audit.unshift({ id: id(), seq: audit.length + 1, time: now(), actor_id: user?.id ?? null, actor_name: user?.username ?? null, org_id: user?.org_id ?? null, action, target, result, client_ip: req.socket.remoteAddress ?? null, user_agent: req.headers['user-agent'] ?? null, trace_id: randomBytes(16).toString('hex'), details: null });
}

/** @param {import('node:http').ServerResponse} res @param {number} status @param {unknown} [body] @param {Record<string,string>} [headers] */
function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...headers });
  res.end(body === undefined ? undefined : JSON.stringify(body));
}
/** @param {import('node:http').ServerResponse} res @param {number} status @param {string} code @param {string} [message] */
const fail = (res, status, code, message = code.replace(/_/g, ' ')) => send(res, status, { error: { code, message } });
/** @param {any[]} items */
const list = (items) => ({ items, next_cursor: null });

/** @param {import('node:http').IncomingMessage} req */
async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

/** @param {import('node:http').IncomingMessage} req @param {string} name */
function cookie(req, name) {
  const m = new RegExp(`(?:^|; )${name}=([^;]+)`).exec(req.headers.cookie ?? '');
  return m?.[1] ?? null;
}

/** @param {any} user @param {import('node:http').ServerResponse} res */
function issue(user, res) {
  const access = randomBytes(24).toString('base64url');
  const refresh = randomBytes(24).toString('base64url');
  accessTokens.set(access, user.id);
  refreshTokens.set(refresh, user.id);
  send(res, 200, { access_token: access, token_type: 'Bearer', expires_in: 900, user: { id: user.id, username: user.username, org_id: user.org_id, role: user.role } }, {
    'Set-Cookie': `ss_refresh=${refresh}; HttpOnly; SameSite=Strict; Path=/api/v1/auth`,
  });
}

/** @param {import('node:http').IncomingMessage} req @param {import('node:http').ServerResponse} res */
async function api(req, res) {
  const url = new URL(req.url ?? '/', `http://${req.headers.host}`);
  const p = url.pathname.replace(/^\/api\/v1/, '');
  const m = req.method ?? 'GET';
  const parts = p.split('/').filter(Boolean);

  if (p === '/auth/login' && m === 'POST') {
    const b = await readBody(req);
    const u = [...users.values()].find((x) => x.username === b.username && x.password === b.password && !x.disabled);
    if (!u) return record(null, 'auth.login', String(b.username), 'failure', req), fail(res, 401, 'invalid_credentials', 'Invalid username or password');
    if (u.mfa_enabled && !b.totp_code && !b.recovery_code) return fail(res, 401, 'mfa_required', 'MFA code required');
    if (u.mfa_enabled && b.totp_code && b.totp_code !== '123456') return fail(res, 401, 'invalid_mfa_code');
    record(u, 'auth.login', u.username, 'success', req);
    return issue(u, res);
  }
  if (p === '/auth/refresh' && m === 'POST') {
    if (req.headers['x-streamspace-csrf'] !== '1') return fail(res, 403, 'csrf_header_missing');
    const t = cookie(req, 'ss_refresh');
    const uid = t ? refreshTokens.get(t) : undefined;
    if (!t || !uid) return fail(res, 401, 'unauthenticated');
    refreshTokens.delete(t);
    return issue(users.get(uid), res);
  }
  if (p === '/auth/logout' && m === 'POST') {
    const t = cookie(req, 'ss_refresh');
    if (t) refreshTokens.delete(t);
    res.writeHead(204, { 'Set-Cookie': 'ss_refresh=; HttpOnly; Path=/api/v1/auth; Max-Age=0' });
    return res.end();
  }

  const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
  const uid = accessTokens.get(bearer) ?? apiKeys.get(bearer)?.user;
  const me = uid ? users.get(uid) : undefined;
  if (!me) return fail(res, 401, 'unauthenticated');
  const isAdmin = me.role !== 'member';

  if (p === '/events' && m === 'GET') {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
    res.write(': hello\n\n');
    streams.add(res);
    req.on('close', () => streams.delete(res));
    return;
  }
  if (p === '/me' && m === 'GET') return send(res, 200, { ...publicUser(me), org_name: orgs.get(me.org_id)?.name ?? '' });
  if (p === '/me/password' && m === 'POST') {
    const b = await readBody(req);
    if (b.current_password !== me.password) return fail(res, 401, 'invalid_credentials', 'Current password is wrong');
    me.password = b.new_password;
    res.writeHead(204);
    return res.end();
  }
  if (p === '/me/mfa/enroll' && m === 'POST') {
    // A 1x1 transparent PNG stands in for the QR code.
    return send(res, 200, { secret: 'JBSWY3DPEHPK3PXP', otpauth_uri: 'otpauth://totp/StreamSpace:admin?secret=JBSWY3DPEHPK3PXP', qr_png_base64: 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=' });
  }
  if (p === '/me/mfa/confirm' && m === 'POST') {
    const b = await readBody(req);
    if (b.code !== '123456') return fail(res, 401, 'invalid_mfa_code');
    me.mfa_enabled = true;
    return send(res, 200, { recovery_codes: Array.from({ length: 10 }, () => randomBytes(5).toString('hex')) });
  }
  if (p === '/me/mfa/disable' && m === 'POST') {
    me.mfa_enabled = false;
    res.writeHead(204);
    return res.end();
  }
  if (p === '/me/api-keys' && m === 'GET') return send(res, 200, list([...apiKeys.values()].filter((k) => k.user === me.id).map((k) => k.key)));
  if (p === '/me/api-keys' && m === 'POST') {
    const b = await readBody(req);
    const secret = `ssk_${randomBytes(20).toString('hex')}`;
    const key = { id: id(), name: b.name, prefix: secret.slice(0, 8), created_at: now(), last_used_at: null };
    apiKeys.set(secret, { user: me.id, key });
    record(me, 'api_key.create', key.name, 'success', req);
    return send(res, 201, { ...key, key: secret });
  }
  if (parts[0] === 'me' && parts[1] === 'api-keys' && parts[2] && m === 'DELETE') {
    for (const [s, k] of apiKeys) if (k.key.id === parts[2] && k.user === me.id) apiKeys.delete(s);
    res.writeHead(204);
    return res.end();
  }

  if (p === '/templates' && m === 'GET') return send(res, 200, list([...templates.values()].filter((t) => isAdmin || t.enabled)));
  if (p === '/sessions' && m === 'POST') {
    const b = await readBody(req);
    const t = [...templates.values()].find((x) => x.id === b.template || x.name === b.template);
    if (!t) return fail(res, 404, 'not_found', 'No such template');
    const s = { id: id(), org_id: me.org_id, owner_id: me.id, owner_username: me.username, template_id: t.id, template_name: t.display_name, state: 'pending', agent_id: null, phase: null, progress: null, failure_reason: null, created_at: now(), updated_at: now(), started_at: null, stopped_at: null };
    sessions.set(s.id, s);
    record(me, 'session.create', s.id, 'success', req);
    start(s);
    return send(res, 202, s);
  }
  if (p === '/sessions' && m === 'GET') {
    const state = url.searchParams.get('state');
    const owner = url.searchParams.get('owner_id');
    return send(res, 200, list([...sessions.values()].filter((s) => (isAdmin || s.owner_id === me.id) && (!state || s.state === state) && (!owner || s.owner_id === owner))));
  }
  if (parts[0] === 'sessions' && parts[1]) {
    const s = sessions.get(parts[1]);
    if (!s || (!isAdmin && s.owner_id !== me.id)) return fail(res, 404, 'not_found');
    const action = parts[2];
    if (!action && m === 'GET') return send(res, 200, s);
    if (!action && m === 'DELETE') {
      update(s, { state: 'stopping' });
      setTimeout(() => update(s, { state: 'stopped', stopped_at: now() }), FAST ? 100 : 1500);
      record(me, 'session.stop', s.id, 'success', req);
      return send(res, 202, s);
    }
    if (action === 'hibernate' && m === 'POST') {
      update(s, { state: 'hibernating' });
      setTimeout(() => update(s, { state: 'hibernated' }), FAST ? 100 : 1500);
      return send(res, 202, s);
    }
    if (action === 'wake' && m === 'POST') {
      update(s, { state: 'starting', phase: 'starting', progress: null });
      setTimeout(() => update(s, { state: 'running', phase: null, started_at: now() }), FAST ? 100 : 1500);
      return send(res, 202, s);
    }
    if (action === 'connect' && m === 'POST') {
      if (s.state !== 'running') return fail(res, 409, 'not_running');
      return send(res, 200, { url: `${SESSION_ORIGIN}/api/v1/http/${s.id}/?ticket=${randomBytes(12).toString('hex')}` });
    }
  }

  if (!isAdmin) return fail(res, 404, 'not_found');

  if (p === '/stats' && m === 'GET') {
    const t0 = Date.now() - 12 * 3600_000;
    return send(res, 200, {
      session_start_latency: Array.from({ length: 24 }, (_, i) => ({ time: new Date(t0 + i * 1800_000).toISOString(), p50_ms: 2500 + 800 * Math.sin(i / 3), p95_ms: 6000 + 1500 * Math.cos(i / 4), count: 5 + i })),
    });
  }
  if (p === '/agents' && m === 'GET') return send(res, 200, list([...agents.values()]));
  if (p === '/agents' && m === 'POST') {
    const b = await readBody(req);
    const a = { ...agent, id: id(), name: b.name, platform: b.platform, labels: b.labels ?? {}, status: 'offline', last_heartbeat_at: null, session_count: 0, created_at: now() };
    agents.set(a.id, a);
    return send(res, 201, { ...a, token: `ssa_${randomBytes(24).toString('hex')}` });
  }
  if (parts[0] === 'agents' && parts[1] && m === 'DELETE') {
    agents.delete(parts[1]);
    res.writeHead(204);
    return res.end();
  }
  if (p === '/users' && m === 'GET') return send(res, 200, list([...users.values()].map(publicUser)));
  if (p === '/users' && m === 'POST') {
    const b = await readBody(req);
    const u = { id: id(), username: b.username, password: b.password, role: b.role, org_id: b.org_id ?? me.org_id, mfa_enabled: false, disabled: false, created_at: now() };
    users.set(u.id, u);
    return send(res, 201, publicUser(u));
  }
  if (parts[0] === 'users' && parts[1]) {
    const u = users.get(parts[1]);
    if (!u) return fail(res, 404, 'not_found');
    if (m === 'PATCH') return Object.assign(u, await readBody(req)), send(res, 200, publicUser(u));
    if (m === 'DELETE') return users.delete(u.id), res.writeHead(204), res.end();
    return send(res, 200, publicUser(u));
  }
  if (p === '/orgs' && m === 'GET') return send(res, 200, list([...orgs.values()]));
  if (p === '/orgs' && m === 'POST') {
    const b = await readBody(req);
    const o = { ...org, id: id(), name: b.name, created_at: now() };
    orgs.set(o.id, o);
    return send(res, 201, o);
  }
  if (parts[0] === 'orgs' && parts[1]) {
    const o = orgs.get(parts[1]);
    if (!o) return fail(res, 404, 'not_found');
    if (m === 'PATCH') return Object.assign(o, await readBody(req)), send(res, 200, o);
    if (m === 'DELETE') return orgs.delete(o.id), res.writeHead(204), res.end();
    return send(res, 200, o);
  }
  if (p === '/templates' && m === 'POST') {
    const b = await readBody(req);
    const t = { ...b, id: id(), created_at: now(), updated_at: now() };
    templates.set(t.id, t);
    return send(res, 201, t);
  }
  if (parts[0] === 'templates' && parts[1]) {
    const t = templates.get(parts[1]);
    if (!t) return fail(res, 404, 'not_found');
    if (m === 'PATCH') return Object.assign(t, await readBody(req), { updated_at: now() }), send(res, 200, t);
    if (m === 'DELETE') return templates.delete(t.id), res.writeHead(204), res.end();
    return send(res, 200, t);
  }
  if (p === '/audit' && m === 'GET') {
    const q = url.searchParams;
    const items = audit.filter(
      (e) =>
        (!q.get('actor') || (e.actor_name ?? '').includes(q.get('actor'))) &&
        (!q.get('action') || e.action.includes(q.get('action'))) &&
        (!q.get('result') || e.result === q.get('result')) &&
        (!q.get('q') || JSON.stringify(e).includes(q.get('q') ?? '')),
    );
    if (q.get('format') === 'csv') {
      const cols = ['seq', 'time', 'actor_name', 'action', 'target', 'result', 'client_ip', 'trace_id'];
      const csv = [cols.join(','), ...items.map((e) => cols.map((c) => JSON.stringify(e[c] ?? '')).join(','))].join('\n');
      res.writeHead(200, { 'Content-Type': 'text/csv', 'Content-Disposition': 'attachment; filename="audit.csv"' });
      return res.end(csv + '\n');
    }
    return send(res, 200, list(items));
  }
  return fail(res, 404, 'not_found');
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.png': 'image/png', '.json': 'application/json' };

/** @param {import('node:http').IncomingMessage} req @param {import('node:http').ServerResponse} res */
function staticFile(req, res) {
  const url = new URL(req.url ?? '/', 'http://x');
  let file = path.join(DIST, path.normalize(decodeURIComponent(url.pathname)).replace(/^(\.\.[/\\])+/, ''));
  if (!file.startsWith(DIST) || !existsSync(file) || statSync(file).isDirectory()) file = path.join(DIST, 'index.html');
  if (!existsSync(file)) return send(res, 500, { error: { code: 'no_build', message: 'run npm run build first' } });
  const ext = /** @type {keyof typeof TYPES} */ (path.extname(file));
  res.writeHead(200, { 'Content-Type': TYPES[ext] ?? 'application/octet-stream', 'Content-Security-Policy': CSP, 'X-Content-Type-Options': 'nosniff' });
  res.end(readFileSync(file));
}

createServer((req, res) => {
  if (req.url?.startsWith('/api/')) {
    api(req, res).catch((e) => fail(res, 500, 'internal', String(e)));
  } else {
    staticFile(req, res);
  }
}).listen(PORT, HOST, () => console.log(`mock control plane on http://${HOST}:${PORT} (admin / ${ADMIN_PASSWORD})`));

// The "session origin": what the streamer would show, on a different origin.
createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><title>session</title><body style="margin:0;height:100vh;display:flex;align-items:center;justify-content:center;font:24px system-ui;color:#fff;background:linear-gradient(135deg,#1f5fbf,#2d9b4e)"><div>Streamed desktop (mock)<br><small>${req.url}</small></div>`);
}).listen(PORT + 1, HOST);
