import { describe, expect, it } from 'vitest';
import { screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { json, mockFetch } from '@/testing/http';
import { authResponse, session } from '@/testing/fixtures';
import { renderRoutes } from '@/testing/render';
import { OPEN_SESSION_POLICY } from '@/lib/sessionPolicy';
import type { Session } from '@/types/api';
import { SessionViewerPage } from './SessionViewerPage';

function setup(s: Session, extra: Parameters<typeof mockFetch>[0] = {}) {
  const mock = mockFetch({
    'POST /api/v1/auth/refresh': () => json(authResponse()),
    'GET /api/v1/sessions/s1': () => json(s),
    'POST /api/v1/sessions/s1/connect': () =>
      json({ url: 'http://s1.localhost:8001/api/v1/http/s1/?ticket=abc', policy: OPEN_SESSION_POLICY, role: 'owner' }),
    ...extra,
  });
  const utils = renderRoutes([{ path: '/sessions/:id', element: <SessionViewerPage /> }], '/sessions/s1');
  return { ...mock, ...utils };
}

describe('SessionViewerPage', () => {
  it('connects a running session and shows it in an iframe with the right permissions', async () => {
    const { calls } = setup(session());
    const frame = await screen.findByTitle('Firefox session');
    expect(frame.tagName).toBe('IFRAME');
    expect(frame).toHaveAttribute('src', 'http://s1.localhost:8001/api/v1/http/s1/?ticket=abc');
    expect(frame).toHaveAttribute('sandbox', 'allow-scripts allow-same-origin allow-pointer-lock allow-downloads');
    expect(frame).toHaveAttribute('allow', 'autoplay; fullscreen; clipboard-read; clipboard-write; microphone');
    expect(calls.filter((c) => c.path.endsWith('/connect'))).toHaveLength(1);
    expect(screen.getByRole('button', { name: 'Hibernate' })).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Stop' })).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Open in new tab' })).toBeInTheDocument();
  });

  it('keeps the clipboard, microphone and downloads out of the frame where the policy closes them', async () => {
    const policy = { ...OPEN_SESSION_POLICY, clipboard: 'off', microphone: false, file_download: false };
    setup(session(), {
      'POST /api/v1/sessions/s1/connect': () => json({ url: 'http://s1.localhost:8001/api/v1/http/s1/?ticket=abc', policy, role: 'owner' }),
    });
    const frame = await screen.findByTitle('Firefox session');
    expect(frame).toHaveAttribute('allow', 'autoplay; fullscreen');
    expect(frame).toHaveAttribute('sandbox', 'allow-scripts allow-same-origin allow-pointer-lock');
  });

  it('shows start progress by phase, including the image pull percentage', async () => {
    const { calls } = setup(session({ state: 'starting', phase: 'pulling', progress: 42 }));
    expect(await screen.findByRole('heading', { name: 'Starting Firefox' })).toBeInTheDocument();
    expect(screen.getByText('Pulling image · 42%')).toBeInTheDocument();
    expect(screen.getByRole('progressbar', { name: /Pulling image/ })).toHaveAttribute('aria-valuenow', '42');
    expect(calls.some((c) => c.path.endsWith('/connect'))).toBe(false);
  });

  it('shows the failure reason of a failed session', async () => {
    setup(session({ state: 'failed', failure_reason: 'image not found: streamspace/firefox:1' }));
    expect(await screen.findByText('image not found: streamspace/firefox:1')).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Launch again' })).toBeInTheDocument();
  });

  it('wakes a hibernated session', async () => {
    const { calls } = setup(session({ state: 'hibernated' }), {
      'POST /api/v1/sessions/s1/wake': () => json(session({ state: 'starting', phase: null }), 202),
    });
    const user = userEvent.setup({ delay: null });
    await user.click(await screen.findByRole('button', { name: 'Wake' }));
    expect(await screen.findByRole('heading', { name: 'Starting Firefox' })).toBeInTheDocument();
    expect(calls.some((c) => c.method === 'POST' && c.path === '/api/v1/sessions/s1/wake')).toBe(true);
  });

  it('stops after confirmation', async () => {
    const { calls } = setup(session(), {
      'DELETE /api/v1/sessions/s1': () => json(session({ state: 'stopping' }), 202),
    });
    const user = userEvent.setup({ delay: null });
    await user.click(await screen.findByRole('button', { name: 'Stop' }));
    const dialog = await screen.findByRole('dialog', { name: 'Stop Firefox?' });
    expect(calls.some((c) => c.method === 'DELETE')).toBe(false);
    await user.click(within(dialog).getByRole('button', { name: 'Stop' }));
    expect(await screen.findByRole('heading', { name: 'Stopping Firefox…' })).toBeInTheDocument();
    expect(calls.some((c) => c.method === 'DELETE')).toBe(true);
  });
});
