import { describe, expect, it, vi } from 'vitest';
import { screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { json, mockFetch } from '@/testing/http';
import { authResponse } from '@/testing/fixtures';
import { renderRoutes } from '@/testing/render';
import { leaveAppFor } from '@/lib/navigation';
import type { LinkedIdentity } from '@/types/api';
import { LinkedIdentitiesSection } from './LinkedIdentitiesSection';

vi.mock('@/lib/navigation', () => ({ leaveAppFor: vi.fn() }));

const linked: LinkedIdentity = {
  id: 'i1',
  provider_id: 'p1',
  provider_name: 'keycloak',
  provider_display_name: 'Keycloak',
  kind: 'oidc',
  subject: 'sub-1',
  email: 'alice@acme.example',
  created_at: '2026-01-01T00:00:00Z',
};

const providers = [
  { id: 'p1', name: 'keycloak', display_name: 'Keycloak', kind: 'oidc', start_url: '/api/v1/auth/sso/p1/start' },
  { id: 'p2', name: 'okta', display_name: 'Okta', kind: 'saml', start_url: '/api/v1/auth/sso/p2/start' },
];

function setup(path: string) {
  const mock = mockFetch({
    'POST /api/v1/auth/refresh': () => json(authResponse()),
    'GET /api/v1/me/identities': () => json({ items: [linked], next_cursor: null }),
    'GET /api/v1/auth/sso/discover': () => json({ org: 'acme', providers }),
    'POST /api/v1/me/identities': () => json({ redirect_url: 'https://okta.example/sso?SAMLRequest=x' }),
    'DELETE /api/v1/me/identities/i1': () => new Response(null, { status: 204 }),
  });
  renderRoutes([{ path: '/account', element: <LinkedIdentitiesSection orgName="acme" /> }], path);
  return mock;
}

describe('LinkedIdentitiesSection', () => {
  it('lists the linked identity, offers only the unlinked provider, and links by leaving for the IdP', async () => {
    const { calls } = setup('/account');
    const user = userEvent.setup({ delay: null });
    expect(await screen.findByRole('cell', { name: 'alice@acme.example' })).toBeInTheDocument();
    await user.click(await screen.findByRole('button', { name: 'Link Okta' }));
    expect(screen.queryByRole('button', { name: 'Link Keycloak' })).not.toBeInTheDocument();
    await vi.waitFor(() => expect(leaveAppFor).toHaveBeenCalledWith('https://okta.example/sso?SAMLRequest=x'));
    expect(calls.find((c) => c.method === 'POST' && c.path === '/api/v1/me/identities')!.body).toEqual({ provider_id: 'p2' });
    expect(calls.find((c) => c.path === '/api/v1/auth/sso/discover')!.query.get('org')).toBe('acme');
  });

  it('unlinks after asking', async () => {
    const { calls } = setup('/account');
    const user = userEvent.setup({ delay: null });
    await user.click(await screen.findByRole('button', { name: 'Unlink Keycloak' }));
    await user.click(await screen.findByRole('button', { name: 'Unlink' }));
    expect(await screen.findByText('No identity provider is linked.')).toBeInTheDocument();
    expect(calls.some((c) => c.method === 'DELETE' && c.path === '/api/v1/me/identities/i1')).toBe(true);
  });

  it('says how the link flow ended', async () => {
    setup('/account?link_error=link_required');
    expect(await screen.findByText(/Linking failed: An account with your email already exists/)).toBeInTheDocument();
  });
});
