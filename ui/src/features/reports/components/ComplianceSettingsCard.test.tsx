import { describe, expect, it } from 'vitest';
import { screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { apiError, json, mockFetch } from '@/testing/http';
import { authResponse } from '@/testing/fixtures';
import { renderRoutes } from '@/testing/render';
import type { AuthUser, ComplianceSettings } from '@/types/api';
import { ComplianceSettingsCard } from './ComplianceSettingsCard';

const orgAdmin: AuthUser = { id: 'u9', username: 'boss', org_id: 'o1', role: 'org_admin' };

const stored: ComplianceSettings = {
  retention_days: 365,
  schedule: null,
  destination: null,
  webhook_url: null,
  has_webhook_secret: false,
  directory_available: false,
  delivered_until: null,
  next_attempt_at: '2026-12-01T12:04:00Z',
  last_error: 'the webhook answered 500',
};

function setup(put: Parameters<typeof mockFetch>[0][string], view: ComplianceSettings = stored) {
  const mock = mockFetch({
    'POST /api/v1/auth/refresh': () => json(authResponse(orgAdmin)),
    'GET /api/v1/orgs/o1/reports/settings': () => json(view),
    'PUT /api/v1/orgs/o1/reports/settings': put,
  });
  renderRoutes([{ path: '/', element: <ComplianceSettingsCard orgId="o1" platformAdmin={false} /> }]);
  return mock;
}

describe('ComplianceSettingsCard', () => {
  it('an org admin schedules a signed webhook; the retention stays the platform’s and the secret is write-only', async () => {
    const weekly: ComplianceSettings = { ...stored, schedule: 'weekly', destination: 'webhook' };
    const { calls } = setup((c) => json({ ...weekly, ...(c.body as object), has_webhook_secret: true, last_error: null }), weekly);
    const user = userEvent.setup({ delay: null });
    expect(await screen.findByText(/Last delivery failed: the webhook answered 500/)).toBeInTheDocument();
    expect(screen.getByLabelText('Keep audit events (days)')).toBeDisabled();
    expect(screen.getByLabelText('Keep audit events (days)')).toHaveValue('365');
    await user.click(screen.getByLabelText('Webhook URL'));
    await user.paste('http://hooks.example.test/r');
    await user.click(screen.getByLabelText('Webhook secret'));
    await user.paste('a-secret-of-enough-length');
    await user.click(screen.getByRole('button', { name: 'Save report settings' }));
    expect(await screen.findByText('Report settings saved')).toBeInTheDocument();
    expect(calls.find((c) => c.method === 'PUT')!.body).toEqual({
      retention_days: 365,
      schedule: 'weekly',
      destination: 'webhook',
      webhook_url: 'http://hooks.example.test/r',
      webhook_secret: 'a-secret-of-enough-length',
    });
    expect(screen.getByLabelText('Webhook secret')).toHaveValue('');
    expect(screen.getByLabelText('Webhook secret')).toHaveAttribute('placeholder', 'unchanged');
  });

  it('offers the report directory only when the platform has one', async () => {
    setup(() => json(stored));
    const user = userEvent.setup({ delay: null });
    await user.click(await screen.findByLabelText('Deliver the compliance report'));
    await user.click(await screen.findByRole('option', { name: 'Daily' }));
    await user.click(screen.getByLabelText('To'));
    expect(await screen.findByRole('option', { name: /report directory \(not configured\)/ })).toHaveAttribute('aria-disabled', 'true');
  });

  it('shows the API’s refusal', async () => {
    setup(() => apiError(400, 'webhook_refused', 'the webhook URL names an internal address'));
    const user = userEvent.setup({ delay: null });
    await user.click(await screen.findByRole('button', { name: 'Save report settings' }));
    expect(await screen.findByText('the webhook URL names an internal address')).toBeInTheDocument();
  });
});
