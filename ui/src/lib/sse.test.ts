import { describe, expect, it, vi } from 'vitest';
import { ApiClient } from './api';
import { SseParser, backoffDelay, connectEventStream, type SseMessage, type StreamStatus } from './sse';
import { apiError, json, mockFetch } from '@/testing/http';
import { authResponse } from '@/testing/fixtures';

function parseAll(chunks: string[]): SseMessage[] {
  const out: SseMessage[] = [];
  const p = new SseParser((m) => out.push(m));
  for (const c of chunks) p.feed(c);
  return out;
}

describe('SseParser', () => {
  it('parses named events and joins multi-line data', () => {
    expect(parseAll(['event: session\ndata: {"id":"s1",\ndata: "state":"running"}\n\n'])).toEqual([
      { event: 'session', data: '{"id":"s1",\n"state":"running"}', id: '' },
    ]);
  });

  it('defaults the event name to message and ignores comments (keep-alives)', () => {
    expect(parseAll([': keep-alive\n\n', 'data: hello\n\n', ':\n'])).toEqual([{ event: 'message', data: 'hello', id: '' }]);
  });

  it('handles CRLF, CR and LF line endings', () => {
    expect(parseAll(['event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\revent: c\ndata: 3\n\n']).map((m) => [m.event, m.data])).toEqual([
      ['a', '1'],
      ['b', '2'],
      ['c', '3'],
    ]);
  });

  it('gives the same result however the stream is chunked', () => {
    const text = 'event: agent\r\ndata: {"id":"a1"}\r\n\r\n: ping\r\nevent: session\r\ndata: x\r\ndata: y\r\n\r\n';
    const whole = parseAll([text]);
    expect(whole).toHaveLength(2);
    expect(parseAll(text.split(''))).toEqual(whole);
    for (let cut = 1; cut < text.length; cut++) {
      expect(parseAll([text.slice(0, cut), text.slice(cut)])).toEqual(whole);
    }
  });

  it('strips exactly one leading space and keeps colons in values', () => {
    expect(parseAll(['data:  two spaces\n\n', 'data:no-space:with:colons\n\n']).map((m) => m.data)).toEqual([
      ' two spaces',
      'no-space:with:colons',
    ]);
  });

  it('drops events without data, tracks id and retry, ignores unknown fields and a BOM', () => {
    const out: SseMessage[] = [];
    const p = new SseParser((m) => out.push(m));
    p.feed('\uFEFFevent: nothing\n\nid: 7\nretry: 2500\nfoo: bar\ndata\n\n');
    expect(out).toEqual([{ event: 'message', data: '', id: '7' }]);
    expect(p.retry).toBe(2500);
    expect(p.lastEventId).toBe('7');
  });

  it('discards an unterminated event at end of stream', () => {
    const out: SseMessage[] = [];
    const p = new SseParser((m) => out.push(m));
    p.feed('data: partial\n');
    p.end();
    p.feed('data: next\n\n');
    expect(out.map((m) => m.data)).toEqual(['next']);
  });
});

describe('backoffDelay', () => {
  it('grows exponentially with jitter and is capped', () => {
    expect(backoffDelay(0, 1000, 30000, () => 0)).toBe(500);
    expect(backoffDelay(0, 1000, 30000, () => 1)).toBe(1000);
    expect(backoffDelay(3, 1000, 30000, () => 1)).toBe(8000);
    expect(backoffDelay(20, 1000, 30000, () => 1)).toBe(30000);
    expect(backoffDelay(20, 1000, 30000, () => 0)).toBe(15000);
  });
});

function streamResponse(chunks: string[]): Response {
  const enc = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const c of chunks) controller.enqueue(enc.encode(c));
      controller.close();
    },
  });
  return new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
}

async function signedInClient() {
  const api = new ApiClient({ refreshLeewaySeconds: 0 });
  await api.login({ username: 'alice', password: 'pw' });
  return api;
}

