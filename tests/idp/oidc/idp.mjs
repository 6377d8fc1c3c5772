// A real OpenID Connect provider (npm oidc-provider) for StreamSpace's SSO tests, with a
// GitHub-style OAuth2 provider beside it in the same process. It listens on 127.0.0.1:0, prints
// one JSON line {"issuer": ..., "github": ...} once ready, and exits when its stdin closes (the
// test process that started it ended).
//
// People sign in without a page: each test registers its own client (OIDC dynamic registration,
// or POST /test/github/clients) and tells the provider, per client, who signs in next and how
// (POST /test/knobs). Test-only knobs change what the token endpoint answers, to see that the
// relying party refuses it: `tamper` = wrong_aud | wrong_nonce | wrong_azp | expired | alg_none |
// hs256 | unknown_key. POST /test/rotate makes the provider sign with a new key from then on
// (both keys stay published), as a key rotation does.

import { createServer } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import * as jose from 'jose';
import Provider from 'oidc-provider';

const knobs = new Map(); // client_id -> { user, tamper }
const accounts = new Map(); // sub -> user
let signingKeys = [await newKey()];
const strangerKey = await newKey('stranger');
const cookieKeys = [randomBytes(32).toString('hex')];

async function newKey(kid = `key-${randomBytes(6).toString('hex')}`) {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  return { ...(await jose.exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
}

// Every provider instance (a key rotation makes a new one) shares this storage, so clients,
// sessions and codes survive a rotation as they would at a real provider.
const storage = new Map();

class SharedAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload) {
    storage.set(this.key(id), payload);
    if (payload.uid) storage.set(`${this.model}:uid:${payload.uid}`, id);
    if (payload.userCode) storage.set(`${this.model}:userCode:${payload.userCode}`, id);
  }

  async find(id) {
    return storage.get(this.key(id));
  }

  async findByUid(uid) {
    const id = storage.get(`${this.model}:uid:${uid}`);
    return id && this.find(id);
  }

  async findByUserCode(userCode) {
    const id = storage.get(`${this.model}:userCode:${userCode}`);
    return id && this.find(id);
  }

  async consume(id) {
    const payload = storage.get(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    storage.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const [key, payload] of storage) {
      if (payload?.grantId === grantId) storage.delete(key);
    }
  }
}

const server = createServer((req, res) => route(req, res).catch((error) => fail(res, 500, String(error))));
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const origin = `http://127.0.0.1:${server.address().port}`;
let provider = makeProvider();

