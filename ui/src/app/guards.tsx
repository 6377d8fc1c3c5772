import { useEffect } from 'react';
import { Navigate, Outlet, useLocation } from 'react-router';
import { api } from '@/lib/api';
import { isAdminRole, useAuth } from '@/lib/auth';
import { LiveEventsProvider } from '@/app/live';
import { FullPageSpinner } from '@/components/FullPageSpinner';
import { NotFoundPage } from './NotFoundPage';

/** Restores the session (refresh cookie -> access token) before anything renders. */
export function AuthRestore({ children }: { children: React.ReactNode }) {
  const auth = useAuth();
  useEffect(() => {
    void api.restore();
  }, []);
  if (auth.status === 'unknown') return <FullPageSpinner label="Signing in" />;
  return <>{children}</>;
}

/** Routes below need a signed-in user; live updates run while they are shown. */
export function RequireAuth() {
  const auth = useAuth();
  const location = useLocation();
  if (auth.status !== 'authenticated') {
    return <Navigate to="/login" replace state={{ from: location.pathname + location.search }} />;
  }
  // A sign-in without the MFA its org requires may only set MFA up (every other route answers 403).
  if (auth.mfaEnrollmentRequired) return <Navigate to="/setup-mfa" replace />;
  return (
    <LiveEventsProvider>
      <Outlet />
    </LiveEventsProvider>
  );
}

export function RequireRole({ platformOnly = false }: { platformOnly?: boolean }) {
  const auth = useAuth();
  if (auth.status !== 'authenticated') return null;
  const ok = platformOnly ? auth.user.role === 'platform_admin' : isAdminRole(auth.user.role);
  // Like the API, do not reveal what exists: a plain "not found".
  return ok ? <Outlet /> : <NotFoundPage />;
}
