import { useState, type FormEvent } from 'react';
import { Alert, Box, Button, Chip, Stack, TextField, Typography } from '@mui/material';
import { OneTimeSecretDialog } from '@/components/OneTimeSecretDialog';
import { CopyButton } from '@/components/CopyButton';
import { errorMessage, isApiError } from '@/lib/api';
import type { Me, MfaEnrollment } from '@/types/api';
import { useConfirmMfa, useDisableMfa, useEnrollMfa } from '../api/account';

function codeError(e: unknown): string {
  return isApiError(e, 'invalid_mfa_code') ? 'That code is not valid. Try the current one.' : errorMessage(e);
}

export function MfaSection({ me }: { me: Me }) {
  const enroll = useEnrollMfa();
  const confirmMfa = useConfirmMfa();
  const disable = useDisableMfa();
  const [enrollment, setEnrollment] = useState<MfaEnrollment | null>(null);
  const [code, setCode] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [recoveryCodes, setRecoveryCodes] = useState<string[] | null>(null);
  const [disabling, setDisabling] = useState(false);

  const start = () => {
    setError(null);
    enroll.mutate(undefined, { onSuccess: setEnrollment, onError: (e) => setError(errorMessage(e)) });
  };

  const submitConfirm = (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    confirmMfa.mutate(code.replace(/\s/g, ''), {
      onSuccess: (r) => {
        setEnrollment(null);
        setCode('');
        setRecoveryCodes(r.recovery_codes);
      },
      onError: (err) => setError(codeError(err)),
    });
  };

  const submitDisable = (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    disable.mutate(code.trim(), {
      onSuccess: () => {
        setDisabling(false);
        setCode('');
      },
      onError: (err) => setError(codeError(err)),
    });
  };

  return (
    <Stack spacing={2}>
      <Box sx={{ display: 'flex', alignItems: 'center', gap: 1 }}>
        <Typography>Two-factor authentication:</Typography>
        <Chip size="small" color={me.mfa_enabled ? 'success' : 'default'} label={me.mfa_enabled ? 'On' : 'Off'} />
      </Box>
      {error ? <Alert severity="error">{error}</Alert> : null}

      {!me.mfa_enabled && !enrollment ? (
        <div>
          <Button variant="contained" onClick={start} disabled={enroll.isPending}>
            {enroll.isPending ? 'Preparing…' : 'Set up two-factor authentication'}
          </Button>
        </div>
      ) : null}

      {enrollment ? (
        <Stack component="form" spacing={2} onSubmit={submitConfirm} noValidate aria-label="Confirm two-factor authentication">
          <Typography variant="body2">
            Scan this QR code with an authenticator app, or enter the secret by hand. Then type the 6-digit code it shows.
          </Typography>
          <Box
            component="img"
            src={`data:image/png;base64,${enrollment.qr_png_base64}`}
            alt="QR code for your authenticator app"
            sx={{ width: 200, height: 200, imageRendering: 'pixelated', bgcolor: '#fff', p: 1, borderRadius: 1 }}
          />
          <Box sx={{ display: 'flex', alignItems: 'center', gap: 1 }}>
            <Typography variant="body2" sx={{ fontFamily: 'monospace', wordBreak: 'break-all' }} aria-label="Secret">
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
              }}
            >
              Cancel
            </Button>
          </Stack>
        </Stack>
      ) : null}

      {me.mfa_enabled && !disabling ? (
        <div>
          <Button color="error" variant="outlined" onClick={() => setDisabling(true)}>
            Turn off two-factor authentication
          </Button>
        </div>
      ) : null}

      {me.mfa_enabled && disabling ? (
        <Stack component="form" spacing={2} onSubmit={submitDisable} noValidate aria-label="Turn off two-factor authentication">
          <TextField
            label="Authentication or recovery code"
            value={code}
            onChange={(e) => setCode(e.target.value)}
            autoComplete="one-time-code"
            sx={{ maxWidth: 320 }}
            required
          />
          <Stack direction="row" spacing={1}>
            <Button type="submit" color="error" variant="contained" disabled={disable.isPending || !code.trim()}>
              Turn off
            </Button>
            <Button
              onClick={() => {
                setDisabling(false);
                setCode('');
                setError(null);
              }}
            >
              Cancel
            </Button>
          </Stack>
        </Stack>
      ) : null}

      <OneTimeSecretDialog
        open={recoveryCodes !== null}
        title="Recovery codes"
        description="Keep these codes somewhere safe. Each one signs you in once if you lose your authenticator. They will not be shown again."
        secret={recoveryCodes}
        filename="streamspace-recovery-codes.txt"
        onClose={() => setRecoveryCodes(null)}
      />
    </Stack>
  );
}
