import { describe, expect, it, vi } from 'vitest';
import { ApiClient, ApiError, CSRF_HEADER, buildQuery } from './api';
import { apiError, json, mockFetch } from '@/testing/http';
import { authResponse, member } from '@/testing/fixtures';

function client() {
  return new ApiClient({ refreshLeewaySeconds: 0 });
}

describe('ApiClient auth', () => {
  it('keeps the access token in memory and sends it as a bearer header', async () => {
    const { calls } = mockFetch({
      'POST /api/v1/auth/login': () => json(authResponse(member, 'secret-token')),
      'GET /api/v1/me': () => json({ id: 'u1' }),
    });
    const api = client();
    await api.login({ username: 'alice', password: 'pw' });
    expect(api.getAuthState()).toEqual({ status: 'authenticated', user: member, mfaEnrollmentRequired: false });
    await api.get('/me');
    expect(calls[1]!.headers.authorization).toBe('Bearer secret-token');
    expect(calls[0]!.headers.authorization).toBeUndefined();
    expect(JSON.stringify({ ...window.localStorage })).not.toContain('secret-token');
    expect(JSON.stringify({ ...window.sessionStorage })).not.toContain('secret-token');
    expect(document.cookie).not.toContain('secret-token');
  });

  it('restores the session on load through the refresh endpoint with the CSRF header and cookies', async () => {
    const { calls } = mockFetch({ 'POST /api/v1/auth/refresh': () => json(authResponse()) });
    const api = client();
    await Promise.all([api.restore(), api.restore()]);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.headers[CSRF_HEADER.toLowerCase()]).toBe('1');
    expect(calls[0]!.credentials).toBe('include');
    expect(calls[0]!.body).toBeUndefined();
    expect(api.getAuthState().status).toBe('authenticated');
  });

  it('is anonymous after load when the refresh cookie is missing', async () => {
    mockFetch({ 'POST /api/v1/auth/refresh': () => apiError(401, 'unauthorized') });
    const api = client();
    await api.restore();
    expect(api.getAuthState()).toEqual({ status: 'anonymous', reason: 'initial' });
  });

  it('refreshes once and retries a request that got 401', async () => {
    let meCalls = 0;
    const { calls } = mockFetch({
      'POST /api/v1/auth/login': () => json(authResponse(member, 'old')),
      'POST /api/v1/auth/refresh': () => json(authResponse(member, 'new')),
      'GET /api/v1/me': (c) => {
        meCalls++;
        return c.headers.authorization === 'Bearer new' ? json({ ok: true }) : apiError(401, 'unauthorized');
      },
    });
    const api = client();
    await api.login({ username: 'alice', password: 'pw' });
    await expect(api.get('/me')).resolves.toEqual({ ok: true });
    expect(meCalls).toBe(2);
    expect(calls.filter((c) => c.path === '/api/v1/auth/refresh')).toHaveLength(1);
    expect(api.getAuthState().status).toBe('authenticated');
  });

  it('shares one refresh between concurrent 401s', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { calls } = mockFetch({
      'POST /api/v1/auth/login': () => json(authResponse(member, 'old')),
      'POST /api/v1/auth/refresh': async () => {
        await gate;
        return json(authResponse(member, 'new'));
      },
      'GET /api/v1/a': (c) => (c.headers.authorization === 'Bearer new' ? json('a') : apiError(401, 'unauthorized')),
      'GET /api/v1/b': (c) => (c.headers.authorization === 'Bearer new' ? json('b') : apiError(401, 'unauthorized')),
    });
    const api = client();
    await api.login({ username: 'alice', password: 'pw' });
    const both = Promise.all([api.get('/a'), api.get('/b')]);
    await vi.waitFor(() => expect(calls.filter((c) => c.path.endsWith('/auth/refresh'))).toHaveLength(1));
    release();
    await expect(both).resolves.toEqual(['a', 'b']);
    expect(calls.filter((c) => c.path.endsWith('/auth/refresh'))).toHaveLength(1);
  });

  it('signs out when the refresh fails', async () => {
    mockFetch({
      'POST /api/v1/auth/login': () => json(authResponse(member, 'old')),
      'POST /api/v1/auth/refresh': () => apiError(401, 'refresh_token_reused'),
      'GET /api/v1/me': () => apiError(401, 'unauthorized', 'missing, invalid or expired credentials'),
    });
    const api = client();
    const seen: string[] = [];
    api.subscribe(() => seen.push(api.getAuthState().status));
    await api.login({ username: 'alice', password: 'pw' });
    const err = await api.get('/me').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(401);
    expect(api.getAuthState()).toEqual({ status: 'anonymous', reason: 'expired' });
    expect(api.isAuthenticated).toBe(false);
    expect(seen).toEqual(['authenticated', 'anonymous']);
  });

  it('does not loop when the retried request is still 401', async () => {
    const { calls } = mockFetch({
      'POST /api/v1/auth/login': () => json(authResponse(member, 'old')),
      'POST /api/v1/auth/refresh': () => json(authResponse(member, 'new')),
      'GET /api/v1/me': () => apiError(401, 'nope'),
    });
    const api = client();
    await api.login({ username: 'alice', password: 'pw' });
    await expect(api.get('/me')).rejects.toMatchObject({ status: 401, code: 'nope' });
    expect(calls.filter((c) => c.path === '/api/v1/me')).toHaveLength(2);
    expect(calls.filter((c) => c.path.endsWith('/auth/refresh'))).toHaveLength(1);
    expect(api.getAuthState().status).toBe('anonymous');
  });

  it('does not refresh on a 401 from login (mfa_required is an answer, not an expiry)', async () => {
    const { calls } = mockFetch({
      'POST /api/v1/auth/login': () => apiError(401, 'mfa_required', 'MFA code required'),
    });
    const api = client();
    await expect(api.login({ username: 'alice', password: 'pw' })).rejects.toMatchObject({
      status: 401,
      code: 'mfa_required',
      message: 'MFA code required',
    });
    expect(calls).toHaveLength(1);
  });

  it('treats a wrong MFA code or password on an authenticated call as a plain error', async () => {
    const { calls } = mockFetch({
      'POST /api/v1/auth/login': () => json(authResponse()),
      'POST /api/v1/me/mfa/confirm': () => apiError(401, 'invalid_mfa_code'),
      'POST /api/v1/me/password': () => apiError(401, 'invalid_credentials'),
    });
    const api = client();
    await api.login({ username: 'alice', password: 'pw' });
    await expect(api.post('/me/mfa/confirm', { code: '1' })).rejects.toMatchObject({ code: 'invalid_mfa_code' });
    await expect(api.post('/me/password', {})).rejects.toMatchObject({ code: 'invalid_credentials' });
    expect(calls.some((c) => c.path.endsWith('/auth/refresh'))).toBe(false);
    expect(api.getAuthState().status).toBe('authenticated');
  });

  it('logout calls the server with the cookie, the CSRF header and the bearer (for the audit log), then forgets the token', async () => {
    const { calls } = mockFetch({
      'POST /api/v1/auth/login': () => json(authResponse(member, 'tok')),
      'POST /api/v1/auth/logout': () => new Response(null, { status: 204 }),
    });
    const api = client();
    await api.login({ username: 'alice', password: 'pw' });
    await api.logout();
    expect(CSRF_HEADER).toBe('x-streamspace-csrf');
    expect(calls[1]!.headers[CSRF_HEADER]).toBe('1');
    expect(calls[1]!.headers.authorization).toBe('Bearer tok');
    expect(calls[1]!.credentials).toBe('include');
    expect(api.getAuthState()).toEqual({ status: 'anonymous', reason: 'signed_out' });
  });

  it('logout repeats without the bearer when the server rejects an expired one', async () => {
    const { calls } = mockFetch({
      'POST /api/v1/auth/login': () => json(authResponse(member, 'tok')),
      'POST /api/v1/auth/logout': (c) =>
        c.headers.authorization ? apiError(401, 'unauthorized') : new Response(null, { status: 204 }),
    });
    const api = client();
    await api.login({ username: 'alice', password: 'pw' });
    await api.logout();
    const logouts = calls.filter((c) => c.path === '/api/v1/auth/logout');
    expect(logouts.map((c) => c.headers.authorization)).toEqual(['Bearer tok', undefined]);
    expect(logouts[1]!.headers[CSRF_HEADER]).toBe('1');
    expect(api.getAuthState()).toEqual({ status: 'anonymous', reason: 'signed_out' });
  });

  it("logout hands back the identity provider's end_session_url, and only an http(s) one", async () => {
    let url = 'https://idp.example/logout?id_token_hint=x';
    mockFetch({
      'POST /api/v1/auth/login': () => json(authResponse(member, 'tok')),
      'POST /api/v1/auth/logout': () => json({ end_session_url: url }),
    });
    const api = client();
    await api.login({ username: 'alice', password: 'pw' });
    expect(await api.logout()).toBe('https://idp.example/logout?id_token_hint=x');
    url = 'javascript:alert(1)';
    await api.login({ username: 'alice', password: 'pw' });
    expect(await api.logout()).toBeNull();
    expect(api.getAuthState()).toEqual({ status: 'anonymous', reason: 'signed_out' });
  });

  it('completes an SSO sign-in with its ticket and a TOTP code like a password sign-in', async () => {
    const { calls } = mockFetch({ 'POST /api/v1/auth/sso/mfa': () => json(authResponse(member, 'tok-sso')) });
    const api = client();
    await api.completeSsoMfa({ ticket: 't-1', totp_code: '123456' });
    expect(calls[0]!.body).toEqual({ ticket: 't-1', totp_code: '123456' });
    expect(calls[0]!.headers[CSRF_HEADER]).toBe('1');
    expect(api.getAuthState()).toEqual({ status: 'authenticated', user: member, mfaEnrollmentRequired: false });
  });

  it('marks a sign-in that must enroll MFA first (login flag or a 403 from any route)', async () => {
    let required = true;
    mockFetch({
      'POST /api/v1/auth/login': () => json(authResponse(member, 'tok', required)),
      'GET /api/v1/sessions': () =>
        apiError(403, 'mfa_enrollment_required', 'your organization requires multi-factor authentication'),
    });
    const api = client();
    await api.login({ username: 'alice', password: 'pw' });
    expect(api.getAuthState()).toEqual({ status: 'authenticated', user: member, mfaEnrollmentRequired: true });

    required = false;
    await api.login({ username: 'alice', password: 'pw' });
    expect(api.getAuthState()).toMatchObject({ mfaEnrollmentRequired: false });
    // The org turned the policy on since: the next call says so, and the app switches to the setup page.
    await expect(api.get('/sessions')).rejects.toMatchObject({ status: 403, code: 'mfa_enrollment_required' });
    expect(api.getAuthState()).toMatchObject({ status: 'authenticated', mfaEnrollmentRequired: true });
  });

  it('refreshes proactively before the token expires', async () => {
    vi.useFakeTimers();
    try {
      const { calls } = mockFetch({
        'POST /api/v1/auth/login': () => json({ ...authResponse(), expires_in: 300 }),
        'POST /api/v1/auth/refresh': () => json({ ...authResponse(member, 'tok-2'), expires_in: 300 }),
      });
      const api = new ApiClient({ refreshLeewaySeconds: 30 });
      await api.login({ username: 'alice', password: 'pw' });
      await vi.advanceTimersByTimeAsync(269_000);
      expect(calls.filter((c) => c.path.endsWith('/auth/refresh'))).toHaveLength(0);
      await vi.advanceTimersByTimeAsync(2_000);
      expect(calls.filter((c) => c.path.endsWith('/auth/refresh'))).toHaveLength(1);
      api.signOutLocally();
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('ApiClient requests', () => {
  it('turns the error envelope into ApiError', async () => {
    mockFetch({ 'GET /api/v1/x': () => apiError(409, 'name_taken', 'Name already in use') });
    const err = await client().get('/x', undefined).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 409, code: 'name_taken', message: 'Name already in use' });
  });

  it('copes with non-JSON errors and network failures', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => new Response('<html>bad gateway</html>', { status: 502, statusText: 'Bad Gateway' })));
    await expect(client().get('/x')).rejects.toMatchObject({ status: 502, code: 'http_502', message: 'Bad Gateway' });
    vi.stubGlobal('fetch', vi.fn(async () => Promise.reject(new TypeError('Failed to fetch'))));
    await expect(client().get('/x')).rejects.toMatchObject({ status: 0, code: 'network_error' });
  });

  it('sends JSON bodies and returns undefined for 204', async () => {
    const { calls } = mockFetch({ 'POST /api/v1/me/password': () => new Response(null, { status: 204 }) });
    await expect(client().post('/me/password', { current_password: 'a', new_password: 'b' })).resolves.toBeUndefined();
    expect(calls[0]!.headers['content-type']).toBe('application/json');
    expect(calls[0]!.body).toEqual({ current_password: 'a', new_password: 'b' });
  });

  it('listAll follows next_cursor', async () => {
    const { calls } = mockFetch({
      'GET /api/v1/users': (c) =>
        c.query.get('cursor') === 'p2'
          ? json({ items: [{ id: 3 }], next_cursor: null })
          : json({ items: [{ id: 1 }, { id: 2 }], next_cursor: 'p2' }),
    });
    const res = await client().listAll<{ id: number }>('/users');
    expect(res.items.map((i) => i.id)).toEqual([1, 2, 3]);
    expect(calls.map((c) => c.query.get('cursor'))).toEqual([null, 'p2']);
    expect(calls[0]!.query.get('limit')).toBe('100');
  });

  it('buildQuery drops empty values', () => {
    expect(buildQuery({ a: 'x y', b: '', c: null, d: undefined, e: 0, f: false })).toBe('?a=x+y&e=0&f=false');
    expect(buildQuery({})).toBe('');
  });
});
