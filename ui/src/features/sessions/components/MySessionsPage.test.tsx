import { describe, expect, it } from 'vitest';
import { screen, within } from '@testing-library/react';
import { Outlet } from 'react-router';
import { LiveEventsProvider } from '@/app/live';
import { json, mockFetch } from '@/testing/http';
import { authResponse, session } from '@/testing/fixtures';
import { renderRoutes } from '@/testing/render';
import { MySessionsPage } from './MySessionsPage';

/** An SSE response whose events the test pushes. */
function controllableStream() {
  const enc = new TextEncoder();
  let ctrl!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({ start: (c) => void (ctrl = c) });
  return {
    response: new Response(body, { headers: { 'Content-Type': 'text/event-stream' } }),
    push: (event: string, data: unknown) => ctrl.enqueue(enc.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`)),
  };
}

describe('MySessionsPage', () => {
  it('lists my active sessions and updates them live from the event stream', async () => {
    const stream = controllableStream();
    const starting = session({ id: 's1', state: 'starting', phase: 'pulling', progress: 10 });
    const { calls } = mockFetch({
      'POST /api/v1/auth/refresh': () => json(authResponse()),
      'GET /api/v1/sessions': () =>
        json({ items: [starting, session({ id: 's2', template_display_name: 'Old', state: 'stopped' })], next_cursor: null }),
      'GET /api/v1/events': () => stream.response,
    });
    renderRoutes([
      {
        element: (
          <LiveEventsProvider>
            <Outlet />
          </LiveEventsProvider>
        ),
        children: [{ path: '/', element: <MySessionsPage /> }],
      },
    ]);
    const table = await screen.findByRole('table', { name: 'My sessions' });
    expect(await within(table).findByText('Pulling image · 10%')).toBeInTheDocument();
    expect(within(table).queryByText('Old')).not.toBeInTheDocument(); // ended sessions hidden by default
    expect(calls.find((c) => c.path === '/api/v1/sessions')!.query.get('owner_id')).toBe('u1');

    stream.push('session', { ...starting, progress: 75 });
    expect(await within(table).findByText('Pulling image · 75%')).toBeInTheDocument();
    stream.push('session', { ...starting, state: 'running', phase: null, progress: null });
    expect(await within(table).findByText('running')).toBeInTheDocument();
    expect(within(table).getByRole('link', { name: 'Connect to Firefox' })).toHaveAttribute('href', '/sessions/s1');
    expect(within(table).getByRole('button', { name: 'Hibernate Firefox' })).toBeInTheDocument();
  });
});
