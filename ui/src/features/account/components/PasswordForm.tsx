import { useState, type FormEvent } from 'react';
import { Alert, Button, Stack, TextField } from '@mui/material';
import { errorMessage, isApiError } from '@/lib/api';
import { useChangePassword } from '../api/account';

/** The control plane's minimum (`auth::password::MIN_PASSWORD_LEN`). */
export const MIN_PASSWORD_LENGTH = 8;

export function PasswordForm() {
  const change = useChangePassword();
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [repeat, setRepeat] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState(false);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    setDone(false);
    if (next.length < MIN_PASSWORD_LENGTH) return setError(`The new password needs at least ${MIN_PASSWORD_LENGTH} characters.`);
    if (next !== repeat) return setError('The new passwords do not match.');
    setError(null);
    change.mutate(
      { current_password: current, new_password: next },
      {
        onSuccess: () => {
          setDone(true);
          setCurrent('');
          setNext('');
          setRepeat('');
        },
        onError: (err) =>
          setError(isApiError(err, 'invalid_credentials') ? 'The current password is wrong.' : errorMessage(err)),
      },
    );
  };

  return (
    <Stack component="form" spacing={2} onSubmit={submit} noValidate aria-label="Change password" sx={{ maxWidth: 420 }}>
      {error ? <Alert severity="error">{error}</Alert> : null}
      {done ? <Alert severity="success">Password changed.</Alert> : null}
      <TextField
        label="Current password"
        type="password"
        autoComplete="current-password"
        value={current}
        onChange={(e) => setCurrent(e.target.value)}
        required
      />
      <TextField
        label="New password"
        type="password"
        autoComplete="new-password"
        value={next}
        onChange={(e) => setNext(e.target.value)}
        helperText={`At least ${MIN_PASSWORD_LENGTH} characters`}
        required
      />
      <TextField
        label="Repeat new password"
        type="password"
        autoComplete="new-password"
        value={repeat}
        onChange={(e) => setRepeat(e.target.value)}
        required
      />
      <div>
        <Button type="submit" variant="contained" disabled={change.isPending || !current || !next || !repeat}>
          {change.isPending ? 'Saving…' : 'Change password'}
        </Button>
      </div>
    </Stack>
  );
}
