// A SAML 2.0 identity provider (samlify) for the service-provider tests. It listens on 127.0.0.1:0 and prints
// `listening <port>` once ready. Three signing keys are made at start: `current` and `next` (a rotation) and
// `rogue` (a key no metadata names).
//
//   GET /metadata?certs=current,next      IdP metadata naming those signing certificates (default: current)
//   GET /sso?SAMLRequest=..&RelayState=.. an AuthnRequest by HTTP-Redirect; answers the auto-posting form
//   GET /idp-initiated?sp=<entity>&acs=<url>  an unsolicited response
//
// Knobs (extra query parameters on /sso and /idp-initiated) make the bad responses the tests must refuse:
//   key=next|rogue, sign=assertion|response|both|none, audience=, recipient=, destination=, issuer=,
//   in_response_to=, valid=expired|not_yet, email=, name=, groups=a,b, authn_context=<class ref>.
// And tampering of the signed response: xsw=before|after|extensions|same_id (a forged unsigned assertion
// beside the signed one, or the signed one hidden in Extensions), alter_name_id=<value> (signed content
// changed), comment_in_name_id=1.
'use strict';

const http = require('node:http');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { DOMParser, XMLSerializer } = require('@xmldom/xmldom');
const saml = require('samlify');

// The service provider under test validates the schema itself; this IdP only needs to read the request.
saml.setSchemaValidator({ validate: () => Promise.resolve('not validated by the test IdP') });

const ENTITY_ID = process.env.IDP_ENTITY_ID || 'https://idp.test/saml';
const PASSWORD_FORMAT = 'urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport';
const ASSERTION_NS = 'urn:oasis:names:tc:SAML:2.0:assertion';
const PROTOCOL_NS = 'urn:oasis:names:tc:SAML:2.0:protocol';

function makeKey(dir, name) {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '3650',
    '-subj', `/CN=${name}.idp.test`, '-keyout', path.join(dir, `${name}.key`), '-out', path.join(dir, `${name}.crt`)],
  { stdio: 'ignore' });
}

// Keys take a second to make, so they are kept in IDP_KEY_DIR when it is given (made once, shared by every
// test process: written aside, then renamed into place, so a reader never sees half of them).
function keyDir() {
  const kept = process.env.IDP_KEY_DIR;
  if (kept && fs.existsSync(kept)) return kept;
  const fresh = fs.mkdtempSync(path.join(kept ? path.dirname(kept) : os.tmpdir(), 'saml-idp-keys-'));
  for (const name of ['current', 'next', 'rogue']) makeKey(fresh, name);
  if (!kept) return fresh;
  try {
    fs.renameSync(fresh, kept);
  } catch {
    fs.rmSync(fresh, { recursive: true, force: true });
  }
  return kept;
}

const dir = keyDir();
const keys = Object.fromEntries(['current', 'next', 'rogue'].map((name) => [name, {
  privateKey: fs.readFileSync(path.join(dir, `${name}.key`), 'utf8'),
  cert: fs.readFileSync(path.join(dir, `${name}.crt`), 'utf8'),
}]));
if (!process.env.IDP_KEY_DIR) fs.rmSync(dir, { recursive: true, force: true });

