import { useState } from 'react';
import { Navigate, useNavigate } from 'react-router';
import { Alert, Box, Button } from '@mui/material';
import { api } from '@/lib/api';
import { useAuth } from '@/lib/auth';
import { MfaEnrollForm, RecoveryCodesDialog } from '@/features/account';
import { AuthCard } from './AuthCard';

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
    <AuthCard title="Set up two-factor authentication" subtitle={`Signed in as ${auth.user.username}`} maxWidth={520}>
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
    </AuthCard>
  );
}
