import { useState, type FormEvent } from 'react';
import { Navigate, useLocation } from 'react-router';
import {
  Alert,
  Box,
  Button,
  Card,
  CardContent,
  Link,
  Stack,
  TextField,
  Typography,
} from '@mui/material';
import { api, errorMessage, isApiError } from '@/lib/api';
import { useAuth } from '@/lib/auth';

type Step = 'password' | 'mfa';

function messageFor(e: unknown): string {
  if (isApiError(e, 'invalid_credentials')) return 'Wrong username or password.';
  if (isApiError(e, 'invalid_mfa_code')) return 'That code is not valid. Codes work once: wait for the next one and try again.';
  if (isApiError(e, 'too_many_attempts')) return 'Too many attempts. Wait a moment and try again.';
  return errorMessage(e);
}

function safeRedirect(from: unknown): string {
  // Only same-app paths: never follow a protocol-relative or absolute URL.
  return typeof from === 'string' && from.startsWith('/') && !from.startsWith('//') && from !== '/login' ? from : '/';
}

export function SignInPage() {
  const auth = useAuth();
  const location = useLocation();
  const from = safeRedirect((location.state as { from?: unknown } | null)?.from);
  const [step, setStep] = useState<Step>('password');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [useRecovery, setUseRecovery] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  if (auth.status === 'authenticated') return <Navigate to={auth.mfaEnrollmentRequired ? '/setup-mfa' : from} replace />;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      if (step === 'password') {
        await api.login({ username, password });
      } else {
        const c = code.trim();
        await api.login(
          useRecovery ? { username, password, recovery_code: c } : { username, password, totp_code: c.replace(/\s/g, '') },
        );
      }
    } catch (err) {
      if (step === 'password' && isApiError(err, 'mfa_required')) {
        setStep('mfa');
        setCode('');
      } else {
        setError(messageFor(err));
      }
    } finally {
      setBusy(false);
    }
  };

  const expired = auth.status === 'anonymous' && auth.reason === 'expired';
  const enrolled = auth.status === 'anonymous' && auth.reason === 'mfa_enrolled';

  return (
    <Box
      component="main"
      sx={{ minHeight: '100vh', display: 'flex', alignItems: 'center', justifyContent: 'center', p: 2, bgcolor: 'background.default' }}
    >
      <Card sx={{ width: '100%', maxWidth: 400 }} variant="outlined">
        <CardContent>
          <Stack spacing={2} component="form" onSubmit={submit} noValidate aria-label="Sign in">
            <Box>
              <Typography variant="h1" component="h1">
                StreamSpace
              </Typography>
              <Typography color="text.secondary">
                {step === 'password' ? 'Sign in to continue' : 'Two-factor authentication'}
              </Typography>
            </Box>
            {expired && !error ? <Alert severity="info">Your session has ended. Please sign in again.</Alert> : null}
            {enrolled && !error ? (
              <Alert severity="success">
                Two-factor authentication is on. Sign in again with a code from your authenticator app.
              </Alert>
            ) : null}
            {error ? (
              <Alert severity="error" role="alert">
                {error}
              </Alert>
            ) : null}
            {step === 'password' ? (
              <>
                <TextField
                  label="Username"
                  name="username"
                  value={username}
                  onChange={(e) => setUsername(e.target.value)}
                  autoComplete="username"
                  autoFocus
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
              </>
            ) : (
              <>
                <Typography variant="body2">
                  {useRecovery
                    ? 'Enter one of your recovery codes.'
                    : 'Enter the 6-digit code from your authenticator app.'}
                </Typography>
                {useRecovery ? (
                  <TextField
                    key="recovery"
                    label="Recovery code"
                    name="recovery_code"
                    value={code}
                    onChange={(e) => setCode(e.target.value)}
                    autoComplete="off"
                    autoFocus
                    required
                    fullWidth
                  />
                ) : (
                  <TextField
                    key="totp"
                    label="Authentication code"
                    name="totp_code"
                    value={code}
                    onChange={(e) => setCode(e.target.value)}
                    autoComplete="one-time-code"
                    autoFocus
                    required
                    fullWidth
                    slotProps={{ htmlInput: { inputMode: 'numeric', pattern: '[0-9 ]*', maxLength: 8 } }}
                  />
                )}
                <Button type="submit" variant="contained" size="large" disabled={busy || !code.trim()}>
                  {busy ? 'Verifying…' : 'Verify'}
                </Button>
                <Box sx={{ display: 'flex', justifyContent: 'space-between', gap: 1 }}>
                  <Link
                    component="button"
                    type="button"
                    variant="body2"
                    onClick={() => {
                      setUseRecovery((r) => !r);
                      setCode('');
                      setError(null);
                    }}
                  >
                    {useRecovery ? 'Use authenticator code' : 'Use a recovery code'}
                  </Link>
                  <Link
                    component="button"
                    type="button"
                    variant="body2"
                    onClick={() => {
                      setStep('password');
                      setCode('');
                      setError(null);
                      setUseRecovery(false);
                    }}
                  >
                    Back
                  </Link>
                </Box>
              </>
            )}
          </Stack>
        </CardContent>
      </Card>
    </Box>
  );
}
