// Single sign-on through the UI in headless Chromium, against real identity providers (tests/idp/): an org
// admin configures a provider through the API; then a fresh browser opens `/login/<org>`, clicks the
// provider's button, signs in at the IdP and lands on the catalog with an account made on the way
// (just-in-time provisioning). Once per protocol (OIDC, SAML), and once more with the org asking for TOTP
// after the IdP. See README.md.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { launchOptions } from '../chromium.mjs';
import { Platform, REPO } from '../hostile/harness.mjs';
import { stepAt, totp } from '../../../ui/e2e/totp.mjs';
import { startIdp } from './idp.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = path.join(process.env.STREAMSPACE_ARTIFACTS || path.join(REPO, 'artifacts'), 'sso');
const UI_TIMEOUT_MS = 30000;
const suffix = crypto.randomBytes(4).toString('hex');

let platform;
let browser;
let org;
let orgAdminToken;

/** The IdP sends the browser back to the public URL: its port has to be known before the start. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const port = await freePort();
  platform = await Platform.start({ listen: `127.0.0.1:${port}`, publicUrl: `http://localhost:${port}` });
  org = await platform.ok('POST', '/orgs', { body: { name: `sso-${suffix}` } });
  const admin = { username: `olga-${suffix}`, password: crypto.randomBytes(12).toString('base64url') };
  await platform.ok('POST', '/users', { body: { ...admin, role: 'org_admin', org_id: org.id } });
  orgAdminToken = (await platform.login(admin.username, admin.password)).body.access_token;
  browser = await chromium.launch(await launchOptions(chromium, CHROMIUM));
}, { timeout: 180000 });

after(async () => {
  await browser?.close();
  await platform?.stop();
}, { timeout: 120000 });

/** What the org admin does: the provider is created with the org admin's own token, as the UI would. */
function addProvider(body) {
  return platform.ok('POST', `/orgs/${org.id}/identity-providers`, { token: orgAdminToken, body });
}

function asOrgAdmin(method, route, body) {
  return platform.ok(method, route, { token: orgAdminToken, body });
}

/** A JSON POST to the test IdP (client registration, who signs in next). */
async function idpCall(url, body) {
  const reply = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!reply.ok) throw new Error(`POST ${url}: ${reply.status} ${await reply.text()}`);
  return reply.json();
}

async function screenshot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true }).catch(() => undefined);
}

/**
 * A fresh browser: `/login/<org>`, the provider's button, the IdP (both test IdPs sign in the person the
 * test chose without a page of their own: a redirect or an auto-posting form), and the UI's `/login/sso`
 * either finishes at once or, given `totp` ({ secret, usedStep }), asks for a code first.
 */
async function signInThroughUi(name, displayName, { totp: authenticator } = {}) {
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    await page.goto(`${platform.ui}/login/${org.name}`);
    await page.getByRole('link', { name: `Sign in with ${displayName}` }).click();
    if (authenticator) {
      const code = page.getByLabel('Authentication code');
      await code.waitFor({ timeout: UI_TIMEOUT_MS });
      assert.equal(new URL(page.url()).pathname, '/login/sso');
      // A step after the one the enrollment used (codes work once), within the server's one step of skew.
      await code.fill(totp(authenticator.secret, Math.max(authenticator.usedStep + 1, stepAt())));
      await page.getByRole('button', { name: 'Verify' }).click();
    }
    await page.getByRole('heading', { name: 'Catalog' }).waitFor({ timeout: UI_TIMEOUT_MS });
    assert.equal(new URL(page.url()).pathname, '/');
    await screenshot(page, `${name}-catalog`);
    return { context, page };
  } catch (err) {
    await screenshot(page, `${name}-failed`);
    await context.close();
    throw err;
  }
}

/** The account page of the signed-in browser: who the UI says is signed in. */
async function profile(page) {
  await page.goto(`${platform.ui}/account`);
  const section = page.getByRole('region', { name: 'Profile' });
  await section.getByText('Member since').waitFor({ timeout: UI_TIMEOUT_MS });
  return section.innerText();
}

/** The org's users as the API lists them, by username. */
async function orgUsers() {
  const users = await asOrgAdmin('GET', '/users?limit=500');
  return new Map(users.items.map((u) => [u.username, u]));
}

async function ssoSignIns(since) {
  const events = (await platform.ok('GET', `/audit?limit=500&action=sso.sign_in&since=${encodeURIComponent(since)}`)).items;
  return events.filter((e) => e.action === 'sso.sign_in');
}

