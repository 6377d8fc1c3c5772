import { describe, expect, it } from 'vitest';
import { screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { api } from '@/lib/api';
import { RequireAuth } from '@/app/guards';
import { apiError, json, mockFetch } from '@/testing/http';
import { authResponse, member } from '@/testing/fixtures';
import { renderRoutes } from '@/testing/render';
import { MfaSetupPage } from './MfaSetupPage';
import { SignInPage } from './SignInPage';

const routes = [
  { path: '/login', element: <SignInPage /> },
  { path: '/setup-mfa', element: <MfaSetupPage /> },
  { element: <RequireAuth />, children: [{ path: '/', element: <h1>Catalog home</h1> }] },
];

describe('MfaSetupPage (org requires MFA, user has none)', () => {
  it('shows only the MFA setup, then asks to sign in again with a code', async () => {
    const { calls } = mockFetch({
      'POST /api/v1/auth/refresh': () => json(authResponse(member, 'tok', true)),
      'POST /api/v1/me/mfa/enroll': () =>
        json({ secret: 'JBSWY3DPEHPK3PXP', otpauth_uri: 'otpauth://totp/StreamSpace:alice', qr_png_base64: 'iVBORw0KGgo=' }),
      'POST /api/v1/me/mfa/confirm': () => json({ recovery_codes: ['aaaaa-bbbbb', 'ccccc-ddddd'] }),
      'POST /api/v1/auth/logout': () => new Response(null, { status: 204 }),
      'GET /api/v1/events': () => apiError(403, 'mfa_enrollment_required'),
    });
    const { router } = renderRoutes(routes, '/');
    const user = userEvent.setup({ delay: null });

    expect(await screen.findByRole('heading', { name: 'Set up two-factor authentication' })).toBeInTheDocument();
    expect(router.state.location.pathname).toBe('/setup-mfa');
    // Nothing but the setup: no event stream, no app pages.
    expect(calls.some((c) => c.path === '/api/v1/events')).toBe(false);

    await user.click(screen.getByRole('button', { name: 'Set up two-factor authentication' }));
    expect(await screen.findByTestId('mfa-secret')).toHaveTextContent('JBSWY3DPEHPK3PXP');
    await user.type(screen.getByLabelText(/code from the app/i), '123 456');
    await user.click(screen.getByRole('button', { name: 'Turn on' }));
    const dialog = await screen.findByRole('dialog', { name: 'Recovery codes' });
    expect(within(dialog).getByTestId('one-time-secret')).toHaveTextContent('aaaaa-bbbbb');
    expect(calls.find((c) => c.path === '/api/v1/me/mfa/confirm')!.body).toEqual({ code: '123456' });

    await user.click(within(dialog).getByRole('button', { name: 'I have saved it' }));
    expect(await screen.findByText(/Two-factor authentication is on/)).toBeInTheDocument();
    expect(router.state.location.pathname).toBe('/login');
    expect(calls.filter((c) => c.path === '/api/v1/auth/logout')).toHaveLength(1);
    expect(api.getAuthState()).toEqual({ status: 'anonymous', reason: 'mfa_enrolled' });
  });

  it('sends a fully signed-in user away from the setup page', async () => {
    mockFetch({
      'POST /api/v1/auth/refresh': () => json(authResponse(member)),
      'GET /api/v1/events': () => apiError(404, 'route_not_found'),
    });
    renderRoutes(routes, '/setup-mfa');
    expect(await screen.findByRole('heading', { name: 'Catalog home' })).toBeInTheDocument();
  });
});
