import { afterEach, describe, expect, it, vi } from 'vitest';
import { screen, within } from '@testing-library/react';
import { json, mockFetch } from '@/testing/http';
import { admin, agent, authResponse, pool, template } from '@/testing/fixtures';
import { renderRoutes } from '@/testing/render';
import type { Pool } from '@/types/api';
import { POOLS_REFRESH_MS } from '../api/pools';
import { PoolsPage } from './PoolsPage';

const row = (name: string) => screen.getByRole('row', { name: new RegExp(name) });
const cells = (name: string) => within(row(name)).getAllByRole('cell').map((c) => c.textContent);

describe('PoolsPage', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('shows each pool\'s size and ready/starting counts per agent, and refreshes them', async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    let pools: Pool[] = [
      pool({
        size: 2,
        agents: [
          { agent_id: 'a1', ready: 2, starting: 0 },
          { agent_id: 'a2', ready: 1, starting: 1 },
        ],
      }),
      pool({ template_id: 't-chromium', template_name: 'chromium', size: 1 }),
    ];
    const { calls } = mockFetch({
      'POST /api/v1/auth/refresh': () => json(authResponse(admin)),
      'GET /api/v1/pools': () => json(pools),
      'GET /api/v1/templates': () => json({ items: [template()], next_cursor: null }),
      'GET /api/v1/agents': () => json({ items: [agent({ name: 'dock-1' }), agent({ id: 'a2', name: 'dock-2' })], next_cursor: null }),
    });
    renderRoutes([{ path: '/', element: <PoolsPage /> }]);

    expect(await screen.findByText('dock-2: 1 ready, 1 starting')).toBeInTheDocument();
    expect(screen.getByText('dock-1: 2 ready, 0 starting')).toBeInTheDocument();
    // Template, size, ready, starting, per agent.
    expect(cells('Firefox').slice(1, 4)).toEqual(['2 per agent', '3', '1']);
    expect(cells('chromium').slice(1)).toEqual(['1 per agent', '0', '0', 'Nothing warm yet']);

    // Launches claimed both ready members on dock-1 and the pool started their replacements; chromium's pool was removed.
    pools = [pool({ size: 2, agents: [{ agent_id: 'a1', ready: 0, starting: 2 }, { agent_id: 'a2', ready: 2, starting: 0 }] })];
    const before = calls.filter((c) => c.path === '/api/v1/pools').length;
    await vi.advanceTimersByTimeAsync(POOLS_REFRESH_MS);
    expect(await screen.findByText('dock-1: 0 ready, 2 starting')).toBeInTheDocument();
    expect(calls.filter((c) => c.path === '/api/v1/pools').length).toBe(before + 1);
    expect(cells('Firefox').slice(1, 4)).toEqual(['2 per agent', '2', '2']);
    expect(screen.queryByRole('row', { name: /chromium/ })).not.toBeInTheDocument();
  });

  it('names agents by id for organization administrators, who may not list agents', async () => {
    const { calls } = mockFetch({
      'POST /api/v1/auth/refresh': () => json(authResponse({ ...admin, role: 'org_admin' })),
      'GET /api/v1/pools': () => json([pool({ agents: [{ agent_id: '5f0c2a9e-1111-4222-8333-444455556666', ready: 2, starting: 0 }] })]),
      'GET /api/v1/templates': () => json({ items: [template()], next_cursor: null }),
    });
    renderRoutes([{ path: '/', element: <PoolsPage /> }]);
    expect(await screen.findByText('Agent 5f0c2a9e: 2 ready, 0 starting')).toBeInTheDocument();
    expect(calls.some((c) => c.path === '/api/v1/agents')).toBe(false);
  });

  it('says why a pool is paused and leaves out removed pools with nothing left', async () => {
    const off = template({ name: 'gimp', display_name: 'GIMP', enabled: false });
    const homed = template({ name: 'desktop', display_name: 'Desktop', home: { scope: 'user', size_mb: null } });
    mockFetch({
      'POST /api/v1/auth/refresh': () => json(authResponse(admin)),
      'GET /api/v1/pools': () =>
        json([
          pool({ template_id: off.id, template_name: off.name, size: 2 }),
          pool({ template_id: homed.id, template_name: homed.name, size: 1 }),
          // Removed: its last member is still being stopped.
          pool({ size: 0, agents: [{ agent_id: 'a1', ready: 1, starting: 0 }] }),
          pool({ template_id: 't-chromium', template_name: 'chromium', size: 0 }),
        ]),
      'GET /api/v1/templates': () => json({ items: [template(), off, homed], next_cursor: null }),
      'GET /api/v1/agents': () => json({ items: [agent()], next_cursor: null }),
    });
    renderRoutes([{ path: '/', element: <PoolsPage /> }]);
    expect(await screen.findByText('local: 1 ready, 0 starting')).toBeInTheDocument();
    expect(cells('GIMP')[1]).toBe('2 per agentPaused: the template is disabled');
    expect(cells('Desktop').slice(1)).toEqual(['1 per agentPaused: its sessions keep a home', '0', '0', 'Nothing warm']);
    expect(cells('Firefox').slice(1, 4)).toEqual(['Off', '1', '0']);
    expect(screen.queryByRole('row', { name: /chromium/ })).not.toBeInTheDocument();
  });

  it('says so when no template has a pool', async () => {
    mockFetch({
      'POST /api/v1/auth/refresh': () => json(authResponse(admin)),
      'GET /api/v1/pools': () => json([pool({ size: 0 })]),
      'GET /api/v1/templates': () => json({ items: [], next_cursor: null }),
      'GET /api/v1/agents': () => json({ items: [], next_cursor: null }),
    });
    renderRoutes([{ path: '/', element: <PoolsPage /> }]);
    expect(await screen.findByText('No template has a warm pool.')).toBeInTheDocument();
  });
});