function identityProvider(baseUrl, signingKey, publishedCerts) {
  return saml.IdentityProvider({
    entityID: ENTITY_ID,
    privateKey: signingKey.privateKey,
    signingCert: publishedCerts.map((cert) => cert.cert),
    nameIDFormat: ['urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress'],
    singleSignOnService: [{ Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect', Location: `${baseUrl}/sso` }],
    requestSignatureAlgorithm: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
  });
}

function serviceProvider(entityID, acs, knobs) {
  return saml.ServiceProvider({
    entityID,
    assertionConsumerService: [{ Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST', Location: acs }],
    wantAssertionsSigned: knobs.sign !== 'response',
    wantMessageSigned: knobs.sign === 'response' || knobs.sign === 'both',
  });
}

function escapeXml(text) {
  return String(text).replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]);
}

function attributeStatement(knobs) {
  const attribute = (name, values) => `<saml:Attribute Name="${name}">${values
    .map((value) => `<saml:AttributeValue xsi:type="xs:string">${escapeXml(value)}</saml:AttributeValue>`).join('')}</saml:Attribute>`;
  const groups = (knobs.groups ?? 'staff').split(',').filter(Boolean);
  return `<saml:AttributeStatement>${attribute('email', [knobs.email ?? 'ada@example.test'])}${
    attribute('displayName', [knobs.name ?? 'Ada Lovelace'])}${attribute('groups', groups)}</saml:AttributeStatement>`;
}

function authnStatement(now, knobs) {
  return `<saml:AuthnStatement AuthnInstant="${now}" SessionIndex="_session"><saml:AuthnContext><saml:AuthnContextClassRef>${
    escapeXml(knobs.authn_context ?? PASSWORD_FORMAT)}</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>`;
}

function validity(knobs) {
  const minutes = (n) => new Date(Date.now() + n * 60_000).toISOString();
  if (knobs.valid === 'expired') return { notBefore: minutes(-20), notOnOrAfter: minutes(-10) };
  if (knobs.valid === 'not_yet') return { notBefore: minutes(10), notOnOrAfter: minutes(20) };
  return { notBefore: minutes(0), notOnOrAfter: minutes(5) };
}

// The template samlify fills, with our statements and the knobs' values in place of the honest ones.
function tagReplacement(idp, sp, inResponseTo, knobs) {
  return (template) => {
    const id = idp.entitySetting.generateID();
    const now = new Date().toISOString();
    const { notBefore, notOnOrAfter } = validity(knobs);
    const acs = sp.entityMeta.getAssertionConsumerService('post');
    const answer = knobs.in_response_to ?? inResponseTo;
    // An unsolicited response names no request at all.
    const withStatements = (answer ? template : template.replace(/ InResponseTo="\{InResponseTo\}"/g, ''))
      .replace('{AuthnStatement}', authnStatement(now, knobs))
      .replace('{AttributeStatement}', attributeStatement(knobs));
    const context = saml.SamlLib.replaceTagsByValue(withStatements, {
      ID: id,
      AssertionID: idp.entitySetting.generateID(),
      Destination: knobs.destination ?? acs,
      Audience: knobs.audience ?? sp.entityMeta.getEntityID(),
      SubjectRecipient: knobs.recipient ?? acs,
      Issuer: knobs.issuer ?? ENTITY_ID,
      IssueInstant: now,
      StatusCode: 'urn:oasis:names:tc:SAML:2.0:status:Success',
      ConditionsNotBefore: notBefore,
      ConditionsNotOnOrAfter: notOnOrAfter,
      SubjectConfirmationDataNotOnOrAfter: notOnOrAfter,
      NameIDFormat: 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress',
      NameID: knobs.name_id ?? knobs.email ?? 'ada@example.test',
      InResponseTo: answer,
    });
    return { id, context };
  };
}

// Tampering of a genuinely signed response, the way an attacker holding one would do it.
function tamper(xml, knobs) {
  const doc = new DOMParser().parseFromString(xml, 'text/xml');
  const response = doc.documentElement;
  const assertion = response.getElementsByTagNameNS(ASSERTION_NS, 'Assertion')[0];
  if (knobs.sign === 'none') {
    for (const signature of Array.from(doc.getElementsByTagNameNS('http://www.w3.org/2000/09/xmldsig#', 'Signature'))) {
      signature.parentNode.removeChild(signature);
    }
  }
  if (knobs.xsw) {
    const evil = assertion.cloneNode(true);
    if (knobs.xsw !== 'same_id') evil.setAttribute('ID', '_evil');
    for (const signature of Array.from(evil.getElementsByTagNameNS('http://www.w3.org/2000/09/xmldsig#', 'Signature'))) {
      signature.parentNode.removeChild(signature);
    }
    evil.getElementsByTagNameNS(ASSERTION_NS, 'NameID')[0].textContent = 'admin@example.test';
    const emailValue = evil.getElementsByTagNameNS(ASSERTION_NS, 'AttributeValue')[0];
    emailValue.textContent = 'admin@example.test';
    if (knobs.xsw === 'before' || knobs.xsw === 'same_id') response.insertBefore(evil, assertion);
    if (knobs.xsw === 'after') response.insertBefore(evil, assertion.nextSibling);
    if (knobs.xsw === 'extensions') {
      const extensions = doc.createElementNS(PROTOCOL_NS, 'samlp:Extensions');
      response.insertBefore(extensions, response.getElementsByTagNameNS(PROTOCOL_NS, 'Status')[0]);
      response.replaceChild(evil, assertion);
      extensions.appendChild(assertion);
    }
  }
  if (knobs.alter_name_id) {
    assertion.getElementsByTagNameNS(ASSERTION_NS, 'NameID')[0].textContent = knobs.alter_name_id;
  }
  if (knobs.comment_in_name_id) {
    const nameId = assertion.getElementsByTagNameNS(ASSERTION_NS, 'NameID')[0];
    const text = nameId.firstChild.data;
    const at = text.indexOf('@');
    nameId.replaceChild(doc.createTextNode(text.slice(0, at)), nameId.firstChild);
    nameId.appendChild(doc.createComment('x'));
    nameId.appendChild(doc.createTextNode(text.slice(at)));
  }
  return new XMLSerializer().serializeToString(doc);
}

async function signedResponse(baseUrl, sp, requestInfo, inResponseTo, knobs) {
  const idp = identityProvider(baseUrl, keys[knobs.key ?? 'current'], [keys.current]);
  const { context } = await idp.createLoginResponse(sp, requestInfo, 'post', {}, tagReplacement(idp, sp, inResponseTo, knobs));
  const xml = Buffer.from(context, 'base64').toString('utf8');
  return Buffer.from(tamper(xml, knobs), 'utf8').toString('base64');
}

function autoPostForm(acs, samlResponse, relayState) {
  const relay = relayState ? `<input type="hidden" name="RelayState" value="${escapeXml(relayState)}"/>` : '';
  return `<!doctype html><html><body><form method="post" action="${escapeXml(acs)}">`
    + `<input type="hidden" name="SAMLResponse" value="${samlResponse}"/>${relay}`
    + '<noscript><button type="submit">Continue</button></noscript></form>'
    + '<script>document.forms[0].submit()</script></body></html>';
}

async function handleSso(baseUrl, url, knobs) {
  const placeholder = saml.ServiceProvider({ entityID: 'unknown' });
  const idp = identityProvider(baseUrl, keys.current, [keys.current]);
  const query = Object.fromEntries(url.searchParams);
  const octetString = url.search.slice(1);
  const requestInfo = await idp.parseLoginRequest(placeholder, 'redirect', { query, octetString });
  const request = requestInfo.extract.request;
  const issuer = requestInfo.extract.issuer;
  const sp = serviceProvider(issuer, request.assertionConsumerServiceUrl, knobs);
  const samlResponse = await signedResponse(baseUrl, sp, requestInfo, request.id, knobs);
  return autoPostForm(request.assertionConsumerServiceUrl, samlResponse, query.RelayState);
}

async function handleIdpInitiated(baseUrl, url, knobs) {
  const sp = serviceProvider(url.searchParams.get('sp'), url.searchParams.get('acs'), knobs);
  const samlResponse = await signedResponse(baseUrl, sp, {}, '', knobs);
  return autoPostForm(url.searchParams.get('acs'), samlResponse, url.searchParams.get('RelayState'));
}

function metadata(baseUrl, url) {
  const names = (url.searchParams.get('certs') || 'current').split(',');
  return identityProvider(baseUrl, keys.current, names.map((name) => keys[name])).getMetadata();
}

const server = http.createServer(async (req, res) => {
  const baseUrl = `http://${req.headers.host}`;
  const url = new URL(req.url, baseUrl);
  const knobs = Object.fromEntries(url.searchParams);
  try {
    if (url.pathname === '/metadata') {
      res.writeHead(200, { 'content-type': 'application/samlmetadata+xml' }).end(metadata(baseUrl, url));
    } else if (url.pathname === '/sso') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(await handleSso(baseUrl, url, knobs));
    } else if (url.pathname === '/idp-initiated') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(await handleIdpInitiated(baseUrl, url, knobs));
    } else {
      res.writeHead(404).end();
    }
  } catch (error) {
    res.writeHead(400, { 'content-type': 'text/plain' }).end(String(error && error.stack || error));
  }
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