/** One protocol's whole journey, and that the account was made in the provider's org as a member. */
async function firstSignIn(name, displayName) {
  const since = new Date(Date.now() - 1000).toISOString();
  const before = await orgUsers();
  const { context, page } = await signInThroughUi(name, displayName);
  try {
    const text = await profile(page);
    assert.match(text, new RegExp(`Organization\\s*${org.name}`));
    assert.match(text, /Role\s*Member/);
    const username = text.match(/Username\s*(\S+)/)?.[1];
    assert.ok(username && !before.has(username), `a new account, not one of ${[...before.keys()].join(', ')}`);
    const created = (await orgUsers()).get(username);
    assert.equal(created?.role, 'member');
    const signIns = await ssoSignIns(since);
    assert.ok(signIns.some((e) => e.result === 'success'), `an sso.sign_in success in ${JSON.stringify(signIns)}`);
    return { context, page, username };
  } catch (err) {
    await context.close();
    throw err;
  }
}

describe('OpenID Connect', () => {
  let idp;
  let provider;

  before(async () => {
    idp = await startIdp('oidc', 'idp.mjs', (output) => {
      const line = output.split('\n').find((l) => l.startsWith('{'));
      return line && JSON.parse(line);
    });
    // As an admin does it: the provider first (its redirect URI exists once it does), that URI into the
    // IdP's new client, then the client's ID and secret back into the provider.
    provider = await addProvider({
      name: 'test-oidc',
      display_name: 'Test OIDC',
      kind: 'oidc',
      enabled: true,
      domains: ['oidc.example.test'],
      oidc: { issuer: idp.issuer, client_id: 'not-registered-yet', scopes: ['email', 'profile', 'groups'], use_userinfo: false, acr_mfa_values: [] },
      role_mapping: { groups_claim: 'groups', org_admin_groups: ['admins'], default_role: 'member' },
    });
    const client = await idpCall(`${idp.issuer}/reg`, {
      redirect_uris: [provider.redirect_uri],
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    });
    await asOrgAdmin('PATCH', `/orgs/${org.id}/identity-providers/${provider.id}`, {
      oidc: { issuer: idp.issuer, client_id: client.client_id, client_secret: client.client_secret, scopes: ['email', 'profile', 'groups'] },
    });
    // Who the IdP signs in for this client (it has no sign-in page of its own).
    await idpCall(`${idp.issuer}/test/knobs`, {
      client_id: client.client_id,
      user: { sub: `grace-${suffix}`, email: `grace-${suffix}@oidc.example.test`, name: 'Grace Hopper', groups: ['staff'] },
    });
  }, { timeout: 60000 });

  after(() => idp?.stop());

  test('a fresh browser signs in from /login/<org> and lands on the catalog with a new account', async () => {
    const { context } = await firstSignIn('oidc', 'Test OIDC');
    await context.close();
  });
});

describe('SAML 2.0', () => {
  let idp;

  before(async () => {
    idp = await startIdp('saml', 'idp.js', (output) => {
      const port = output.match(/listening (\d+)/)?.[1];
      return port && { url: `http://127.0.0.1:${port}` };
    });
    await addProvider({
      name: 'test-saml',
      display_name: 'Test SAML',
      kind: 'saml',
      enabled: true,
      domains: ['example.test'],
      saml: {
        metadata_url: `${idp.url}/metadata`,
        metadata_xml: null,
        allow_idp_initiated: false,
        attributes: { email: 'email', name: 'displayName', groups: 'groups' },
        mfa_context_classes: [],
      },
      role_mapping: { groups_claim: 'groups', org_admin_groups: ['admins'], default_role: 'member' },
    });
  }, { timeout: 60000 });

  after(() => idp?.stop());

  test('a fresh browser signs in from /login/<org> and lands on the catalog with a new account', async () => {
    const { context } = await firstSignIn('saml', 'Test SAML');
    await context.close();
  });

  test('an org that asks for TOTP after the IdP gets it on /login/sso, then the catalog', async () => {
    // The account of the previous test sets up TOTP with its own sign-in (a refresh from the browser).
    const { context, page } = await signInThroughUi('saml-enroll', 'Test SAML');
    const token = await page.evaluate(async () => {
      const res = await fetch('/api/v1/auth/refresh', { method: 'POST', headers: { 'x-streamspace-csrf': '1' } });
      return (await res.json()).access_token;
    });
    const { secret } = await platform.ok('POST', '/me/mfa/enroll', { token });
    const usedStep = stepAt();
    await platform.ok('POST', '/me/mfa/confirm', { token, body: { code: totp(secret, usedStep) } });
    await context.close();
    await asOrgAdmin('PATCH', `/orgs/${org.id}`, { sso_mfa: 'require_totp' });
    const again = await signInThroughUi('saml-totp', 'Test SAML', { totp: { secret, usedStep } });
    await again.context.close();
  });
});
