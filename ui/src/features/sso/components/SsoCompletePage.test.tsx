import { describe, expect, it } from 'vitest';
import { screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { apiError, json, mockFetch } from '@/testing/http';
import { authResponse } from '@/testing/fixtures';
import { renderRoutes } from '@/testing/render';
import { SsoCompletePage } from './SsoCompletePage';

const routes = [
  { path: '/login/sso', element: <SsoCompletePage /> },
  { path: '/login', element: <h1>Sign-in page</h1> },
  { path: '/', element: <h1>Catalog home</h1> },
  { path: '/sessions', element: <h1>My sessions</h1> },
];

describe('SsoCompletePage', () => {
  it('lands on `next` once the refresh cookie the flow set has signed the browser in', async () => {
    const { calls } = mockFetch({ 'POST /api/v1/auth/refresh': () => json(authResponse()) });
    renderRoutes(routes, '/login/sso?next=%2Fsessions');
    expect(await screen.findByRole('heading', { name: 'My sessions' })).toBeInTheDocument();
    expect(calls.map((c) => c.path)).toEqual(['/api/v1/auth/refresh']);
  });

  it('never follows a `next` that leaves the app', async () => {
    mockFetch({ 'POST /api/v1/auth/refresh': () => json(authResponse()) });
    renderRoutes(routes, '/login/sso?next=%2F%2Fevil.example%2F');
    expect(await screen.findByRole('heading', { name: 'Catalog home' })).toBeInTheDocument();
  });

  it('says so when no session came out of a successful flow (the cookie did not stick)', async () => {
    mockFetch({ 'POST /api/v1/auth/refresh': () => apiError(401, 'unauthorized') });
    renderRoutes(routes, '/login/sso?next=%2F');
    expect(await screen.findByRole('alert')).toHaveTextContent('could not be completed');
    await userEvent.setup({ delay: null }).click(screen.getByRole('link', { name: 'Back to sign-in' }));
    expect(await screen.findByRole('heading', { name: 'Sign-in page' })).toBeInTheDocument();
  });

  it('asks for the TOTP code with the ticket, shows a wrong code, then signs in', async () => {
    const { calls } = mockFetch({
      'POST /api/v1/auth/refresh': () => apiError(401, 'unauthorized'),
      'POST /api/v1/auth/sso/mfa': (c) =>
        (c.body as { totp_code?: string }).totp_code === '123456' ? json(authResponse()) : apiError(401, 'invalid_mfa_code'),
    });
    renderRoutes(routes, '/login/sso?mfa=ticket-1&next=%2Fsessions');
    const user = userEvent.setup({ delay: null });
    const code = await screen.findByLabelText(/authentication code/i);
    await user.type(code, '000000');
    await user.click(screen.getByRole('button', { name: 'Verify' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('That code is not valid');
    await user.clear(code);
    await user.type(code, '123 456');
    await user.click(screen.getByRole('button', { name: 'Verify' }));
    expect(await screen.findByRole('heading', { name: 'My sessions' })).toBeInTheDocument();
    expect(calls.filter((c) => c.path === '/api/v1/auth/sso/mfa').map((c) => c.body)).toEqual([
      { ticket: 'ticket-1', totp_code: '000000' },
      { ticket: 'ticket-1', totp_code: '123456' },
    ]);
  });

  it('explains the error code the flow ended with, even for a browser still signed in', async () => {
    mockFetch({ 'POST /api/v1/auth/refresh': () => json(authResponse()) });
    renderRoutes(routes, '/login/sso?error=link_required');
    expect(await screen.findByRole('alert')).toHaveTextContent('An account with your email already exists here');
  });
});
