/**
 * The one API client of the UI.
 *
 * - The access token lives in this object's memory only (never localStorage/sessionStorage).
 * - On load the app calls `restore()`, which asks `POST /auth/refresh` (the HttpOnly `ss_refresh` cookie,
 *   scoped to `/api/v1/auth`, plus the `x-streamspace-csrf` header the server demands).
 * - A 401 from any authenticated call triggers one (shared) refresh and one retry; if that fails too the
 *   client signs out locally and notifies its subscribers. Exception: 401s whose code says the request's
 *   own secret was wrong (`invalid_credentials`, `invalid_mfa_code`, `mfa_required`) are plain errors.
 * - A sign-in whose organization requires MFA the user has not set up (`mfa_enrollment_required` in the
 *   token response, or a 403 with that code from any route) is authenticated but restricted: the app
 *   shows the MFA setup page only.
 */
import type { AuthResponse, AuthUser, ListResponse, LoginRequest } from '@/types/api';
import type { LogoutResponse, SsoMfaRequest } from '@/types/api';

export const API_BASE = '/api/v1';
/** Refresh and logout need it (any value): a cross-site form cannot send a custom header. */
export const CSRF_HEADER = 'x-streamspace-csrf';
/** 403 code: the org requires MFA and this sign-in has none; only the account/MFA routes answer. */
export const MFA_ENROLLMENT_REQUIRED = 'mfa_enrollment_required';

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

export function isApiError(e: unknown, code?: string): e is ApiError {
  return e instanceof ApiError && (code === undefined || e.code === code);
}

/** A human-readable message for any thrown value. */
export function errorMessage(e: unknown): string {
  if (e instanceof ApiError) return e.message || e.code;
  if (e instanceof Error) return e.message;
  return String(e);
}

/** 401 codes that judge the request's content (credentials, codes), not the session. */
const REQUEST_401_CODES = new Set(['invalid_credentials', 'invalid_mfa_code', 'mfa_required']);

export type SignOutReason = 'signed_out' | 'expired' | 'mfa_enrolled';

export type AuthState =
  | { status: 'unknown' }
  | { status: 'authenticated'; user: AuthUser; mfaEnrollmentRequired: boolean }
  | { status: 'anonymous'; reason: 'initial' | SignOutReason };

export type QueryValue = string | number | boolean | null | undefined;
export type Query = Record<string, QueryValue>;

export interface RequestOptions {
  method?: string;
  query?: Query;
  /** JSON-serialised when present. */
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Skip the bearer header and the refresh-and-retry logic (used by /auth/*). */
  anonymous?: boolean;
}

type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface ApiClientOptions {
  baseUrl?: string;
  fetch?: FetchLike;
  /** Refresh this many seconds before the access token expires (0 disables proactive refresh). */
  refreshLeewaySeconds?: number;
}

export function buildQuery(query?: Query): string {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === '') continue;
    params.append(k, String(v));
  }
  const s = params.toString();
  return s ? `?${s}` : '';
}

async function toApiError(res: Response): Promise<ApiError> {
  let code = `http_${res.status}`;
  let message = res.statusText || `Request failed with status ${res.status}`;
  try {
    const text = await res.text();
    if (text) {
      const body = JSON.parse(text) as Partial<{ error: { code?: unknown; message?: unknown } }>;
      if (body.error && typeof body.error.code === 'string') code = body.error.code;
      if (body.error && typeof body.error.message === 'string') message = body.error.message;
    }
  } catch {
    // not JSON: keep the generic message
  }
  return new ApiError(res.status, code, message);
}

/** The `end_session_url` of a logout answer, if it has one (a 204 has no body). */
async function endSessionUrl(res: Response): Promise<string | null> {
  const text = await res.text();
  if (!text) return null;
  const url = (JSON.parse(text) as LogoutResponse).end_session_url;
  return typeof url === 'string' && /^https?:\/\//.test(url) ? url : null;
}

export class ApiClient {
  readonly baseUrl: string;
  private readonly fetchImpl: FetchLike;
  private readonly leeway: number;
  private token: string | null = null;
  private state: AuthState = { status: 'unknown' };
  private readonly listeners = new Set<() => void>();
  private refreshInFlight: Promise<boolean> | null = null;
  private restorePromise: Promise<void> | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(options: ApiClientOptions = {}) {
    this.baseUrl = options.baseUrl ?? API_BASE;
    // Late-bound so tests can stub globalThis.fetch after the client was created.
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.leeway = options.refreshLeewaySeconds ?? 30;
  }

