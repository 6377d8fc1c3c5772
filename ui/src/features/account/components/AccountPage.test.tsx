import { describe, expect, it } from 'vitest';
import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { apiError, json, mockFetch } from '@/testing/http';
import { authResponse, template } from '@/testing/fixtures';
import { renderRoutes } from '@/testing/render';
import { formatDateTime } from '@/lib/format';
import type { ApiKey, CreatedApiKey, Home, Me } from '@/types/api';
import { AccountPage } from './AccountPage';

const me: Me = {
  id: 'u1',
  username: 'alice',
  org_id: 'o1',
  org_name: 'Acme',
  role: 'member',
  mfa_enabled: false,
  recovery_codes_left: 0,
  created_at: '2026-01-01T00:00:00Z',
};

const homes: Home[] = [
  { id: 'h1', org_id: 'o1', user_id: 'u1', template_id: null, agent_id: 'a1', size_mb: null, created_at: '2026-01-01T00:00:00Z', last_used_at: null, delete_after: null, used_bytes: null, usage_measured_at: null },
  { id: 'h2', org_id: 'o1', user_id: 'u1', template_id: 't1', agent_id: 'a1', size_mb: 2048, created_at: '2026-01-02T00:00:00Z', last_used_at: null, delete_after: null, used_bytes: 512 * 1024 * 1024, usage_measured_at: '2026-01-03T00:00:00Z' },
];

const codes = Array.from({ length: 10 }, (_, i) => `code-${i}`);

function setup(extra: Parameters<typeof mockFetch>[0] = {}) {
  let mfa = false;
  const mock = mockFetch({
    'POST /api/v1/auth/refresh': () => json(authResponse()),
    'GET /api/v1/me': () => json({ ...me, mfa_enabled: mfa, recovery_codes_left: mfa ? 10 : 0 }),
    'GET /api/v1/me/api-keys': () => json({ items: [], next_cursor: null }),
    'GET /api/v1/me/homes': () => json({ items: homes, next_cursor: null }),
    'GET /api/v1/templates': () => json({ items: [template({ id: 't1', display_name: 'Firefox' })], next_cursor: null }),
    'GET /api/v1/me/identities': () => json({ items: [], next_cursor: null }),
    'GET /api/v1/auth/sso/discover': () => json({ org: 'Acme', providers: [] }),
    'POST /api/v1/me/mfa/enroll': () => json({ secret: 'JBSWY3DPEHPK3PXP', otpauth_uri: 'otpauth://totp/x', qr_png_base64: 'iVBORw0KGgo=' }),
    'POST /api/v1/me/mfa/confirm': (c) => {
      if ((c.body as { code: string }).code !== '654321') return apiError(401, 'invalid_mfa_code');
      mfa = true;
      return json({ recovery_codes: codes });
    },
    ...extra,
  });
  renderRoutes([{ path: '/account', element: <AccountPage /> }], '/account');
  return mock;
}

