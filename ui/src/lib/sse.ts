/**
 * Server-Sent Events over `fetch` (EventSource cannot send the bearer header).
 *
 * `SseParser` implements the WHATWG event-stream interpretation: lines end in CRLF, LF or CR (also when
 * a chunk boundary splits a CRLF), `:` starts a comment (keep-alive), `data` lines join with `\n`, one
 * leading space after the colon is dropped, a blank line dispatches, and an event with no data is
 * dropped. `connectEventStream` reads a `ReadableStream` through it and reconnects with backoff.
 */
import { type ApiClient, ApiError } from './api';

export interface SseMessage {
  /** `message` when the stream did not name the event. */
  event: string;
  data: string;
  id: string;
}

export class SseParser {
  private buffer = '';
  private pendingCR = false;
  private bomChecked = false;
  private eventType = '';
  private data: string[] = [];
  private hasData = false;
  /** The last event id seen (persists across events, as in the spec). */
  lastEventId = '';
  /** A `retry:` field from the server, in milliseconds. */
  retry: number | null = null;

  private readonly onMessage: (message: SseMessage) => void;

  constructor(onMessage: (message: SseMessage) => void) {
    this.onMessage = onMessage;
  }

  feed(chunk: string): void {
    let text = chunk;
    if (!this.bomChecked && text.length > 0) {
      this.bomChecked = true;
      if (text.startsWith('\uFEFF')) text = text.slice(1);
    }
    if (this.pendingCR) {
      // The previous chunk ended in CR; a leading LF here belongs to that line ending.
      this.pendingCR = false;
      if (text.startsWith('\n')) text = text.slice(1);
    }
    this.buffer += text;
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const c = this.buffer.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.line(this.buffer.slice(start, i));
      if (c === 13) {
        if (i + 1 === this.buffer.length) {
          this.pendingCR = true;
        } else if (this.buffer.charCodeAt(i + 1) === 10) {
          i++;
        }
      }
      start = i + 1;
    }
    this.buffer = this.buffer.slice(start);
  }

  /** End of stream: an unterminated event is discarded, as the spec says. */
  end(): void {
    this.buffer = '';
    this.pendingCR = false;
    this.eventType = '';
    this.data = [];
    this.hasData = false;
  }

  private line(line: string): void {
    if (line === '') {
      this.dispatch();
      return;
    }
    if (line.startsWith(':')) return; // comment / keep-alive
    const colon = line.indexOf(':');
    let field = line;
    let value = '';
    if (colon >= 0) {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
    }
    switch (field) {
      case 'event':
        this.eventType = value;
        break;
      case 'data':
        this.data.push(value);
        this.hasData = true;
        break;
      case 'id':
        if (!value.includes('\0')) this.lastEventId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break; // unknown fields are ignored
    }
  }

  private dispatch(): void {
    const eventType = this.eventType;
    const data = this.data.join('\n');
    const hasData = this.hasData;
    this.eventType = '';
    this.data = [];
    this.hasData = false;
    if (!hasData) return;
    this.onMessage({ event: eventType || 'message', data, id: this.lastEventId });
  }
}

export type StreamStatus = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface EventStreamOptions {
  client: ApiClient;
  path?: string;
  onMessage: (message: SseMessage) => void;
  onStatus?: (status: StreamStatus) => void;
  /** Called after every (re)connect, so caches can be refetched to cover missed events. */
  onOpen?: (reconnected: boolean) => void;
  signal: AbortSignal;
  /** Backoff: initial and maximum delay in ms. */
  minDelay?: number;
  maxDelay?: number;
  /** Injected for tests. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  random?: () => number;
}

export function backoffDelay(attempt: number, minDelay: number, maxDelay: number, random: () => number): number {
  const exp = Math.min(maxDelay, minDelay * 2 ** Math.max(0, attempt));
  // "Equal jitter": half fixed, half random, so reconnect storms spread out.
  return Math.round(exp / 2 + (random() * exp) / 2);
}

function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Keep an SSE connection open until `signal` aborts. Resolves when aborted, or when the client is
 * signed out (a 401 that the client's refresh could not fix).
 */
export async function connectEventStream(options: EventStreamOptions): Promise<void> {
  const {
    client,
    path = '/events',
    onMessage,
    onStatus,
    onOpen,
    signal,
    minDelay = 1000,
    maxDelay = 30000,
    sleep = defaultSleep,
    random = Math.random,
  } = options;
  let attempt = 0;
  let connectedOnce = false;
  while (!signal.aborted) {
    onStatus?.(connectedOnce ? 'reconnecting' : 'connecting');
    const parser = new SseParser(onMessage);
    try {
      const res = await client.fetch(path, {
        headers: { Accept: 'text/event-stream', 'Cache-Control': 'no-cache' },
        signal,
      });
      if (!res.body) throw new Error('event stream has no body');
      onStatus?.('open');
      onOpen?.(connectedOnce);
      connectedOnce = true;
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let receivedSomething = false;
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (!receivedSomething && value.byteLength > 0) {
            receivedSomething = true;
            attempt = 0; // a healthy stream resets the backoff
          }
          parser.feed(decoder.decode(value, { stream: true }));
        }
        parser.feed(decoder.decode());
      } finally {
        reader.releaseLock();
      }
      parser.end();
    } catch (e) {
      if (signal.aborted) break;
      // 401: signed out, the app shows the sign-in page. 403: this sign-in may not watch (MFA setup pending).
      if (e instanceof ApiError && (e.status === 401 || e.status === 403)) break;
      if (e instanceof ApiError && e.status === 404) {
        // no event stream on this server: poll-only mode, try again rarely
        attempt = Math.max(attempt, 6);
      }
    }
    if (signal.aborted) break;
    onStatus?.('reconnecting');
    const delay = parser.retry !== null && attempt === 0 ? parser.retry : backoffDelay(attempt, minDelay, maxDelay, random);
    attempt++;
    await sleep(delay, signal);
  }
  onStatus?.('closed');
}
