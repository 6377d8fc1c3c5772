import { useEffect, useRef, useState } from 'react';
import { Link as RouterLink, useNavigate } from 'react-router';
import { Alert, AlertTitle, Box, Button, CircularProgress } from '@mui/material';
import { errorMessage } from '@/lib/api';
import { joinShare } from '../api';

/**
 * Where a sharing link lands: `/join#<token>`. The token travels in the fragment, which browsers
 * never send to a server; it is posted once, then the session opens.
 */
export function JoinSharePage() {
  const navigate = useNavigate();
  const [error, setError] = useState<unknown>(null);
  const joined = useRef(false);
  useEffect(() => {
    // The token is taken from the address once; a second run of the effect has nothing to post.
    if (joined.current) return;
    joined.current = true;
    const token = window.location.hash.slice(1);
    window.history.replaceState(null, '', window.location.pathname);
    void joinShare(token)
      .then((joined) => void navigate(`/sessions/${encodeURIComponent(joined.session_id)}`, { replace: true }))
      .catch(setError);
  }, [navigate]);
  return (
    <Box sx={{ p: 4, display: 'flex', justifyContent: 'center' }}>
      {error ? (
        <Alert severity="error" sx={{ maxWidth: 520 }}>
          <AlertTitle>This link does not open a session</AlertTitle>
          It has expired, was revoked, or is for another organization. {errorMessage(error)}
          <Box sx={{ mt: 2 }}>
            <Button component={RouterLink} to="/sessions">
              My sessions
            </Button>
          </Box>
        </Alert>
      ) : (
        <CircularProgress aria-label="Joining the session" />
      )}
    </Box>
  );
}