  // ---- auth state (a tiny external store for useSyncExternalStore) ----

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getAuthState = (): AuthState => this.state;

  get isAuthenticated(): boolean {
    return this.token !== null;
  }

  private setState(next: AuthState): void {
    this.state = next;
    for (const l of [...this.listeners]) l();
  }

  private accept(auth: AuthResponse): void {
    this.token = auth.access_token;
    this.scheduleRefresh(auth.expires_in);
    const prev = this.state;
    const mfaEnrollmentRequired = auth.mfa_enrollment_required === true;
    // Keep the same object when nothing visible changed, so subscribers do not re-render on every refresh.
    if (
      prev.status === 'authenticated' &&
      prev.mfaEnrollmentRequired === mfaEnrollmentRequired &&
      prev.user.id === auth.user.id &&
      prev.user.role === auth.user.role &&
      prev.user.username === auth.user.username &&
      prev.user.org_id === auth.user.org_id
    ) {
      return;
    }
    this.setState({ status: 'authenticated', user: auth.user, mfaEnrollmentRequired });
  }

  /** A route answered 403 `mfa_enrollment_required`: the org now requires MFA this sign-in lacks. */
  private requireMfaEnrollment(): void {
    const prev = this.state;
    if (prev.status === 'authenticated' && !prev.mfaEnrollmentRequired) {
      this.setState({ ...prev, mfaEnrollmentRequired: true });
    }
  }

