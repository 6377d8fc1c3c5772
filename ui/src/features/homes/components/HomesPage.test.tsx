import { describe, expect, it } from 'vitest';
import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { apiError, json, mockFetch } from '@/testing/http';
import { admin, authResponse, template } from '@/testing/fixtures';
import { renderRoutes } from '@/testing/render';
import type { Home, User } from '@/types/api';
import { HomesPage } from './HomesPage';

const home = (over: Partial<Home>): Home => ({
  id: 'h1',
  org_id: 'o1',
  user_id: 'u1',
  template_id: null,
  agent_id: 'a1',
  size_mb: null,
  created_at: '2026-01-01T00:00:00Z',
  last_used_at: null,
  delete_after: null,
  used_bytes: null,
  usage_measured_at: null,
  ...over,
});

const homes = [
  home({ id: 'h1', user_id: 'u1', used_bytes: 3 * 1024 * 1024, usage_measured_at: '2026-01-02T00:00:00Z' }),
  home({ id: 'h2', user_id: 'u2', template_id: 't1', size_mb: 1024, used_bytes: 256 * 1024 * 1024, usage_measured_at: '2026-01-02T00:00:00Z' }),
  // On a Kubernetes agent: a claim's usage cannot be read.
  home({ id: 'h3', user_id: 'u3', agent_id: 'k1' }),
];

const users: User[] = ['alice', 'bob', 'carol'].map((username, i) => ({
  id: `u${i + 1}`,
  username,
  org_id: 'o1',
  role: 'member',
  disabled: false,
  mfa_enabled: false,
  created_at: '2026-01-01T00:00:00Z',
}));

function setup(extra: Parameters<typeof mockFetch>[0] = {}) {
  const mock = mockFetch({
    'POST /api/v1/auth/refresh': () => json(authResponse(admin)),
    'GET /api/v1/homes': () => json({ items: homes, next_cursor: null }),
    'GET /api/v1/users': () => json({ items: users, next_cursor: null }),
    'GET /api/v1/templates': () => json({ items: [template({ id: 't1', display_name: 'VS Code' })], next_cursor: null }),
    ...extra,
  });
  renderRoutes([{ path: '/admin/homes', element: <HomesPage /> }], '/admin/homes');
  return mock;
}

function row(table: HTMLElement, text: string): HTMLElement {
  const cell = within(table).getByText(text);
  const tr = cell.closest('tr');
  if (!tr) throw new Error(`no row for ${text}`);
  return tr;
}

describe('HomesPage', () => {
  it("shows each home's used space beside its limit, and not measured where the agent cannot tell", async () => {
    setup();
    const table = await screen.findByRole('table', { name: 'Homes' });
    await within(table).findByText('carol');
    expect(within(row(table, 'alice')).getByText('3 MiB')).toBeInTheDocument();
    expect(within(row(table, 'bob')).getByText('256 MiB (25% of the limit)')).toBeInTheDocument();
    expect(within(row(table, 'bob')).getByText('VS Code only')).toBeInTheDocument();
    expect(within(row(table, 'carol')).getByText('not measured')).toBeInTheDocument();
  });

  it('deletes a home after confirmation, and shows why while a session mounts it', async () => {
    let mounted = true;
    const { calls } = setup({
      'DELETE /api/v1/homes/h2': () =>
        mounted ? apiError(409, 'home_in_use', 'a session that has not ended mounts this home') : new Response(null, { status: 204 }),
    });
    const user = userEvent.setup({ delay: null });
    const table = await screen.findByRole('table', { name: 'Homes' });
    await user.click(await within(table).findByRole('button', { name: 'Delete the home of bob' }));
    await user.click(within(await screen.findByRole('dialog')).getByRole('button', { name: 'Delete' }));
    expect(await screen.findByText(/mounts this home/)).toBeInTheDocument();
    await waitFor(() => expect(screen.queryByRole('dialog')).not.toBeInTheDocument());
    mounted = false;
    await user.click(within(table).getByRole('button', { name: 'Delete the home of bob' }));
    await user.click(within(await screen.findByRole('dialog')).getByRole('button', { name: 'Delete' }));
    expect(await screen.findByText('Home deleted')).toBeInTheDocument();
    expect(calls.filter((c) => c.method === 'DELETE' && c.path === '/api/v1/homes/h2')).toHaveLength(2);
  });
});