describe('AccountPage', () => {
  it('enrolls MFA: QR code, confirm code, recovery codes shown once', async () => {
    const { calls } = setup();
    const user = userEvent.setup({ delay: null });
    const section = await screen.findByRole('region', { name: 'Two-factor authentication' });
    await user.click(await within(section).findByRole('button', { name: 'Set up two-factor authentication' }));
    const qr = await within(section).findByRole('img', { name: /QR code/ });
    expect(qr).toHaveAttribute('src', 'data:image/png;base64,iVBORw0KGgo=');
    expect(within(section).getByText('JBSWY3DPEHPK3PXP')).toBeInTheDocument();

    await user.type(within(section).getByLabelText(/code from the app/i), '111111');
    await user.click(within(section).getByRole('button', { name: 'Turn on' }));
    expect(await within(section).findByText(/That code is not valid/)).toBeInTheDocument();

    await user.clear(within(section).getByLabelText(/code from the app/i));
    await user.type(within(section).getByLabelText(/code from the app/i), '654321');
    await user.click(within(section).getByRole('button', { name: 'Turn on' }));
    const dialog = await screen.findByRole('dialog', { name: 'Recovery codes' });
    for (const c of codes) expect(within(dialog).getByText(new RegExp(c))).toBeInTheDocument();
    await user.click(within(dialog).getByRole('button', { name: 'I have saved it' }));
    expect(calls.some((c) => c.path.endsWith('/auth/refresh') && c !== calls[0])).toBe(false);
    expect(await within(section).findByText('On')).toBeInTheDocument();
    expect(screen.queryByText('code-3', { exact: false })).not.toBeInTheDocument();
  });

  it('creates an API key and shows the key once, then its expiry', async () => {
    let keys: ApiKey[] = [];
    const { calls } = setup({
      'GET /api/v1/me/api-keys': () => json({ items: keys, next_cursor: null }),
      'POST /api/v1/me/api-keys': (c) => {
        const key: ApiKey = {
          id: 'k1',
          name: (c.body as { name: string }).name,
          prefix: 'ssk_ab12',
          created_at: '2026-01-01T00:00:00Z',
          last_used_at: null,
          expires_at: '2026-07-01T00:00:00Z',
          mfa: false,
        };
        keys = [key];
        return json({ ...key, key: 'ssk_ab12_secretvalue' } satisfies CreatedApiKey, 201);
      },
    });
    const user = userEvent.setup({ delay: null });
    await user.click(await screen.findByRole('button', { name: 'Create API key' }));
    const form = await screen.findByRole('dialog', { name: 'Create API key' });
    await user.click(within(form).getByRole('button', { name: 'Create' }));
    expect(await within(form).findByText('Name is required')).toBeInTheDocument();
    await user.type(within(form).getByLabelText(/name/i), 'CI');
    await user.click(within(form).getByRole('button', { name: 'Create' }));
    const shown = await screen.findByRole('dialog', { name: 'New API key' });
    expect(within(shown).getByTestId('one-time-secret')).toHaveTextContent('ssk_ab12_secretvalue');
    expect(calls.find((c) => c.method === 'POST' && c.path === '/api/v1/me/api-keys')!.body).toEqual({ name: 'CI' });
    await user.click(within(shown).getByRole('button', { name: 'I have saved it' }));
    const table = await screen.findByRole('table', { name: 'API keys' });
    expect(await within(table).findByText('CI')).toBeInTheDocument();
    expect(within(table).getByText(formatDateTime('2026-07-01T00:00:00Z'))).toBeInTheDocument();
    expect(screen.queryByText('ssk_ab12_secretvalue')).not.toBeInTheDocument();
  });

  it('checks the new password before sending it', async () => {
    const { calls } = setup({ 'POST /api/v1/me/password': () => new Response(null, { status: 204 }) });
    const user = userEvent.setup({ delay: null });
    const form = await screen.findByRole('form', { name: 'Change password' });
    await user.type(within(form).getByLabelText(/current password/i), 'old-password');
    await user.type(within(form).getByLabelText(/^new password/i), 'short');
    await user.type(within(form).getByLabelText(/repeat new password/i), 'short');
    await user.click(within(form).getByRole('button', { name: 'Change password' }));
    expect(await within(form).findByText(/at least 8 characters/)).toBeInTheDocument();
    expect(calls.some((c) => c.path === '/api/v1/me/password')).toBe(false);
    await user.clear(within(form).getByLabelText(/^new password/i));
    await user.clear(within(form).getByLabelText(/repeat new password/i));
    await user.type(within(form).getByLabelText(/^new password/i), 'a-much-longer-password');
    await user.type(within(form).getByLabelText(/repeat new password/i), 'a-much-longer-password');
    await user.click(within(form).getByRole('button', { name: 'Change password' }));
    expect(await within(form).findByText('Password changed.')).toBeInTheDocument();
    expect(calls.find((c) => c.path === '/api/v1/me/password')!.body).toEqual({
      current_password: 'old-password',
      new_password: 'a-much-longer-password',
    });
  });

  it('lists the homes and resets one after confirmation, refusing while a session mounts it', async () => {
    let mounted = true;
    const { calls } = setup({
      'POST /api/v1/me/homes/h2/reset': () => (mounted ? apiError(409, 'home_in_use', 'a session mounts this home') : new Response(null, { status: 204 })),
    });
    const user = userEvent.setup({ delay: null });
    const table = await screen.findByRole('table', { name: 'Homes' });
    expect(await within(table).findByText('Firefox only')).toBeInTheDocument();
    expect(within(table).getByText('Your home (shared by applications)')).toBeInTheDocument();
    expect(within(table).getByText('2048 MiB')).toBeInTheDocument();
    expect(within(table).getByText('512 MiB (25% of the limit)')).toBeInTheDocument();
    expect(within(table).getByText('not measured')).toBeInTheDocument();
    await user.click(within(table).getByRole('button', { name: 'Reset Firefox only' }));
    await user.click(within(await screen.findByRole('dialog')).getByRole('button', { name: 'Reset' }));
    expect(await screen.findByText(/a session mounts this home/)).toBeInTheDocument();
    // The closing dialog keeps the page hidden from the accessibility tree until it is gone.
    await waitFor(() => expect(screen.queryByRole('dialog')).not.toBeInTheDocument());
    mounted = false;
    await user.click(within(table).getByRole('button', { name: 'Reset Firefox only' }));
    await user.click(within(await screen.findByRole('dialog')).getByRole('button', { name: 'Reset' }));
    expect(await screen.findByText('Home reset')).toBeInTheDocument();
    expect(calls.filter((c) => c.path === '/api/v1/me/homes/h2/reset')).toHaveLength(2);
  });
});
