import { useState } from 'react';
import { Navigate, useNavigate } from 'react-router';
import { Alert, Box, Button, Card, CardContent, Stack, Typography } from '@mui/material';
import { api } from '@/lib/api';
import { useAuth } from '@/lib/auth';
import { MfaEnrollForm, RecoveryCodesDialog } from '@/features/account';

/**
 * Shown instead of the app while the sign-in is restricted to MFA setup (the org requires MFA and the
 * user has none). Confirming MFA does not lift the restriction of the current sign-in (its tokens say
 * "no second factor"), so the user signs in again, this time with a code.
 */
export function MfaSetupPage() {
  const auth = useAuth();
  const navigate = useNavigate();
  const [recoveryCodes, setRecoveryCodes] = useState<string[] | null>(null);
  if (auth.status !== 'authenticated') return <Navigate to="/login" replace />;
  if (!auth.mfaEnrollmentRequired) return <Navigate to="/" replace />;

  const signOut = async (reason: 'signed_out' | 'mfa_enrolled') => {
    await api.logout(reason);
    void navigate('/login', { replace: true });
  };

  return (
    <Box
      component="main"
      sx={{ minHeight: '100vh', display: 'flex', alignItems: 'center', justifyContent: 'center', p: 2, bgcolor: 'background.default' }}
    >
      <Card sx={{ width: '100%', maxWidth: 520 }} variant="outlined">
        <CardContent>
          <Stack spacing={2}>
            <Box>
              <Typography variant="h1" component="h1">
                Set up two-factor authentication
              </Typography>
              <Typography color="text.secondary">Signed in as {auth.user.username}</Typography>
            </Box>
            <Alert severity="info">
              Your organization requires two-factor authentication. Set it up to continue; you will then sign in again
              with a code from your authenticator app.
            </Alert>
            <MfaEnrollForm onConfirmed={setRecoveryCodes} />
            <RecoveryCodesDialog
              codes={recoveryCodes}
              note="Next, sign in again with a code from your app."
              onClose={() => void signOut('mfa_enrolled')}
            />
            <Box>
              <Button onClick={() => void signOut('signed_out')}>Sign out</Button>
            </Box>
          </Stack>
        </CardContent>
      </Card>
    </Box>
  );
}