  private scheduleRefresh(expiresIn: number): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    if (!this.leeway || !Number.isFinite(expiresIn) || expiresIn <= this.leeway * 2) return;
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = null;
      void this.refresh();
    }, (expiresIn - this.leeway) * 1000);
  }

  /** Forget the token locally (no server call) and tell subscribers. */
  signOutLocally(reason: SignOutReason = 'signed_out'): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    this.token = null;
    this.setState({ status: 'anonymous', reason });
  }

  /** Test helper: back to the state of a freshly loaded page. */
  reset(): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    this.token = null;
    this.refreshInFlight = null;
    this.restorePromise = null;
    this.state = { status: 'unknown' };
    for (const l of [...this.listeners]) l();
  }

  // ---- auth endpoints ----

  login(request: LoginRequest): Promise<AuthResponse> {
    return this.signIn('/auth/login', request);
  }

  /** The TOTP step of a single sign-on whose org still asks for it: the ticket stands for the IdP's answer. */
  completeSsoMfa(request: SsoMfaRequest): Promise<AuthResponse> {
    return this.signIn('/auth/sso/mfa', request);
  }

  private async signIn(path: string, body: unknown): Promise<AuthResponse> {
    const auth = await this.request<AuthResponse>(path, { method: 'POST', body, anonymous: true });
    this.accept(auth);
    return auth;
  }

  /**
   * Ask for a new access token with the refresh cookie. Concurrent callers share one request (the
   * server may rotate the refresh cookie, so two parallel refreshes could invalidate each other).
   */
  refresh(): Promise<boolean> {
    this.refreshInFlight ??= (async () => {
      try {
        const res = await this.fetchImpl(this.baseUrl + '/auth/refresh', {
          method: 'POST',
          credentials: 'include',
          headers: { [CSRF_HEADER]: '1', Accept: 'application/json' },
        });
        if (!res.ok) return false;
        this.accept((await res.json()) as AuthResponse);
        return true;
      } catch {
        return false;
      } finally {
        this.refreshInFlight = null;
      }
    })();
    return this.refreshInFlight;
  }

  /** Restore the session on page load (once per client). */
  restore(): Promise<void> {
    this.restorePromise ??= this.refresh().then((ok) => {
      if (!ok && this.state.status === 'unknown') this.setState({ status: 'anonymous', reason: 'initial' });
    });
    return this.restorePromise;
  }

  /**
   * Revoke the refresh cookie's sign-in on the server, then forget the token. The bearer goes along so
   * the audit log names who signed out; the server rejects an expired one with 401, so then the call is
   * repeated without it (the cookie alone signs out). Resolves to the identity provider's logout URL when
   * the sign-in came from one that offers it (the caller navigates there to end the IdP's session too).
   */
  async logout(reason: SignOutReason = 'signed_out'): Promise<string | null> {
    const send = (token: string | null) =>
      this.fetchImpl(this.baseUrl + '/auth/logout', {
        method: 'POST',
        credentials: 'include',
        headers: { [CSRF_HEADER]: '1', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      });
    try {
      let res = await send(this.token);
      if (res.status === 401 && this.token) res = await send(null);
      return res.ok ? await endSessionUrl(res) : null;
    } catch {
      // signing out locally is what matters
      return null;
    } finally {
      this.signOutLocally(reason);
    }
  }

  // ---- generic requests ----

  url(path: string, query?: Query): string {
    return this.baseUrl + path + buildQuery(query);
  }

  private async send(path: string, options: RequestOptions, token: string | null): Promise<Response> {
    const headers: Record<string, string> = { Accept: 'application/json', ...options.headers };
    let body: string | undefined;
    if (options.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    if (token) headers.Authorization = `Bearer ${token}`;
    if (options.anonymous) {
      headers[CSRF_HEADER] = '1';
    }
    try {
      return await this.fetchImpl(this.url(path, options.query), {
        method: options.method ?? 'GET',
        headers,
        body,
        signal: options.signal,
        credentials: options.anonymous ? 'include' : 'same-origin',
      });
    } catch (e) {
      if (e instanceof DOMException && e.name === 'AbortError') throw e;
      throw new ApiError(0, 'network_error', 'The server could not be reached.');
    }
  }

  /**
   * Send a request and return the raw `Response` when it is 2xx; throws `ApiError` otherwise.
   * Authenticated requests get one refresh-and-retry on 401, then the client signs out.
   */
  async fetch(path: string, options: RequestOptions = {}): Promise<Response> {
    if (options.anonymous) {
      const res = await this.send(path, options, null);
      if (!res.ok) throw await toApiError(res);
      return res;
    }
    const usedToken = this.token;
    let res = await this.send(path, options, usedToken);
    if (res.status === 401) {
      const first = await toApiError(res);
      // A wrong password or MFA code (password change, MFA confirm/disable) is an answer about the
      // request, not about the access token: no refresh, no sign-out.
      if (REQUEST_401_CODES.has(first.code)) throw first;
      // Another call may already have refreshed the token while this one was in flight.
      const fresh = this.token !== null && this.token !== usedToken ? true : await this.refresh();
      if (!fresh) {
        this.signOutLocally('expired');
        throw first;
      }
      res = await this.send(path, options, this.token);
      if (res.status === 401) {
        const err = await toApiError(res);
        this.signOutLocally('expired');
        throw err;
      }
    }
    if (!res.ok) {
      const err = await toApiError(res);
      if (err.status === 403 && err.code === MFA_ENROLLMENT_REQUIRED) this.requireMfaEnrollment();
      throw err;
    }
    return res;
  }

  async request<T>(path: string, options: RequestOptions = {}): Promise<T> {
    const res = await this.fetch(path, options);
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  get<T>(path: string, query?: Query, signal?: AbortSignal): Promise<T> {
    return this.request<T>(path, { query, signal });
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>(path, { method: 'POST', body });
  }

  patch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>(path, { method: 'PATCH', body });
  }

  put<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>(path, { method: 'PUT', body });
  }

  delete<T = void>(path: string): Promise<T> {
    return this.request<T>(path, { method: 'DELETE' });
  }

  list<T>(path: string, query?: Query, signal?: AbortSignal): Promise<ListResponse<T>> {
    return this.get<ListResponse<T>>(path, query, signal);
  }

  /** Follow `next_cursor` until the end (or `maxPages`), for small collections the UI shows whole. */
  async listAll<T>(path: string, query: Query = {}, signal?: AbortSignal, maxPages = 20): Promise<ListResponse<T>> {
    const items: T[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < maxPages; page++) {
      const res: ListResponse<T> = await this.list<T>(path, { limit: 100, ...query, cursor }, signal);
      items.push(...res.items);
      cursor = res.next_cursor ?? null;
      if (!cursor) break;
    }
    return { items, next_cursor: cursor };
  }
}

/** The application's client. Feature `api/` modules use this instance. */
export const api = new ApiClient();
