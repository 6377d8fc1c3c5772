import { describe, expect, it } from 'vitest';
import { screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { json, mockFetch } from '@/testing/http';
import { authResponse } from '@/testing/fixtures';
import { renderRoutes } from '@/testing/render';
import type { AuthUser, ComplianceReport } from '@/types/api';
import { ComplianceReportPage } from './ComplianceReportPage';

const orgAdmin: AuthUser = { id: 'u9', username: 'boss', org_id: 'o1', role: 'org_admin' };

const report: ComplianceReport = {
  org_id: 'o1',
  org_name: 'acme',
  from: '2026-12-01T00:00:00Z',
  to: '2026-12-08T00:00:00Z',
  generated_at: '2026-12-08T01:00:00Z',
  sign_ins: { successes: 12, failures: 3, failures_by_reason: { invalid_credentials: 2, mfa_required: 1 }, lockouts: 1 },
  mfa: { required: true, users: 3, enrolled: 2, not_enrolled: [{ username: 'zed', role: 'member' }] },
  privileged_actions: [
    { seq: 7, time: '2026-12-02T10:00:00Z', actor: 'boss', action: 'user.update', target: 'user:1', result: 'success' },
    { seq: 9, time: '2026-12-03T10:00:00Z', actor: 'boss', action: 'org.update', target: 'org:o1', result: 'success' },
  ],
  policy_changes: [{ seq: 9, time: '2026-12-03T10:00:00Z', actor: 'boss', action: 'org.update', target: 'org:o1', result: 'success' }],
  session_access: [
    { session_id: 's-1', user: 'alice', opened_at: '2026-12-04T09:00:00Z', closed_at: '2026-12-04T10:30:00Z', duration_secs: 5400, client_ip: '192.0.2.4' },
    { session_id: 's-2', user: 'bob', opened_at: '2026-12-07T23:00:00Z', closed_at: null, duration_secs: null, client_ip: null },
  ],
  chain: { intact: false, events_verified: 0, head: '41:abcd', fault: 'audit event #12: its content does not match its MAC', events_in_period: 40 },
};

function setup() {
  const mock = mockFetch({
    'POST /api/v1/auth/refresh': () => json(authResponse(orgAdmin)),
    'GET /api/v1/orgs/o1/reports/compliance': (c) =>
      c.query.get('format') === 'csv'
        ? new Response('section,time\n', { headers: { 'Content-Type': 'text/csv' } })
        : json(report),
  });
  renderRoutes([{ path: '/', element: <ComplianceReportPage /> }]);
  return mock;
}

describe('ComplianceReportPage', () => {
  it('shows every section of the org admin’s report, a failed chain verification prominently', async () => {
    const { calls } = setup();
    expect(await screen.findByText('Privileged actions')).toBeInTheDocument();
    const request = calls.find((c) => c.path === '/api/v1/orgs/o1/reports/compliance')!;
    expect(request.query.get('format')).toBe('json');
    expect(Date.parse(request.query.get('to')!) - Date.parse(request.query.get('from')!)).toBe(7 * 86_400_000);
    expect(screen.getByRole('table', { name: 'Failures by reason' })).toHaveTextContent('invalid_credentials2');
    expect(screen.getByText('2 (66%)')).toBeInTheDocument();
    expect(screen.getByText(/Without a second factor: zed \(member\)/)).toBeInTheDocument();
    expect(screen.getByText('Verification failed')).toBeInTheDocument();
    expect(screen.getByText(/does not match its MAC/)).toBeInTheDocument();
    const access = screen.getByText('alice').closest('table')!;
    expect(within(access).getByText('1h 30m')).toBeInTheDocument();
    expect(within(access).getByText('still open')).toBeInTheDocument();
  });

  it('asks for custom dates before fetching, then fetches the days picked, the last one included', async () => {
    const { calls } = setup();
    const user = userEvent.setup({ delay: null });
    await screen.findByText('Privileged actions');
    await user.click(screen.getByLabelText('Period'));
    await user.click(await screen.findByRole('option', { name: 'Custom dates' }));
    expect(screen.getByText(/Pick the first and the last day/)).toBeInTheDocument();
    await user.click(screen.getByLabelText('From (UTC)'));
    await user.paste('2026-11-01');
    await user.click(screen.getByLabelText('To (UTC, included)'));
    await user.paste('2026-11-30');
    await screen.findByText('Privileged actions');
    const last = calls.filter((c) => c.path === '/api/v1/orgs/o1/reports/compliance').at(-1)!;
    expect([last.query.get('from'), last.query.get('to')]).toEqual(['2026-11-01T00:00:00.000Z', '2026-12-01T00:00:00.000Z']);
  });
});
