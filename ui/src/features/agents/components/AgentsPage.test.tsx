import { describe, expect, it } from 'vitest';
import { screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { json, mockFetch } from '@/testing/http';
import { admin, agent, authResponse } from '@/testing/fixtures';
import { renderRoutes } from '@/testing/render';
import type { Agent } from '@/types/api';
import { AgentsPage } from './AgentsPage';

const local: Agent = agent({
  capacity: { max_sessions: 50, cpu_millis: 2000, memory_mb: 24105 },
  session_count: 1,
  last_heartbeat_at: new Date().toISOString(),
});
const fresh: Agent = {
  ...local,
  id: 'a2',
  name: 'edge-1',
  status: 'offline',
  version: null,
  capacity: { max_sessions: 0, cpu_millis: 0, memory_mb: 0 },
  session_count: 0,
  last_heartbeat_at: null,
};

describe('AgentsPage', () => {
  it('shows status and capacity, and rotates a token (POST /agents/{id}/token, shown once)', async () => {
    const { calls } = mockFetch({
      'POST /api/v1/auth/refresh': () => json(authResponse(admin)),
      'GET /api/v1/agents': () => json({ items: [local, fresh], next_cursor: null }),
      'POST /api/v1/agents/a2/token': () => json({ ...fresh, token: 'ssa_new_token' }),
    });
    renderRoutes([{ path: '/', element: <AgentsPage /> }]);
    const user = userEvent.setup({ delay: null });
    const table = await screen.findByRole('table', { name: 'Agents' });
    await within(table).findByText('edge-1');
    const rows = within(table).getAllByRole('row');
    expect(rows[1]).toHaveTextContent('online');
    expect(rows[1]).toHaveTextContent('1 / 50');
    expect(rows[1]).toHaveTextContent('2 CPU, 23.5 GiB');
    // Never connected: no version, no stated capacity.
    expect(rows[2]).toHaveTextContent('offline');
    expect(rows[2]).toHaveTextContent('never');
    expect(rows[2]).not.toHaveTextContent('0 CPU');

    await user.click(within(table).getByRole('button', { name: 'New token for agent edge-1' }));
    await user.click(within(await screen.findByRole('dialog')).getByRole('button', { name: 'New token' }));
    const shown = await screen.findByRole('dialog', { name: 'New token for edge-1' });
    expect(within(shown).getByTestId('one-time-secret')).toHaveTextContent('ssa_new_token');
    expect(calls.filter((c) => c.method === 'POST' && c.path === '/api/v1/agents/a2/token')).toHaveLength(1);
    await user.click(within(shown).getByRole('button', { name: 'I have saved it' }));
    expect(screen.queryByText('ssa_new_token')).not.toBeInTheDocument();
  });

  it('tells the labels set at registration from those the agent reported', async () => {
    const labelled: Agent = { ...local, labels: { zone: 'eu' }, reported_labels: { gpu: 'none' }, endpoint_cidrs: ['10.0.0.0/8'] };
    mockFetch({
      'POST /api/v1/auth/refresh': () => json(authResponse(admin)),
      'GET /api/v1/agents': () => json({ items: [labelled], next_cursor: null }),
    });
    renderRoutes([{ path: '/', element: <AgentsPage /> }]);
    const user = userEvent.setup({ delay: null });
    await user.click(await screen.findByRole('button', { name: 'Details of agent local' }));
    const details = await screen.findByRole('region', { name: 'Agent local' });
    expect(within(details).getByText('Labels').nextElementSibling).toHaveTextContent('zone=eu');
    expect(within(details).getByText('Reported labels').nextElementSibling).toHaveTextContent('gpu=none');
    expect(within(details).getByText('Endpoint networks').nextElementSibling).toHaveTextContent('10.0.0.0/8');
  });
});
