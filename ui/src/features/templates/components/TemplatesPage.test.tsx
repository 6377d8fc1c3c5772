import { describe, expect, it } from 'vitest';
import { screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { json, mockFetch } from '@/testing/http';
import { admin, authResponse, template } from '@/testing/fixtures';
import { renderRoutes } from '@/testing/render';
import { TemplatesPage } from './TemplatesPage';

describe('TemplatesPage (admin)', () => {
  it('validates the form before creating a template and sends typed values', async () => {
    const { calls } = mockFetch({
      'POST /api/v1/auth/refresh': () => json(authResponse(admin)),
      'GET /api/v1/templates': () => json({ items: [template()], next_cursor: null }),
      'GET /api/v1/orgs': () => json({ items: [], next_cursor: null }),
      'POST /api/v1/templates': (c) => json({ ...template(), ...(c.body as object), id: 't9' }, 201),
    });
    renderRoutes([{ path: '/', element: <TemplatesPage /> }]);
    const user = userEvent.setup({ delay: null });
    // One paste per field instead of one event per key: MUI dialogs re-render on every keystroke.
    const fill = async (el: HTMLElement, value: string) => {
      await user.clear(el);
      await user.click(el);
      await user.paste(value);
    };
    expect(await screen.findByRole('table', { name: 'Templates' })).toBeInTheDocument();
    expect(await screen.findByText('Firefox')).toBeInTheDocument();

    await user.click(screen.getByRole('button', { name: 'Add template' }));
    const dialog = await screen.findByRole('dialog', { name: 'Add template' });
    await fill(within(dialog).getByLabelText(/^name/i), 'Bad_Name');
    await fill(within(dialog).getByLabelText(/^memory/i), '0');
    await user.click(within(dialog).getByRole('button', { name: 'Create' }));
    expect(within(dialog).getByText(/Lowercase letters, digits and dashes/)).toBeInTheDocument();
    expect(within(dialog).getByText('Image is required')).toBeInTheDocument();
    expect(within(dialog).getByText('Memory (MiB) must be positive')).toBeInTheDocument();
    expect(calls.some((c) => c.method === 'POST' && c.path === '/api/v1/templates')).toBe(false);

    await fill(within(dialog).getByLabelText(/^name/i), 'gimp');
    await fill(within(dialog).getByLabelText(/display name/i), 'GIMP');
    await fill(within(dialog).getByLabelText(/^image/i), 'ghcr.io/streamspace/gimp:2');
    await fill(within(dialog).getByLabelText(/^memory/i), '4096');
    await fill(within(dialog).getByLabelText(/tags/i), 'graphics, Editor');
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
});
