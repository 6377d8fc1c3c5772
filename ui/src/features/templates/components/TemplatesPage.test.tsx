import { describe, expect, it } from 'vitest';
import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { apiError, json, mockFetch } from '@/testing/http';
import { admin, authResponse, pool, template } from '@/testing/fixtures';
import type { Pool, Template } from '@/types/api';
import { renderRoutes } from '@/testing/render';
import { TemplatesPage } from './TemplatesPage';

describe('TemplatesPage (admin)', () => {
  // One paste per field instead of one event per key: MUI dialogs re-render on every keystroke.
  const fill = async (user: ReturnType<typeof userEvent.setup>, el: HTMLElement, value: string) => {
    await user.clear(el);
    await user.click(el);
    await user.paste(value);
  };

  // The Add template dialog, opened by an admin; `calls` records what reached the API.
  const openAddTemplate = async () => {
    const { calls } = mockFetch({
      'POST /api/v1/auth/refresh': () => json(authResponse(admin)),
      'GET /api/v1/templates': () => json({ items: [template()], next_cursor: null }),
      'GET /api/v1/orgs': () => json({ items: [], next_cursor: null }),
      'GET /api/v1/pools': () => json([]),
      'POST /api/v1/templates': (c) => json({ ...template(), ...(c.body as object), id: 't9' }, 201),
    });
    renderRoutes([{ path: '/', element: <TemplatesPage /> }]);
    const user = userEvent.setup({ delay: null });
    expect(await screen.findByRole('table', { name: 'Templates' })).toBeInTheDocument();
    expect(await screen.findByText('Firefox')).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Add template' }));
    const dialog = await screen.findByRole('dialog', { name: 'Add template' });
    return { calls, user, dialog };
  };

  it('validates the form before creating a template', async () => {
    const { calls, user, dialog } = await openAddTemplate();
    await fill(user, within(dialog).getByLabelText(/^name/i), 'Bad_Name');
    await fill(user, within(dialog).getByLabelText(/^memory/i), '0');
    await user.click(within(dialog).getByRole('button', { name: 'Create' }));
    expect(within(dialog).getByText(/Lowercase letters, digits and dashes/)).toBeInTheDocument();
    expect(within(dialog).getByText('Image is required')).toBeInTheDocument();
    expect(within(dialog).getByText('Memory (MiB) must be positive')).toBeInTheDocument();
    expect(calls.some((c) => c.method === 'POST' && c.path === '/api/v1/templates')).toBe(false);
  });

  it('creates a template with typed values', async () => {
    const { calls, user, dialog } = await openAddTemplate();
    await fill(user, within(dialog).getByLabelText(/^name/i), 'gimp');
    await fill(user, within(dialog).getByLabelText(/display name/i), 'GIMP');
    await fill(user, within(dialog).getByLabelText(/^image/i), 'ghcr.io/streamspace/gimp:2');
    await fill(user, within(dialog).getByLabelText(/^memory/i), '4096');
    await fill(user, within(dialog).getByLabelText(/tags/i), 'graphics, Editor');
    await user.click(within(dialog).getByRole('button', { name: 'Create' }));
    await screen.findByText('Template GIMP saved');
    const body = calls.find((c) => c.method === 'POST' && c.path === '/api/v1/templates')!.body;
    expect(body).toMatchObject({
      name: 'gimp',
      display_name: 'GIMP',
      image: 'ghcr.io/streamspace/gimp:2',
      memory_mb: 4096,
      cpu_millis: 2000,
      port: 8080,
      tags: ['graphics', 'editor'],
      enabled: true,
      org_id: null,
      env: {},
    });
  });

  it('sets a template\'s warm pool size (PUT /templates/{id}/pool) and shows the new size', async () => {
    let pools: Pool[] = [pool({ size: 2 })];
    const { calls } = mockFetch({
      'POST /api/v1/auth/refresh': () => json(authResponse(admin)),
      'GET /api/v1/templates': () => json({ items: [template()], next_cursor: null }),
      'GET /api/v1/orgs': () => json({ items: [], next_cursor: null }),
      'GET /api/v1/pools': () => json(pools),
      'PUT /api/v1/templates/t-firefox/pool': (c) => {
        pools = [pool(c.body as Pick<Pool, 'size'>)];
        return json(pools[0]);
      },
    });
    renderRoutes([{ path: '/', element: <TemplatesPage /> }]);
    const user = userEvent.setup({ delay: null });
    await user.click(await screen.findByRole('button', { name: 'Warm pool of Firefox' }));
    const dialog = await screen.findByRole('dialog', { name: 'Warm pool of Firefox' });
    const size = within(dialog).getByLabelText(/warm containers per agent/i);
    expect(size).toHaveValue(2);

    await user.clear(size);
    await user.paste('21');
    await user.click(within(dialog).getByRole('button', { name: 'Save' }));
    expect(within(dialog).getByText('A whole number from 0 to 20')).toBeInTheDocument();
    expect(calls.some((c) => c.method === 'PUT')).toBe(false);

    await user.clear(size);
    await user.paste('5');
    await user.click(within(dialog).getByRole('button', { name: 'Save' }));
    expect(await screen.findByText('Warm pool of Firefox: 5 per agent')).toBeInTheDocument();
    expect(calls.filter((c) => c.method === 'PUT').map((c) => c.body)).toEqual([{ size: 5 }]);
    expect(await screen.findByRole('button', { name: 'Warm pool of Firefox' })).toHaveTextContent('5 per agent');
  });

  it('shows the 409 template_keeps_home as a message and then the template as it is now', async () => {
    let firefox: Template = template();
    mockFetch({
      'POST /api/v1/auth/refresh': () => json(authResponse(admin)),
      'GET /api/v1/templates': () => json({ items: [firefox], next_cursor: null }),
      'GET /api/v1/orgs': () => json({ items: [], next_cursor: null }),
      'GET /api/v1/pools': () => json([]),
      'PUT /api/v1/templates/t-firefox/pool': () => {
        // Another administrator gave the template a home since the page loaded.
        firefox = template({ home: { scope: 'user', size_mb: null } });
        return apiError(409, 'template_keeps_home', 'a template that keeps a home cannot have a warm pool');
      },
    });
    renderRoutes([{ path: '/', element: <TemplatesPage /> }]);
    const user = userEvent.setup({ delay: null });
    const open = await screen.findByRole('button', { name: 'Warm pool of Firefox' });
    expect(open).toHaveTextContent('Off');
    await user.click(open);
    const dialog = await screen.findByRole('dialog', { name: 'Warm pool of Firefox' });
    const size = within(dialog).getByLabelText(/warm containers per agent/i);
    await user.clear(size);
    await user.paste('3');
    await user.click(within(dialog).getByRole('button', { name: 'Save' }));
    expect(await within(dialog).findByRole('alert')).toHaveTextContent('a template that keeps a home cannot have a warm pool');

    await user.click(within(dialog).getByRole('button', { name: 'Cancel' }));
    await waitFor(() => expect(screen.getByRole('button', { name: 'Warm pool of Firefox' })).toBeDisabled());
    expect(screen.getByRole('button', { name: 'Warm pool of Firefox' })).toHaveAccessibleDescription('Not with a persistent home');
  });

  it('disables the warm pool of a template that keeps a home and says why', async () => {
    const desktop = template({ name: 'desktop', display_name: 'Desktop', home: { scope: 'template', size_mb: 1024 } });
    const chromium = template({ name: 'chromium', display_name: 'Chromium', home: { scope: 'user', size_mb: null } });
    mockFetch({
      'POST /api/v1/auth/refresh': () => json(authResponse(admin)),
      'GET /api/v1/templates': () => json({ items: [template(), desktop, chromium], next_cursor: null }),
      'GET /api/v1/orgs': () => json({ items: [], next_cursor: null }),
      'GET /api/v1/pools': () => json([pool({ size: 1 }), pool({ template_id: 't-chromium', template_name: 'chromium', size: 3 })]),
    });
    renderRoutes([{ path: '/', element: <TemplatesPage /> }]);
    const firefoxPool = await screen.findByRole('button', { name: 'Warm pool of Firefox' });
    await waitFor(() => expect(firefoxPool).toHaveTextContent('1 per agent'));
    expect(firefoxPool).toBeEnabled();
    const desktopPool = screen.getByRole('button', { name: 'Warm pool of Desktop' });
    expect(desktopPool).toBeDisabled();
    expect(desktopPool).toHaveAccessibleDescription('Not with a persistent home');
    // A size set before the template got a home is kept, but no member is started for it.
    const chromiumPool = screen.getByRole('button', { name: 'Warm pool of Chromium' });
    expect(chromiumPool).toBeDisabled();
    expect(chromiumPool).toHaveTextContent('3 per agent');
    expect(chromiumPool).toHaveAccessibleDescription('Paused: not with a persistent home');
  });

  it('shows org admins the pools of their own templates only, and no size for global ones', async () => {
    const gimp = template({ name: 'gimp', display_name: 'GIMP', org_id: 'o1' });
    mockFetch({
      'POST /api/v1/auth/refresh': () => json(authResponse({ ...admin, role: 'org_admin' })),
      'GET /api/v1/templates': () => json({ items: [template(), gimp], next_cursor: null }),
      'GET /api/v1/pools': () => json([pool({ template_id: gimp.id, template_name: gimp.name, size: 2 })]),
    });
    renderRoutes([{ path: '/', element: <TemplatesPage /> }]);
    const gimpPool = await screen.findByRole('button', { name: 'Warm pool of GIMP' });
    await waitFor(() => expect(gimpPool).toHaveTextContent('2 per agent'));
    expect(screen.queryByRole('button', { name: 'Warm pool of Firefox' })).not.toBeInTheDocument();
    const firefox = screen.getByRole('row', { name: /Firefox/ });
    expect(within(firefox).getByText('—')).toBeInTheDocument();
    expect(within(firefox).queryByText('Off')).not.toBeInTheDocument();
  });
});
