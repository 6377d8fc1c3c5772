import { useState, type FormEvent } from 'react';
import { Navigate, useLocation, useParams } from 'react-router';
import { Alert, Button, Divider, Stack, TextField } from '@mui/material';
import { api, isApiError } from '@/lib/api';
import { useAuth } from '@/lib/auth';
import { safeRedirect } from '@/lib/redirect';
import { OrgSsoButtons, SsoDiscoveryForm } from '@/features/sso';
import { AuthCard } from './AuthCard';
import { MfaCodeStep, signInErrorMessage } from './MfaCodeStep';

/**
 * `/login` and `/login/<org>`: single sign-on through the organization's identity providers, and the
 * username/password form that stays for local accounts (small installations, break-glass admins).
 */
export function SignInPage() {
  const auth = useAuth();
  const location = useLocation();
  const { org } = useParams();
  const from = safeRedirect((location.state as { from?: unknown } | null)?.from);
  const [mfaStep, setMfaStep] = useState(false);
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  if (auth.status === 'authenticated') return <Navigate to={auth.mfaEnrollmentRequired ? '/setup-mfa' : from} replace />;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      await api.login({ username, password });
    } catch (err) {
      if (isApiError(err, 'mfa_required')) setMfaStep(true);
      else setError(signInErrorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  if (mfaStep) {
    return (
      <AuthCard subtitle="Two-factor authentication">
        <MfaCodeStep verify={(factor) => api.login({ username, password, ...factor })} onBack={() => setMfaStep(false)} />
      </AuthCard>
    );
  }

  const expired = auth.status === 'anonymous' && auth.reason === 'expired';
  const enrolled = auth.status === 'anonymous' && auth.reason === 'mfa_enrolled';

  return (
    <AuthCard subtitle="Sign in to continue">
      {expired && !error ? <Alert severity="info">Your session has ended. Please sign in again.</Alert> : null}
      {enrolled && !error ? (
        <Alert severity="success">Two-factor authentication is on. Sign in again with a code from your authenticator app.</Alert>
      ) : null}
      {org ? <OrgSsoButtons org={org} returnTo={from} /> : <SsoDiscoveryForm returnTo={from} />}
      <Divider>or with a password</Divider>
      <Stack spacing={2} component="form" onSubmit={submit} noValidate aria-label="Sign in">
        {error ? (
          <Alert severity="error" role="alert">
            {error}
          </Alert>
        ) : null}
        <TextField
          label="Username"
          name="username"
          value={username}
          onChange={(e) => setUsername(e.target.value)}
          autoComplete="username"
          required
          fullWidth
        />
        <TextField
          label="Password"
          name="password"
          type="password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          autoComplete="current-password"
          required
          fullWidth
        />
        <Button type="submit" variant="contained" size="large" disabled={busy || !username || !password}>
          {busy ? 'Signing in…' : 'Sign in'}
        </Button>
      </Stack>
    </AuthCard>
  );
}
