import { useState, type FormEvent } from 'react';
import { Alert, Box, Button, Stack, TextField, Typography } from '@mui/material';
import { CopyButton } from '@/components/CopyButton';
import { OneTimeSecretDialog } from '@/components/OneTimeSecretDialog';
import { errorMessage, isApiError } from '@/lib/api';
import type { MfaEnrollment } from '@/types/api';
import { useConfirmMfa, useEnrollMfa } from '../api/account';

export function mfaCodeError(e: unknown): string {
  return isApiError(e, 'invalid_mfa_code')
    ? 'That code is not valid. Codes work once: wait for the next one and try again.'
    : errorMessage(e);
}

/** The recovery codes `POST /me/mfa/confirm` returns, shown once. */
export function RecoveryCodesDialog({ codes, note, onClose }: { codes: string[] | null; note?: string; onClose: () => void }) {
  return (
    <OneTimeSecretDialog
      open={codes !== null}
      title="Recovery codes"
      description={
        'Keep these codes somewhere safe. Each one signs you in once if you lose your authenticator. They will not be shown again.' +
        (note ? ` ${note}` : '')
      }
      secret={codes}
      filename="streamspace-recovery-codes.txt"
      onClose={onClose}
    />
  );
}

/**
 * TOTP enrollment: `POST /me/mfa/enroll` (secret + QR code), then `POST /me/mfa/confirm` with a code.
 * `onConfirmed` gets the recovery codes; the parent shows them (with `RecoveryCodesDialog`), since
 * this form usually disappears once the account says MFA is on.
 */
export function MfaEnrollForm({ onConfirmed, onCancel }: { onConfirmed: (recoveryCodes: string[]) => void; onCancel?: () => void }) {
  const enroll = useEnrollMfa();
  const confirmMfa = useConfirmMfa();
  const [enrollment, setEnrollment] = useState<MfaEnrollment | null>(null);
  const [code, setCode] = useState('');
  const [error, setError] = useState<string | null>(null);

  const start = () => {
    setError(null);
    enroll.mutate(undefined, { onSuccess: setEnrollment, onError: (e) => setError(errorMessage(e)) });
  };

  const submit = (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    confirmMfa.mutate(code.replace(/\s/g, ''), {
      onSuccess: (r) => {
        setEnrollment(null);
        setCode('');
        onConfirmed(r.recovery_codes);
      },
      onError: (err) => setError(mfaCodeError(err)),
    });
  };

  return (
    <Stack spacing={2}>
      {error ? <Alert severity="error">{error}</Alert> : null}
      {!enrollment ? (
        <Stack direction="row" spacing={1}>
          <Button variant="contained" onClick={start} disabled={enroll.isPending}>
            {enroll.isPending ? 'Preparing…' : 'Set up two-factor authentication'}
          </Button>
          {onCancel ? <Button onClick={onCancel}>Cancel</Button> : null}
        </Stack>
      ) : null}
      {enrollment ? (
        <Stack component="form" spacing={2} onSubmit={submit} noValidate aria-label="Confirm two-factor authentication">
          <Typography variant="body2">
            Scan this QR code with an authenticator app, or enter the secret by hand. Then type the 6-digit code it shows.
          </Typography>
          <Box
            component="img"
            src={`data:image/png;base64,${enrollment.qr_png_base64}`}
            alt="QR code for your authenticator app"
            sx={{ width: 200, height: 200, imageRendering: 'pixelated', bgcolor: '#fff', p: 1, borderRadius: 1, border: 1, borderColor: 'divider' }}
          />
          <Box sx={{ display: 'flex', alignItems: 'center', gap: 1 }}>
            <Typography
              variant="body2"
              component="code"
              data-testid="mfa-secret"
              aria-label="Secret"
              sx={{ fontFamily: 'monospace', wordBreak: 'break-all' }}
            >
              {enrollment.secret}
            </Typography>
            <CopyButton text={enrollment.secret} label="Copy secret" />
          </Box>
          <TextField
            label="Code from the app"
            value={code}
            onChange={(e) => setCode(e.target.value)}
            autoComplete="one-time-code"
            slotProps={{ htmlInput: { inputMode: 'numeric', maxLength: 8 } }}
            sx={{ maxWidth: 240 }}
            required
          />
          <Stack direction="row" spacing={1}>
            <Button type="submit" variant="contained" disabled={confirmMfa.isPending || !code.trim()}>
              {confirmMfa.isPending ? 'Checking…' : 'Turn on'}
            </Button>
            <Button
              onClick={() => {
                setEnrollment(null);
                setCode('');
                setError(null);
                onCancel?.();
              }}
            >
              Cancel
            </Button>
          </Stack>
        </Stack>
      ) : null}
    </Stack>
  );
}
