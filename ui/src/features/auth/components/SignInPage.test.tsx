import { describe, expect, it } from 'vitest';
import { screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { api } from '@/lib/api';
import { apiError, json, mockFetch } from '@/testing/http';
import { authResponse, member } from '@/testing/fixtures';
import { renderRoutes } from '@/testing/render';
import { SignInPage } from './SignInPage';

const routes = [
  { path: '/login', element: <SignInPage /> },
  { path: '/login/:org', element: <SignInPage /> },
  { path: '/', element: <h1>Catalog home</h1> },
  { path: '/admin/users', element: <h1>Users page</h1> },
];

describe('SignInPage', () => {
  it('signs in with username and password', async () => {
    const { calls } = mockFetch({
      'POST /api/v1/auth/refresh': () => apiError(401, 'unauthorized'),
      'POST /api/v1/auth/login': () => json(authResponse(member, 'tok')),
    });
    renderRoutes(routes, '/login');
    const user = userEvent.setup({ delay: null });
    await user.type(await screen.findByLabelText(/username/i), 'alice');
    await user.type(screen.getByLabelText(/password/i), 'correct horse');
    await user.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(await screen.findByRole('heading', { name: 'Catalog home' })).toBeInTheDocument();
    const login = calls.find((c) => c.path === '/api/v1/auth/login')!;
    expect(login.body).toEqual({ username: 'alice', password: 'correct horse' });
    expect(api.getAuthState()).toEqual({ status: 'authenticated', user: member, mfaEnrollmentRequired: false });
  });

  it('shows a clear error for wrong credentials and rate limiting', async () => {
    let n = 0;
    mockFetch({
      'POST /api/v1/auth/refresh': () => apiError(401, 'unauthorized'),
      'POST /api/v1/auth/login': () => (++n === 1 ? apiError(401, 'invalid_credentials') : apiError(429, 'too_many_attempts')),
    });
    renderRoutes(routes, '/login');
    const user = userEvent.setup({ delay: null });
    await user.type(await screen.findByLabelText(/username/i), 'alice');
    await user.type(screen.getByLabelText(/password/i), 'wrong');
    await user.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('Wrong username or password.');
    await user.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(await screen.findByText(/Too many attempts/)).toBeInTheDocument();
  });

  it('asks for a TOTP code when the server answers mfa_required, then signs in', async () => {
    const { calls } = mockFetch({
      'POST /api/v1/auth/refresh': () => apiError(401, 'unauthorized'),
      'POST /api/v1/auth/login': (c) => {
        const b = c.body as { totp_code?: string };
        if (!b.totp_code) return apiError(401, 'mfa_required');
        return b.totp_code === '123456' ? json(authResponse()) : apiError(401, 'invalid_mfa_code');
      },
    });
    renderRoutes(routes, '/login');
    const user = userEvent.setup({ delay: null });
    await user.type(await screen.findByLabelText(/username/i), 'alice');
    await user.type(screen.getByLabelText(/password/i), 'pw');
    await user.click(screen.getByRole('button', { name: 'Sign in' }));

    const code = await screen.findByLabelText(/authentication code/i);
    expect(screen.getByText('Two-factor authentication')).toBeInTheDocument();
    await user.type(code, '000000');
    await user.click(screen.getByRole('button', { name: 'Verify' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('That code is not valid');

    await user.clear(code);
    await user.type(code, '123 456');
    await user.click(screen.getByRole('button', { name: 'Verify' }));
    expect(await screen.findByRole('heading', { name: 'Catalog home' })).toBeInTheDocument();
    const logins = calls.filter((c) => c.path === '/api/v1/auth/login').map((c) => c.body);
    expect(logins).toEqual([
      { username: 'alice', password: 'pw' },
      { username: 'alice', password: 'pw', totp_code: '000000' },
      { username: 'alice', password: 'pw', totp_code: '123456' },
    ]);
  });

  it('accepts a recovery code instead and returns to where the user came from', async () => {
    const { calls } = mockFetch({
      'POST /api/v1/auth/refresh': () => apiError(401, 'unauthorized'),
      'POST /api/v1/auth/login': (c) =>
        (c.body as { recovery_code?: string }).recovery_code ? json(authResponse()) : apiError(401, 'mfa_required'),
    });
    renderRoutes(routes, { pathname: '/login', state: { from: '/admin/users' } });
    const user = userEvent.setup({ delay: null });
    await user.type(await screen.findByLabelText(/username/i), 'alice');
    await user.type(screen.getByLabelText(/password/i), 'pw');
    await user.click(screen.getByRole('button', { name: 'Sign in' }));
    await user.click(await screen.findByRole('button', { name: 'Use a recovery code' }));
    await user.type(screen.getByLabelText(/recovery code/i), 'abcd-efgh');
    await user.click(screen.getByRole('button', { name: 'Verify' }));
    expect(await screen.findByRole('heading', { name: 'Users page' })).toBeInTheDocument();
    expect(calls.at(-1)!.body).toEqual({ username: 'alice', password: 'pw', recovery_code: 'abcd-efgh' });
  });

  it('skips the form when the refresh cookie restores the session', async () => {
    mockFetch({ 'POST /api/v1/auth/refresh': () => json(authResponse()) });
    renderRoutes(routes, '/login');
    expect(await screen.findByRole('heading', { name: 'Catalog home' })).toBeInTheDocument();
  });

  it('finds the providers of a work email and starts their flow with where to land', async () => {
    const { calls } = mockFetch({
      'POST /api/v1/auth/refresh': () => apiError(401, 'unauthorized'),
      'GET /api/v1/auth/sso/discover': (c) =>
        json(
          c.query.get('email') === 'bob@acme.example'
            ? { org: 'acme', providers: [{ id: 'p1', name: 'okta', display_name: 'Okta', kind: 'saml', start_url: '/api/v1/auth/sso/p1/start' }] }
            : { org: null, providers: [] },
        ),
    });
    renderRoutes(routes, { pathname: '/login', state: { from: '/admin/users' } });
    const user = userEvent.setup({ delay: null });
    const box = await screen.findByLabelText(/work email or organization/i);
    await user.type(box, 'nobody@else.example');
    await user.click(screen.getByRole('button', { name: 'Continue' }));
    expect(await screen.findByText(/No single sign-on was found/)).toBeInTheDocument();
    await user.clear(box);
    await user.type(box, 'bob@acme.example');
    await user.click(screen.getByRole('button', { name: 'Continue' }));
    const button = await screen.findByRole('link', { name: 'Sign in with Okta' });
    expect(button).toHaveAttribute('href', '/api/v1/auth/sso/p1/start?return_to=%2Fadmin%2Fusers');
    expect(calls.filter((c) => c.path === '/api/v1/auth/sso/discover').map((c) => c.query.toString())).toEqual([
      'email=nobody%40else.example',
      'email=bob%40acme.example',
    ]);
    expect(screen.getByLabelText(/username/i)).toBeInTheDocument();
  });

  it('/login/<org> shows that organization\'s buttons at once', async () => {
    mockFetch({
      'POST /api/v1/auth/refresh': () => apiError(401, 'unauthorized'),
      'GET /api/v1/auth/sso/discover': (c) =>
        json({
          org: c.query.get('org'),
          providers: [{ id: 'p2', name: 'kc', display_name: 'Keycloak', kind: 'oidc', start_url: '/api/v1/auth/sso/p2/start' }],
        }),
    });
    renderRoutes(routes, '/login/acme');
    expect(await screen.findByRole('link', { name: 'Sign in with Keycloak' })).toHaveAttribute('href', '/api/v1/auth/sso/p2/start');
    expect(screen.queryByLabelText(/work email or organization/i)).not.toBeInTheDocument();
  });
});
