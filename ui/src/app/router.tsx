import { Suspense, lazy, type ComponentType } from 'react';
import { createBrowserRouter, type RouteObject } from 'react-router';
import { FullPageSpinner } from '@/components/FullPageSpinner';
import { SignInPage } from '@/features/auth/components/SignInPage';
import { CatalogPage } from '@/features/catalog/components/CatalogPage';
import { MySessionsPage } from '@/features/sessions/components/MySessionsPage';
import { AppShell } from './AppShell';
import { RequireAuth, RequireRole } from './guards';
import { NotFoundPage } from './NotFoundPage';
import { RouteErrorPage } from './RouteErrorPage';

// Less-used pages load on demand, keeping the first download small.
function lazyNamed<K extends string>(load: () => Promise<Record<K, ComponentType>>, name: K) {
  return lazy(async () => ({ default: (await load())[name] }));
}

const MfaSetupPage = lazyNamed(() => import('@/features/auth/components/MfaSetupPage'), 'MfaSetupPage');
const SessionViewerPage = lazyNamed(() => import('@/features/sessions/components/SessionViewerPage'), 'SessionViewerPage');
const AccountPage = lazyNamed(() => import('@/features/account/components/AccountPage'), 'AccountPage');
const DashboardPage = lazyNamed(() => import('@/features/dashboard/components/DashboardPage'), 'DashboardPage');
const AgentsPage = lazyNamed(() => import('@/features/agents/components/AgentsPage'), 'AgentsPage');
const AdminSessionsPage = lazyNamed(() => import('@/features/sessions/components/AdminSessionsPage'), 'AdminSessionsPage');
const UsersPage = lazyNamed(() => import('@/features/users/components/UsersPage'), 'UsersPage');
const HomesPage = lazyNamed(() => import('@/features/homes/components/HomesPage'), 'HomesPage');
const OrgsPage = lazyNamed(() => import('@/features/orgs/components/OrgsPage'), 'OrgsPage');
const TemplatesPage = lazyNamed(() => import('@/features/templates/components/TemplatesPage'), 'TemplatesPage');
const PoolsPage = lazyNamed(() => import('@/features/templates/components/PoolsPage'), 'PoolsPage');
const AuditPage = lazyNamed(() => import('@/features/audit/components/AuditPage'), 'AuditPage');
const ComplianceReportPage = lazyNamed(
  () => import('@/features/reports/components/ComplianceReportPage'),
  'ComplianceReportPage',
);
const SsoCompletePage = lazyNamed(() => import('@/features/sso/components/SsoCompletePage'), 'SsoCompletePage');
const JoinSharePage = lazyNamed(() => import('@/features/sharing/components/JoinSharePage'), 'JoinSharePage');
const OrgSettingsPage = lazyNamed(() => import('@/features/settings/components/OrgSettingsPage'), 'OrgSettingsPage');

export const routes: RouteObject[] = [
  { path: '/login', element: <SignInPage /> },
  {
    path: '/login/sso',
    element: (
      <Suspense fallback={<FullPageSpinner />}>
        <SsoCompletePage />
      </Suspense>
    ),
  },
  { path: '/login/:org', element: <SignInPage /> },
  {
    path: '/setup-mfa',
    element: (
      <Suspense fallback={<FullPageSpinner />}>
        <MfaSetupPage />
      </Suspense>
    ),
  },
  {
    element: <RequireAuth />,
    children: [
      {
        path: '/join',
        element: (
          <Suspense fallback={<FullPageSpinner />}>
            <JoinSharePage />
          </Suspense>
        ),
      },
      {
        path: '/sessions/:id',
        element: (
          <Suspense fallback={<FullPageSpinner />}>
            <SessionViewerPage />
          </Suspense>
        ),
      },
      {
        element: <AppShell />,
        children: [
          {
            // A page that fails shows so inside the shell, whose navigation keeps working.
            errorElement: <RouteErrorPage />,
            children: [
              { index: true, element: <CatalogPage /> },
              { path: 'sessions', element: <MySessionsPage /> },
              { path: 'account', element: <AccountPage /> },
              {
                path: 'admin',
                element: <RequireRole />,
                children: [
                  { index: true, element: <DashboardPage /> },
                  { path: 'agents', element: <AgentsPage /> },
                  { path: 'sessions', element: <AdminSessionsPage /> },
                  { path: 'users', element: <UsersPage /> },
                  { path: 'homes', element: <HomesPage /> },
                  { path: 'templates', element: <TemplatesPage /> },
                  { path: 'pools', element: <PoolsPage /> },
                  { path: 'audit', element: <AuditPage /> },
                  { path: 'reports', element: <ComplianceReportPage /> },
                  { path: 'settings', element: <OrgSettingsPage /> },
                  { element: <RequireRole platformOnly />, children: [{ path: 'orgs', element: <OrgsPage /> }] },
                ],
              },
              { path: '*', element: <NotFoundPage /> },
            ],
          },
        ],
      },
    ],
  },
];

export function createAppRouter() {
  // A page that fails outside the shell (the viewer, the sign-in steps) shows so on the whole page.
  return createBrowserRouter([{ errorElement: <RouteErrorPage />, children: routes }]);
}