function makeProvider() {
  const made = new Provider(origin, {
    adapter: SharedAdapter,
    jwks: { keys: signingKeys },
    cookies: { keys: cookieKeys },
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    enabledJWA: { idTokenSigningAlgValues: ['RS256', 'PS256', 'ES256'] },
    // amr and acr under openid: ID tokens carry how the person signed in, as IdPs that report MFA do.
    claims: { openid: ['sub', 'amr', 'acr'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
    conformIdTokenClaims: false,
    scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
    findAccount: async (_ctx, sub) => {
      const user = accounts.get(sub);
      return user && {
        accountId: sub,
        claims: async () => ({ sub, email: user.email, email_verified: user.email_verified ?? true, name: user.name, groups: user.groups ?? [] }),
      };
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  });
  made.use(async (ctx, next) => {
    await next();
    const tamper = ctx.oidc?.client && knobs.get(ctx.oidc.client.clientId)?.tamper;
    if (ctx.path === '/token' && tamper && ctx.body?.id_token) {
      ctx.body = { ...ctx.body, id_token: await tampered(ctx.body.id_token, tamper, ctx.oidc.client) };
    }
  });
  return made;
}

const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');

async function sign(claims, key) {
  return new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: key.kid }).sign(await jose.importJWK(key, 'RS256'));
}

async function tampered(idToken, tamper, client) {
  const claims = jose.decodeJwt(idToken);
  const now = Math.floor(Date.now() / 1000);
  switch (tamper) {
    case 'wrong_aud': return sign({ ...claims, aud: 'another-client' }, signingKeys[0]);
    case 'wrong_nonce': return sign({ ...claims, nonce: 'not-the-nonce' }, signingKeys[0]);
    case 'wrong_azp': return sign({ ...claims, azp: 'another-client' }, signingKeys[0]);
    case 'expired': return sign({ ...claims, iat: now - 400, exp: now - 100 }, signingKeys[0]);
    case 'unknown_key': return sign(claims, strangerKey);
    case 'alg_none': return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`;
    case 'hs256': {
      // The client secret as an HMAC key: what an attacker who knows it would mint.
      const secret = new TextEncoder().encode(client.clientSecret);
      return new jose.SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: signingKeys[0].kid }).sign(secret);
    }
    default: throw new Error(`unknown tamper ${tamper}`);
  }
}

async function route(req, res) {
  const url = new URL(req.url, origin);
  if (url.pathname.startsWith('/interaction/')) return signIn(req, res);
  if (url.pathname === '/test/knobs' && req.method === 'POST') return setKnobs(req, res);
  if (url.pathname === '/test/rotate' && req.method === 'POST') return rotate(res);
  if (url.pathname.startsWith('/github/') || url.pathname.startsWith('/test/github/')) return github(req, res, url);
  return provider.callback()(req, res);
}

function fail(res, status, message) {
  if (!res.headersSent) res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: message }));
}

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function body(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString();
}

async function setKnobs(req, res) {
  const { client_id: clientId, ...knob } = JSON.parse(await body(req));
  knobs.set(clientId, knob);
  json(res, 200, { ok: true });
}

// Signs in the person the client's knobs name, consenting to what the client asked for.
async function signIn(req, res) {
  const details = await provider.interactionDetails(req, res);
  const user = knobs.get(details.params.client_id)?.user;
  if (!user) return fail(res, 400, 'no user set for this client: POST /test/knobs');
  accounts.set(user.sub, user);
  const grant = new provider.Grant({ accountId: user.sub, clientId: details.params.client_id });
  grant.addOIDCScope(details.params.scope);
  const grantId = await grant.save();
  const login = { accountId: user.sub, amr: user.amr ?? ['pwd'], ...(user.acr ? { acr: user.acr } : {}) };
  await provider.interactionFinished(req, res, { login, consent: { grantId } }, { mergeWithLastSubmission: false });
}

async function rotate(res) {
  signingKeys = [await newKey(), ...signingKeys];
  provider = makeProvider();
  json(res, 200, { kid: signingKeys[0].kid });
}

// A GitHub-style OAuth2 provider: authorize (no page), token (form in, JSON out, single-use
// codes, PKCE S256, client secret), and /github/user.
const githubClients = new Map(); // client_id -> { secret, redirect_uri }
const githubCodes = new Map(); // code -> { clientId, user, challenge, redirectUri }
const githubTokens = new Map(); // access token -> user

async function github(req, res, url) {
  if (url.pathname === '/test/github/clients' && req.method === 'POST') {
    const { redirect_uri: redirectUri } = JSON.parse(await body(req));
    const clientId = `gh-${randomBytes(8).toString('hex')}`;
    const secret = randomBytes(20).toString('hex');
    githubClients.set(clientId, { secret, redirectUri });
    return json(res, 201, { client_id: clientId, client_secret: secret });
  }
  if (url.pathname === '/github/login/oauth/authorize') return githubAuthorize(res, url);
  if (url.pathname === '/github/login/oauth/access_token' && req.method === 'POST') return githubToken(req, res);
  if (url.pathname === '/github/user') {
    const token = (req.headers.authorization ?? '').replace(/^Bearer /i, '');
    const user = githubTokens.get(token);
    if (!user) return json(res, 401, { message: 'Bad credentials' });
    return json(res, 200, { id: user.id, login: user.login, name: user.name ?? null, email: user.email ?? null });
  }
  return fail(res, 404, 'not found');
}

function githubAuthorize(res, url) {
  const clientId = url.searchParams.get('client_id');
  const client = githubClients.get(clientId);
  const redirectUri = url.searchParams.get('redirect_uri');
  if (!client || redirectUri !== client.redirectUri) return fail(res, 400, 'unknown client or redirect_uri');
  if (url.searchParams.get('code_challenge_method') !== 'S256') return fail(res, 400, 'PKCE S256 required');
  const user = knobs.get(clientId)?.user;
  if (!user) return fail(res, 400, 'no user set for this client: POST /test/knobs');
  const code = randomBytes(16).toString('hex');
  githubCodes.set(code, { clientId, user, challenge: url.searchParams.get('code_challenge'), redirectUri });
  const back = new URL(redirectUri);
  back.searchParams.set('code', code);
  back.searchParams.set('state', url.searchParams.get('state') ?? '');
  res.writeHead(302, { location: back.toString() });
  res.end();
}

async function githubToken(req, res) {
  const form = new URLSearchParams(await body(req));
  const [basicId, basicSecret] = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /i, ''), 'base64')
    .toString()
    .split(':')
    .map(decodeURIComponent);
  const clientId = form.get('client_id') ?? basicId;
  const secret = form.get('client_secret') ?? basicSecret;
  const code = githubCodes.get(form.get('code'));
  githubCodes.delete(form.get('code'));
  const client = githubClients.get(clientId);
  const verifier = form.get('code_verifier') ?? '';
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  if (!client || client.secret !== secret || !code || code.clientId !== clientId
      || code.redirectUri !== form.get('redirect_uri') || code.challenge !== challenge) {
    return json(res, 400, { error: 'bad_verification_code' });
  }
  const token = `gho_${randomBytes(16).toString('hex')}`;
  githubTokens.set(token, code.user);
  json(res, 200, { access_token: token, token_type: 'bearer', scope: 'read:user user:email' });
}

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
console.log(JSON.stringify({ issuer: origin, github: `${origin}/github` }));
