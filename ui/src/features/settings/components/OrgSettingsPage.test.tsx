import { describe, expect, it } from 'vitest';
import { screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { apiError, json, mockFetch } from '@/testing/http';
import { admin, authResponse, identityProvider } from '@/testing/fixtures';
import { renderRoutes } from '@/testing/render';
import type { Organization } from '@/types/api';
import { OrgSettingsPage } from './OrgSettingsPage';

const org: Organization = {
  id: 'o1',
  name: 'acme',
  mfa_required: false,
  session_policy: { clipboard: 'off', file_upload: true, file_download: true, audio: true, microphone: true },
  sso_mfa: 'require_totp',
  egress_allow: [],
  max_sessions: null,
  max_sessions_per_user: 3,
  max_cpu_millis: null,
  max_memory_mb: null,
  created_at: '2026-01-01T00:00:00Z',
};

const created = identityProvider({ role_mapping: { groups_claim: 'groups', org_admin_groups: [], platform_admin_groups: [], default_role: 'member' } });

function setup(role: 'org_admin' | 'platform_admin') {
  const mock = mockFetch({
    'POST /api/v1/auth/refresh': () => json(authResponse({ ...admin, role })),
    'GET /api/v1/orgs/o1': () => json(org),
    'GET /api/v1/orgs': () => json({ items: [org], next_cursor: null }),
    'PATCH /api/v1/orgs/o1': (c) => json({ ...org, ...(c.body as object) }),
    'GET /api/v1/orgs/o1/reports/settings': () =>
      json({ retention_days: null, schedule: null, destination: null, webhook_url: null, has_webhook_secret: false, directory_available: false, delivered_until: null, next_attempt_at: null, last_error: null }),
    'GET /api/v1/orgs/o1/allow-list': () => json({ cidrs: ['198.51.100.0/24'], client_address: '198.51.100.7' }),
    'PUT /api/v1/orgs/o1/allow-list': (c) => {
      const cidrs = (c.body as { cidrs: string[] }).cidrs;
      if (!cidrs.some((cidr) => cidr.startsWith('198.51.100.'))) {
        return apiError(409, 'self_lockout', 'this allow-list does not include your own address 198.51.100.7');
      }
      return json({ cidrs, client_address: '198.51.100.7' });
    },
    'GET /api/v1/network/allow-list': () => json({ cidrs: [], client_address: '198.51.100.7' }),
    'GET /api/v1/orgs/o1/identity-providers': () => json({ items: [], next_cursor: null }),
    'POST /api/v1/orgs/o1/identity-providers': () => json(created, 201),
  });
  renderRoutes([{ path: '/', element: <OrgSettingsPage /> }]);
  return mock;
}

describe('OrgSettingsPage', () => {
  it('org admins set the MFA and session policies only: quotas are read-only and never sent (the API would answer 403)', async () => {
    const { calls } = setup('org_admin');
    const user = userEvent.setup({ delay: null });
    const perUser = await screen.findByLabelText('Sessions per user');
    expect(perUser).toBeDisabled();
    expect(perUser).toHaveValue('3');
    expect(screen.getByLabelText('Egress allowed to')).toBeDisabled();
    await user.click(screen.getByLabelText(/Require two-factor authentication/));
    await user.click(screen.getByRole('combobox', { name: 'Clipboard' }));
    await user.click(screen.getByRole('option', { name: 'Out of the session only (copy)' }));
    await user.click(screen.getByLabelText('Microphone (needs sound)'));
    await user.click(screen.getByRole('combobox', { name: 'Two-factor with single sign-on' }));
    await user.click(screen.getByRole('option', { name: "Trust the identity provider's MFA" }));
    await user.click(screen.getByRole('button', { name: 'Save settings' }));
    expect(await screen.findByText('Settings saved')).toBeInTheDocument();
    expect(calls.find((c) => c.method === 'PATCH')!.body).toEqual({
      mfa_required: true,
      session_policy: { clipboard: 'out', file_upload: true, file_download: true, audio: true, microphone: false },
      sso_mfa: 'trust_idp',
    });
  });

  it('org admins add an OIDC identity provider (no platform-admin groups), then see the redirect URI to copy', async () => {
    const { calls } = setup('org_admin');
    const user = userEvent.setup({ delay: null });
    expect(await screen.findByText(/No identity provider/)).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Add identity provider' }));
    await user.click(screen.getByRole('menuitem', { name: 'OpenID Connect' }));
    const dialog = screen.getByRole('dialog', { name: 'Add OpenID Connect provider' });
    expect(within(dialog).queryByLabelText(/Groups made platform admins/)).not.toBeInTheDocument();
    // Pasting rather than typing: the same events for the form, far fewer of them.
    const fill = async (label: RegExp, text: string) => {
      await user.click(within(dialog).getByLabelText(label));
      await user.paste(text);
    };
    await fill(/Button label/, 'Keycloak');
    await fill(/^Name/, 'keycloak');
    await fill(/Issuer URL/, 'https://kc.example/realms/acme');
    await fill(/Client ID/, 'ss');
    await fill(/Client secret/, 'shh');
    await fill(/Email domains/, 'acme.example');
    await user.click(within(dialog).getByRole('button', { name: 'Add' }));
    const values = await screen.findByRole('region', { name: 'Keycloak: values for the identity provider' });
    expect(values).toHaveTextContent('http://localhost:3000/api/v1/auth/sso/p1/callback');
    expect(values).toHaveTextContent('/login/acme');
    expect(calls.find((c) => c.method === 'POST' && c.path.endsWith('/identity-providers'))!.body).toMatchObject({
      name: 'keycloak',
      kind: 'oidc',
      domains: ['acme.example'],
      oidc: { issuer: 'https://kc.example/realms/acme', client_id: 'ss', client_secret: 'shh', scopes: ['email', 'profile'] },
      role_mapping: { groups_claim: 'groups', org_admin_groups: [], platform_admin_groups: [], default_role: 'member' },
    });
  });

  it('platform admins change quotas and the egress allow list; only changed fields are sent, empty means unlimited (null)', async () => {
    const { calls } = setup('platform_admin');
    const user = userEvent.setup({ delay: null });
    const perUser = await screen.findByLabelText('Sessions per user');
    await user.clear(perUser);
    await user.type(screen.getByLabelText('Sessions in the organization'), '10');
    await user.type(screen.getByLabelText('Egress allowed to'), '10.9.0.0/16');
    await user.click(screen.getByRole('button', { name: 'Save settings' }));
    expect(await screen.findByText('Settings saved')).toBeInTheDocument();
    expect(calls.find((c) => c.method === 'PATCH')!.body).toEqual({
      max_sessions: 10,
      max_sessions_per_user: null,
      egress_allow: ['10.9.0.0/16'],
    });
  });

  it("org admins edit their organization's IP allow-list; a list that would lock them out is refused with the server's reason", async () => {
    const { calls } = setup('org_admin');
    const user = userEvent.setup({ delay: null });
    const list = await screen.findByLabelText('IP allow-list');
    expect(list).toHaveValue('198.51.100.0/24');
    expect(screen.getByText(/Your address is 198\.51\.100\.7/)).toBeInTheDocument();
    expect(screen.queryByLabelText('Platform IP allow-list')).not.toBeInTheDocument();
    await user.clear(list);
    await user.type(list, '203.0.113.0/24');
    await user.click(screen.getByRole('button', { name: 'Save ip allow-list' }));
    expect(await screen.findByText(/does not include your own address/)).toBeInTheDocument();
    await user.type(list, '{enter}198.51.100.0/24, 2001:db8::/32');
    await user.click(screen.getByRole('button', { name: 'Save ip allow-list' }));
    expect(await screen.findByText('IP allow-list saved')).toBeInTheDocument();
    const puts = calls.filter((c) => c.method === 'PUT');
    expect(puts.at(-1)!.body).toEqual({ cidrs: ['203.0.113.0/24', '198.51.100.0/24', '2001:db8::/32'] });
  });

  it('platform admins also see the platform-wide allow-list', async () => {
    setup('platform_admin');
    expect(await screen.findByLabelText('Platform IP allow-list')).toHaveValue('');
  });
});
