import { describe, expect, it } from 'vitest';
import { screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { json, mockFetch } from '@/testing/http';
import { admin, authResponse } from '@/testing/fixtures';
import { renderRoutes } from '@/testing/render';
import type { Organization } from '@/types/api';
import { OrgSettingsPage } from './OrgSettingsPage';

const org: Organization = {
  id: 'o1',
  name: 'acme',
  mfa_required: false,
  allow_clipboard: false,
  sso_mfa: 'require_totp',
  egress_allow: [],
  max_sessions: null,
  max_sessions_per_user: 3,
  max_cpu_millis: null,
  max_memory_mb: null,
  created_at: '2026-01-01T00:00:00Z',
};

function setup(role: 'org_admin' | 'platform_admin') {
  const mock = mockFetch({
    'POST /api/v1/auth/refresh': () => json(authResponse({ ...admin, role })),
    'GET /api/v1/orgs/o1': () => json(org),
    'GET /api/v1/orgs': () => json({ items: [org], next_cursor: null }),
    'PATCH /api/v1/orgs/o1': (c) => json({ ...org, ...(c.body as object) }),
    'GET /api/v1/orgs/o1/reports/settings': () =>
      json({ retention_days: null, schedule: null, destination: null, webhook_url: null, has_webhook_secret: false, directory_available: false, delivered_until: null, next_attempt_at: null, last_error: null }),
  });
  renderRoutes([{ path: '/', element: <OrgSettingsPage /> }]);
  return mock;
}

describe('OrgSettingsPage', () => {
  it('org admins set the MFA and clipboard policies only: quotas are read-only and never sent (the API would answer 403)', async () => {
    const { calls } = setup('org_admin');
    const user = userEvent.setup({ delay: null });
    const perUser = await screen.findByLabelText('Sessions per user');
    expect(perUser).toBeDisabled();
    expect(perUser).toHaveValue('3');
    expect(screen.getByLabelText('Egress allowed to')).toBeDisabled();
    await user.click(screen.getByLabelText(/Require two-factor authentication/));
    await user.click(screen.getByLabelText(/Let sessions use the viewer's clipboard/));
    await user.click(screen.getByRole('button', { name: 'Save settings' }));
    expect(await screen.findByText('Settings saved')).toBeInTheDocument();
    expect(calls.find((c) => c.method === 'PATCH')!.body).toEqual({ mfa_required: true, allow_clipboard: true });
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
});
