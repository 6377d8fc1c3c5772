import { useState, type FormEvent } from 'react';
import { Alert, Box, Button, Link, Stack, TextField, Typography } from '@mui/material';
import { errorMessage, isApiError } from '@/lib/api';

export function signInErrorMessage(e: unknown): string {
  if (isApiError(e, 'invalid_credentials')) return 'Wrong username or password.';
  if (isApiError(e, 'invalid_mfa_code')) return 'That code is not valid. Codes work once: wait for the next one and try again.';
  if (isApiError(e, 'too_many_attempts')) return 'Too many attempts. Wait a moment and try again.';
  if (isApiError(e, 'invalid_ticket')) return 'This sign-in has expired or was already used. Sign in again.';
  return errorMessage(e);
}

export type SecondFactor = { totp_code: string } | { recovery_code: string };

/**
 * The second step of a sign-in: a code from the authenticator app or a recovery code. `verify` sends it
 * (with whatever proved the first factor) and throws the server's error, which is shown here.
 */
export function MfaCodeStep({ verify, onBack }: { verify: (factor: SecondFactor) => Promise<unknown>; onBack?: () => void }) {
  const [code, setCode] = useState('');
  const [useRecovery, setUseRecovery] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setBusy(true);
    const c = code.trim();
    try {
      await verify(useRecovery ? { recovery_code: c } : { totp_code: c.replace(/\s/g, '') });
    } catch (err) {
      setError(signInErrorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Stack spacing={2} component="form" onSubmit={submit} noValidate aria-label="Two-factor authentication">
      {error ? (
        <Alert severity="error" role="alert">
          {error}
        </Alert>
      ) : null}
      <Typography variant="body2">
        {useRecovery ? 'Enter one of your recovery codes.' : 'Enter the 6-digit code from your authenticator app.'}
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
        {onBack ? (
          <Link component="button" type="button" variant="body2" onClick={onBack}>
            Back
          </Link>
        ) : null}
      </Box>
    </Stack>
  );
}
