import { describe, expect, it } from 'vitest';
import { screen } from '@testing-library/react';
import { Outlet } from 'react-router';
import { apiError, json, mockFetch } from '@/testing/http';
import { admin, authResponse, member } from '@/testing/fixtures';
import { renderRoutes } from '@/testing/render';
import { RequireRole } from './guards';
import { AppShell } from './AppShell';
import { LiveEventsProvider } from '@/app/live';
import { RequireAuth } from './guards';
import { SignInPage } from '@/features/auth/components/SignInPage';

const routes = [
  { path: '/login', element: <SignInPage /> },
  {
    element: (
      <LiveEventsProvider>
        <Outlet />
      </LiveEventsProvider>
    ),
    children: [
      {
        element: <AppShell />,
        children: [
          { index: true, element: <h1>Catalog</h1> },
          {
            path: 'admin',
            element: <RequireRole />,
            children: [
              { index: true, element: <h1>Dashboard</h1> },
              { element: <RequireRole platformOnly />, children: [{ path: 'orgs', element: <h1>Orgs</h1> }] },
            ],
          },
        ],
      },
    ],
  },
];

function events() {
  return { 'GET /api/v1/events': () => apiError(404, 'not_found') };
}

describe('route guards and navigation', () => {
  it('members see no admin navigation and get "not found" for admin pages', async () => {
    mockFetch({ 'POST /api/v1/auth/refresh': () => json(authResponse(member)), ...events() });
    renderRoutes(routes, '/admin');
    expect(await screen.findByRole('heading', { name: 'Page not found' })).toBeInTheDocument();
    expect(screen.queryByRole('list', { name: 'Administration' })).not.toBeInTheDocument();
    expect(screen.getByRole('link', { name: 'Catalog' })).toBeInTheDocument();
  });

  it('platform admins see every admin section', async () => {
    mockFetch({ 'POST /api/v1/auth/refresh': () => json(authResponse(admin)), ...events() });
    renderRoutes(routes, '/admin/orgs');
    expect(await screen.findByRole('heading', { name: 'Orgs' })).toBeInTheDocument();
    const nav = screen.getByRole('list', { name: 'Administration' });
    for (const name of ['Dashboard', 'Agents', 'All sessions', 'Users', 'Organizations', 'Templates', 'Warm pools', 'Audit log', 'Org settings']) {
      expect(nav).toContainElement(screen.getByRole('link', { name }));
    }
  });

  it('org admins do not get the organizations page', async () => {
    mockFetch({ 'POST /api/v1/auth/refresh': () => json(authResponse({ ...admin, role: 'org_admin' })), ...events() });
    renderRoutes(routes, '/admin/orgs');
    expect(await screen.findByRole('heading', { name: 'Page not found' })).toBeInTheDocument();
    expect(screen.queryByRole('link', { name: 'Organizations' })).not.toBeInTheDocument();
    expect(screen.getByRole('link', { name: 'Dashboard' })).toBeInTheDocument();
  });

  it('sends anonymous visitors to the sign-in page', async () => {
    mockFetch({ 'POST /api/v1/auth/refresh': () => apiError(401, 'unauthorized') });
    renderRoutes([{ path: '/login', element: <SignInPage /> }, { element: <RequireAuth />, children: [{ path: '/', element: <h1>Catalog</h1> }] }], '/');
    expect(await screen.findByRole('button', { name: 'Sign in' })).toBeInTheDocument();
  });
});
