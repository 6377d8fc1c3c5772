import { describe, expect, it } from 'vitest';
import { screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { apiError, json, mockFetch } from '@/testing/http';
import { authResponse, session, template } from '@/testing/fixtures';
import { renderRoutes } from '@/testing/render';
import { CatalogPage } from './CatalogPage';

const templates = [
  template({ id: 't1', name: 'firefox', display_name: 'Firefox', description: 'Web browser', tags: ['browser', 'web'] }),
  template({ id: 't2', name: 'chromium', display_name: 'Chromium', description: 'Another browser', tags: ['browser'] }),
  template({ id: 't3', name: 'xfce', display_name: 'Linux desktop', description: 'XFCE desktop', tags: ['desktop'] }),
  template({ id: 't4', name: 'off', display_name: 'Disabled one', tags: ['browser'], enabled: false }),
];

function setup(extra: Parameters<typeof mockFetch>[0] = {}) {
  const mock = mockFetch({
    'POST /api/v1/auth/refresh': () => json(authResponse()),
    'GET /api/v1/templates': () => json({ items: templates, next_cursor: null }),
    ...extra,
  });
  const utils = renderRoutes(
    [
      { path: '/', element: <CatalogPage /> },
      { path: '/sessions/:id', element: <h1>Viewer</h1> },
    ],
    '/',
  );
  return { ...mock, ...utils };
}

function cardNames() {
  return within(screen.getByRole('region', { name: 'Templates' }))
    .queryAllByRole('heading', { level: 2 })
    .map((h) => h.textContent);
}

describe('CatalogPage', () => {
  it('shows enabled templates as cards with name, description and tags', async () => {
    setup();
    const card = await screen.findByRole('article', { name: 'Firefox' });
    expect(within(card).getByText('Web browser')).toBeInTheDocument();
    expect(within(card).getByText('web')).toBeInTheDocument();
    expect(cardNames()).toEqual(['Firefox', 'Chromium', 'Linux desktop']);
  });

  it('filters by search text', async () => {
    setup();
    await screen.findByRole('article', { name: 'Firefox' });
    const user = userEvent.setup({ delay: null });
    await user.type(screen.getByRole('searchbox', { name: 'Search templates' }), 'desktop');
    expect(cardNames()).toEqual(['Linux desktop']);
    await user.clear(screen.getByRole('searchbox', { name: 'Search templates' }));
    await user.type(screen.getByRole('searchbox', { name: 'Search templates' }), 'nothing-like-this');
    expect(cardNames()).toEqual([]);
    expect(screen.getByRole('status')).toHaveTextContent('No templates match');
  });

  it('filters by tags (every selected tag must match) and toggles them off again', async () => {
    setup();
    await screen.findByRole('article', { name: 'Firefox' });
    const user = userEvent.setup({ delay: null });
    const tags = screen.getByRole('group', { name: 'Filter by tag' });
    await user.click(within(tags).getByRole('button', { name: 'browser' }));
    expect(within(tags).getByRole('button', { name: 'browser' })).toHaveAttribute('aria-pressed', 'true');
    expect(cardNames()).toEqual(['Firefox', 'Chromium']);
    await user.click(within(tags).getByRole('button', { name: 'web' }));
    expect(cardNames()).toEqual(['Firefox']);
    await user.click(within(tags).getByRole('button', { name: 'browser' }));
    await user.click(within(tags).getByRole('button', { name: 'web' }));
    expect(cardNames()).toHaveLength(3);
  });

  it('launches a session with one click and opens the viewer', async () => {
    const { calls } = setup({
      'POST /api/v1/sessions': () => json(session({ id: 'new-1', state: 'pending' }), 202),
    });
    const user = userEvent.setup({ delay: null });
    await user.click(await screen.findByRole('button', { name: 'Launch Chromium' }));
    expect(await screen.findByRole('heading', { name: 'Viewer' })).toBeInTheDocument();
    expect(calls.find((c) => c.method === 'POST' && c.path === '/api/v1/sessions')!.body).toEqual({ template: 't2' });
  });

  it('tells the user when launching fails (quota)', async () => {
    setup({ 'POST /api/v1/sessions': () => apiError(409, 'quota_exceeded', 'Session quota reached') });
    const user = userEvent.setup({ delay: null });
    await user.click(await screen.findByRole('button', { name: 'Launch Firefox' }));
    expect(await screen.findByText(/Could not launch Firefox: Session quota reached/)).toBeInTheDocument();
  });
});
