import { Suspense, lazy } from 'react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { Outlet } from 'react-router';
import { renderRoutes } from '@/testing/render';
import { RouteErrorPage, isModuleLoadFailure } from './RouteErrorPage';

/** A shell with navigation around its pages, which a failed page must leave in place. */
function Shell() {
  return (
    <>
      <nav>Navigation</nav>
      <Suspense fallback={<p>Loading</p>}>
        <Outlet />
      </Suspense>
    </>
  );
}

function routesWith(page: React.ReactNode) {
  return [{ element: <Shell />, children: [{ errorElement: <RouteErrorPage />, children: [{ index: true, element: page }] }] }];
}

describe('RouteErrorPage', () => {
  afterEach(() => vi.restoreAllMocks());

  it('recognizes a module that did not download, in the words of each browser engine', () => {
    for (const message of [
      'Failed to fetch dynamically imported module: http://localhost/assets/AuditPage-x.js',
      'error loading dynamically imported module: http://localhost/assets/AuditPage-x.js',
      'Importing a module script failed.',
    ]) {
      expect(isModuleLoadFailure(new TypeError(message))).toBe(true);
    }
    expect(isModuleLoadFailure(new Error('Cannot read properties of undefined'))).toBe(false);
    expect(isModuleLoadFailure('Failed to fetch dynamically imported module')).toBe(false);
  });

  it('shows a page whose code did not download inside the shell, with a reload', async () => {
    // React reports the error it caught; the page under test is what the user sees instead.
    vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const reload = vi.fn();
    vi.spyOn(window, 'location', 'get').mockReturnValue({ ...window.location, reload });
    const Missing = lazy(() =>
      Promise.reject(new TypeError('Failed to fetch dynamically imported module: http://localhost/assets/AuditPage-x.js')),
    );
    renderRoutes(routesWith(<Missing />));
    expect(await screen.findByRole('heading', { name: 'This page could not load' })).toBeInTheDocument();
    expect(screen.getByText('Navigation')).toBeInTheDocument();
    await userEvent.click(screen.getByRole('button', { name: 'Reload' }));
    expect(reload).toHaveBeenCalledOnce();
  });

  it('shows what a page that threw said', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => undefined);
    function Broken(): React.ReactNode {
      throw new Error('the list had no items field');
    }
    renderRoutes(routesWith(<Broken />));
    expect(await screen.findByRole('heading', { name: 'Something went wrong' })).toBeInTheDocument();
    expect(screen.getByText(/the list had no items field/)).toBeInTheDocument();
    expect(screen.getByText('Navigation')).toBeInTheDocument();
  });
});
