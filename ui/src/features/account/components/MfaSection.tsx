import { useState, type FormEvent } from 'react';
import { Alert, Box, Button, Chip, Stack, TextField, Typography } from '@mui/material';
import type { Me } from '@/types/api';
import { useDisableMfa } from '../api/account';
import { MfaEnrollForm, RecoveryCodesDialog, mfaCodeError } from './MfaEnrollForm';

export function MfaSection({ me }: { me: Me }) {
  const disable = useDisableMfa();
  const [code, setCode] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [disabling, setDisabling] = useState(false);
  const [recoveryCodes, setRecoveryCodes] = useState<string[] | null>(null);

  const submitDisable = (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    disable.mutate(code.replace(/\s/g, ''), {
      onSuccess: () => {
        setDisabling(false);
        setCode('');
      },
      onError: (err) => setError(mfaCodeError(err)),
    });
  };

  return (
    <Stack spacing={2}>
      <Box sx={{ display: 'flex', alignItems: 'center', gap: 1, flexWrap: 'wrap' }}>
        <Typography>Two-factor authentication:</Typography>
        <Chip size="small" color={me.mfa_enabled ? 'success' : 'default'} label={me.mfa_enabled ? 'On' : 'Off'} />
        {me.mfa_enabled ? (
          <Typography variant="body2" color={me.recovery_codes_left > 2 ? 'text.secondary' : 'warning.main'}>
            {me.recovery_codes_left === 1 ? '1 recovery code left' : `${me.recovery_codes_left} recovery codes left`}
          </Typography>
        ) : null}
      </Box>

      {!me.mfa_enabled ? <MfaEnrollForm onConfirmed={setRecoveryCodes} /> : null}
      <RecoveryCodesDialog codes={recoveryCodes} onClose={() => setRecoveryCodes(null)} />

      {me.mfa_enabled && !disabling ? (
        <div>
          <Button color="error" variant="outlined" onClick={() => setDisabling(true)}>
            Turn off two-factor authentication
          </Button>
        </div>
      ) : null}

      {me.mfa_enabled && disabling ? (
        <Stack component="form" spacing={2} onSubmit={submitDisable} noValidate aria-label="Turn off two-factor authentication">
          {error ? <Alert severity="error">{error}</Alert> : null}
          <TextField
            label="Code from the app"
            value={code}
            onChange={(e) => setCode(e.target.value)}
            autoComplete="one-time-code"
            helperText="Turning it off needs a current code from your authenticator app (recovery codes do not work here)."
            slotProps={{ htmlInput: { inputMode: 'numeric', maxLength: 8 } }}
            sx={{ maxWidth: 420 }}
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
    </Stack>
  );
}
