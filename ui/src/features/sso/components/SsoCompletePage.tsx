import { Link as RouterLink, Navigate, useSearchParams } from 'react-router';
import { Alert, Button } from '@mui/material';
import { api } from '@/lib/api';
import { useAuth } from '@/lib/auth';
import { safeRedirect } from '@/lib/redirect';
import { AuthCard, MfaCodeStep } from '@/features/auth';
import { ssoErrorMessage } from '../discover';

export type SsoOutcome =
  | { kind: 'signed_in' }
  | { kind: 'mfa'; ticket: string }
  | { kind: 'error'; message: string };

/** How the server's flow ended, from the query string of its redirect to `/login/sso`. */
export function ssoOutcome(params: URLSearchParams): SsoOutcome {
  const error = params.get('error');
  if (error) return { kind: 'error', message: ssoErrorMessage(error) };
  const ticket = params.get('mfa');
  if (ticket) return { kind: 'mfa', ticket };
  if (params.has('next')) return { kind: 'signed_in' };
  return { kind: 'error', message: ssoErrorMessage('sso_failed') };
}

function SsoFailure({ message }: { message: string }) {
  return (
    <AuthCard subtitle="Single sign-on">
      <Alert severity="error" role="alert">
        {message}
      </Alert>
      <Button component={RouterLink} to="/login" variant="contained">
        Back to sign-in
      </Button>
    </AuthCard>
  );
}

/**
 * `/login/sso`: where every single sign-on flow ends. On success the server has set the refresh cookie, which
 * the app's start-up refresh turned into a signed-in session; a `mfa` ticket means the org still asks for a
 * TOTP code; an `error` is a stable code shown as a sentence.
 */
export function SsoCompletePage() {
  const auth = useAuth();
  const [params] = useSearchParams();
  const outcome = ssoOutcome(params);

  if (outcome.kind === 'error') return <SsoFailure message={outcome.message} />;
  if (auth.status === 'authenticated') {
    return <Navigate to={auth.mfaEnrollmentRequired ? '/setup-mfa' : safeRedirect(params.get('next'))} replace />;
  }
  if (outcome.kind === 'mfa') {
    return (
      <AuthCard subtitle="Two-factor authentication">
        <MfaCodeStep verify={(factor) => api.completeSsoMfa({ ticket: outcome.ticket, ...factor })} />
      </AuthCard>
    );
  }
  return <SsoFailure message="The sign-in could not be completed: your browser may block its cookie. Try again." />;
}