describe('connectEventStream', () => {
  it('reads events with the bearer header and reconnects with backoff after the stream ends', async () => {
    let connects = 0;
    const { calls } = mockFetch({
      'POST /api/v1/auth/login': () => json(authResponse()),
      'GET /api/v1/events': () => {
        connects++;
        return connects === 1
          ? streamResponse(['event: session\ndata: {"id":"s1"', '}\n\n: keep-alive\n\n'])
          : connects === 2
            ? apiError(503, 'unavailable')
            : streamResponse(['event: agent\ndata: {"id":"a1"}\n\n']);
      },
    });
    const api = await signedInClient();
    const ctrl = new AbortController();
    const messages: SseMessage[] = [];
    const statuses: StreamStatus[] = [];
    const opens: boolean[] = [];
    const delays: number[] = [];
    const done = connectEventStream({
      client: api,
      signal: ctrl.signal,
      onMessage: (m) => messages.push(m),
      onStatus: (s) => statuses.push(s),
      onOpen: (r) => opens.push(r),
      random: () => 1,
      sleep: async (ms) => {
        delays.push(ms);
        if (delays.length === 3) ctrl.abort();
      },
    });
    await done;
    expect(messages.map((m) => [m.event, m.data])).toEqual([
      ['session', '{"id":"s1"}'],
      ['agent', '{"id":"a1"}'],
    ]);
    const eventCalls = calls.filter((c) => c.path === '/api/v1/events');
    expect(eventCalls).toHaveLength(3);
    expect(eventCalls[0]!.headers.authorization).toBe('Bearer tok-1');
    expect(eventCalls[0]!.headers.accept).toBe('text/event-stream');
    // healthy stream resets -> 1000; the 503 -> 2000; the second healthy stream resets again -> 1000
    expect(delays).toEqual([1000, 2000, 1000]);
    expect(opens).toEqual([false, true]);
    expect(statuses[0]).toBe('connecting');
    expect(statuses).toContain('open');
    expect(statuses.at(-1)).toBe('closed');
  });

  it('stops when the client is signed out (401 that refresh cannot fix)', async () => {
    mockFetch({
      'POST /api/v1/auth/login': () => json(authResponse()),
      'POST /api/v1/auth/refresh': () => apiError(401, 'unauthorized'),
      'GET /api/v1/events': () => apiError(401, 'unauthorized'),
    });
    const api = await signedInClient();
    const sleep = vi.fn(async () => undefined);
    await connectEventStream({ client: api, signal: new AbortController().signal, onMessage: () => undefined, sleep });
    expect(sleep).not.toHaveBeenCalled();
    expect(api.getAuthState().status).toBe('anonymous');
  });

  it('stops when the sign-in may not watch (403 mfa_enrollment_required) and flags the client', async () => {
    mockFetch({
      'POST /api/v1/auth/login': () => json(authResponse()),
      'GET /api/v1/events': () => apiError(403, 'mfa_enrollment_required'),
    });
    const api = await signedInClient();
    const sleep = vi.fn(async () => undefined);
    await connectEventStream({ client: api, signal: new AbortController().signal, onMessage: () => undefined, sleep });
    expect(sleep).not.toHaveBeenCalled();
    expect(api.getAuthState()).toMatchObject({ status: 'authenticated', mfaEnrollmentRequired: true });
  });

  it('reads the control plane\'s stream as axum writes it (named events, empty keep-alive comments, resync)', async () => {
    const session = '{"id":"s1","state":"running"}';
    mockFetch({
      'POST /api/v1/auth/login': () => json(authResponse()),
      'GET /api/v1/events': () => streamResponse([`event: session\ndata: ${session}\n\n`, ':\n\n', 'event: resync\ndata: {}\n\n']),
    });
    const api = await signedInClient();
    const ctrl = new AbortController();
    const messages: SseMessage[] = [];
    await connectEventStream({
      client: api,
      signal: ctrl.signal,
      onMessage: (m) => messages.push(m),
      sleep: async () => ctrl.abort(),
    });
    expect(messages.map((m) => [m.event, m.data])).toEqual([
      ['session', session],
      ['resync', '{}'],
    ]);
  });

  it('stops promptly when aborted while waiting to reconnect', async () => {
    mockFetch({
      'POST /api/v1/auth/login': () => json(authResponse()),
      'GET /api/v1/events': () => apiError(500, 'boom'),
    });
    const api = await signedInClient();
    const ctrl = new AbortController();
    const p = connectEventStream({ client: api, signal: ctrl.signal, onMessage: () => undefined, minDelay: 60_000 });
    await new Promise((r) => setTimeout(r, 10));
    ctrl.abort();
    await expect(p).resolves.toBeUndefined();
  });
});
