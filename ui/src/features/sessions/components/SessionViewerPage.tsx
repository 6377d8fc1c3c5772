import { useEffect, useRef, useState, type ReactNode } from 'react';
import { Link as RouterLink, useNavigate, useParams } from 'react-router';
import { useQuery } from '@tanstack/react-query';
import {
  Alert,
  AlertTitle,
  AppBar,
  Box,
  Button,
  CircularProgress,
  IconButton,
  LinearProgress,
  Paper,
  Stack,
  Toolbar,
  Tooltip,
  Typography,
} from '@mui/material';
import ArrowBackIcon from '@mui/icons-material/ArrowBack';
import FullscreenIcon from '@mui/icons-material/Fullscreen';
import FullscreenExitIcon from '@mui/icons-material/FullscreenExit';
import OpenInNewIcon from '@mui/icons-material/OpenInNew';
import BedtimeIcon from '@mui/icons-material/Bedtime';
import StopCircleIcon from '@mui/icons-material/StopCircle';
import WbSunnyIcon from '@mui/icons-material/WbSunny';
import { ConfirmActionButton } from '@/components/ConfirmActionButton';
import { useFeedback } from '@/components/feedback';
import { ErrorAlert } from '@/components/ErrorAlert';
import { errorMessage, isApiError } from '@/lib/api';
import { sessionIframeAllow, sessionIframeSandbox } from '@/lib/sessionPolicy';
import { useUser } from '@/lib/auth';
import { ShareButton, WatchingChip } from '@/features/sharing';
import type { Session } from '@/types/api';
import {
  STARTING_STATES,
  connectSession,
  getConnectQueryOptions,
  getSessionQueryOptions,
  useCreateSession,
  useHibernateSession,
  useStopSession,
  useWakeSession,
} from '../api/sessions';
import { STOP_WARNING } from './SessionActions';
import { phaseLabel } from '../phase';
import { SessionStateChip } from './SessionStatus';


function useFullscreen(ref: React.RefObject<HTMLElement | null>) {
  const [active, setActive] = useState(false);
  useEffect(() => {
    const on = () => setActive(document.fullscreenElement !== null && document.fullscreenElement === ref.current);
    document.addEventListener('fullscreenchange', on);
    return () => document.removeEventListener('fullscreenchange', on);
  }, [ref]);
  const toggle = async () => {
    try {
      if (document.fullscreenElement) await document.exitFullscreen();
      else await ref.current?.requestFullscreen();
    } catch {
      // fullscreen refused (e.g. not allowed by the browser): nothing to do
    }
  };
  return { active, toggle, supported: typeof document !== 'undefined' && document.fullscreenEnabled };
}

function Screen({ children }: { children: ReactNode }) {
  return (
    <Box sx={{ flex: 1, display: 'flex', alignItems: 'center', justifyContent: 'center', p: 2 }}>
      <Paper variant="outlined" sx={{ p: 4, width: '100%', maxWidth: 520, textAlign: 'center' }}>
        {children}
      </Paper>
    </Box>
  );
}

function StartingScreen({ session }: { session: Session }) {
  const pct = session.progress ?? null;
  const label = phaseLabel(session);
  return (
    <Screen>
      <Stack spacing={2} role="status" aria-live="polite">
        <Typography variant="h2" component="h1">
          Starting {session.template_display_name}
        </Typography>
        <Typography color="text.secondary">
          {label}
          {pct !== null ? ` · ${Math.round(pct)}%` : ''}
        </Typography>
        <LinearProgress
          aria-label={`Start progress: ${label}`}
          variant={pct !== null ? 'determinate' : 'indeterminate'}
          value={pct ?? undefined}
        />
      </Stack>
    </Screen>
  );
}

function RunningView({ session }: { session: Session }) {
  const [attempt, setAttempt] = useState(0);
  const generation = `${session.started_at ?? 'running'}#${attempt}`;
  const connect = useQuery(getConnectQueryOptions(session.id, generation));
  if (connect.isPending) {
    return (
      <Screen>
        <Stack spacing={2} sx={{ alignItems: 'center' }} role="status">
          <CircularProgress aria-hidden />
          <Typography>Connecting to {session.template_display_name}…</Typography>
        </Stack>
      </Screen>
    );
  }
  if (connect.isError) {
    return (
      <Screen>
        <ErrorAlert error={connect.error} title="Could not connect" />
        <Button variant="contained" onClick={() => setAttempt((a) => a + 1)}>
          Try again
        </Button>
      </Screen>
    );
  }
  return (
    <>
      {connect.data.role === 'viewer' ? (
        <Alert severity="info" sx={{ borderRadius: 0, py: 0 }}>
          You are watching: {session.owner_username} shared this session view-only.
        </Alert>
      ) : null}
      <Box
        component="iframe"
        title={`${session.template_display_name} session`}
        src={connect.data.url}
        sandbox={sessionIframeSandbox(connect.data.policy)}
        allow={sessionIframeAllow(connect.data.policy)}
        allowFullScreen
        // A framed page without a background of its own is transparent: white behind it, as in a tab.
        sx={{ flex: 1, width: '100%', border: 0, display: 'block', bgcolor: '#fff', colorScheme: 'light' }}
      />
    </>
  );
}

export function SessionViewerPage() {
  const { id = '' } = useParams();
  const navigate = useNavigate();
  const { notify } = useFeedback();
  const session = useQuery(getSessionQueryOptions(id));
  const hibernate = useHibernateSession();
  const wake = useWakeSession();
  const stop = useStopSession();
  const relaunch = useCreateSession();
  const frameRef = useRef<HTMLDivElement>(null);
  const fullscreen = useFullscreen(frameRef);
  const s = session.data;
  const user = useUser();
  // Guests (people the session is shared with) watch or work in it; its owner and administrators run it.
  const owns = s?.owner_id === user.id;
  const runs = owns || user.role !== 'member';
  const busy = hibernate.isPending || wake.isPending || stop.isPending;

  const openInNewTab = async () => {
    // Open the tab synchronously (popup blockers), cut its opener, then point it at a fresh ticket.
    const w = window.open('', '_blank');
    if (w) w.opener = null;
    try {
      const { url } = await connectSession(id);
      if (w) w.location.href = url;
      else window.open(url, '_blank', 'noopener,noreferrer');
    } catch (e) {
      w?.close();
      notify(`Could not open a new tab: ${errorMessage(e)}`, 'error');
    }
  };

  let body: ReactNode;
  if (session.isPending) {
    body = (
      <Screen>
        <CircularProgress aria-label="Loading session" />
      </Screen>
    );
  } else if (session.isError) {
    body = (
      <Screen>
        <Alert severity="error" sx={{ textAlign: 'left', mb: 2 }}>
          <AlertTitle>{isApiError(session.error) && session.error.status === 404 ? 'Session not found' : 'Could not load the session'}</AlertTitle>
          {errorMessage(session.error)}
        </Alert>
        <Button component={RouterLink} to="/sessions">
          Back to my sessions
        </Button>
      </Screen>
    );
  } else if (!s) {
    body = null;
  } else if (STARTING_STATES.includes(s.state)) {
    body = <StartingScreen session={s} />;
  } else if (s.state === 'running') {
    body = <RunningView session={s} />;
  } else if (s.state === 'hibernating') {
    body = (
      <Screen>
        <Stack spacing={2} sx={{ alignItems: 'center' }} role="status">
          <CircularProgress aria-hidden />
          <Typography>Hibernating {s.template_display_name}…</Typography>
        </Stack>
      </Screen>
    );
  } else if (s.state === 'hibernated') {
    body = (
      <Screen>
        <Stack spacing={2} sx={{ alignItems: 'center' }}>
          <Typography variant="h2" component="h1">
            {s.template_display_name} is hibernated
          </Typography>
          <Typography color="text.secondary">Its state is kept. Wake it to continue where you left off.</Typography>
          <Button
            variant="contained"
            size="large"
            startIcon={<WbSunnyIcon />}
            disabled={wake.isPending}
            onClick={() => wake.mutate(id, { onError: (e) => notify(`Could not wake: ${errorMessage(e)}`, 'error') })}
          >
            {wake.isPending ? 'Waking…' : 'Wake'}
          </Button>
        </Stack>
      </Screen>
    );
  } else if (s.state === 'failed') {
    body = (
      <Screen>
        <Alert severity="error" sx={{ textAlign: 'left', mb: 2 }}>
          <AlertTitle>{s.template_display_name} failed</AlertTitle>
          {s.failure_reason ?? 'The session failed for an unknown reason.'}
        </Alert>
        <Stack direction="row" spacing={1} sx={{ justifyContent: 'center' }}>
          <Button
            variant="contained"
            disabled={relaunch.isPending}
            onClick={() =>
              relaunch.mutate(s.template_id, {
                onSuccess: (n) => {
                  if (n) void navigate(`/sessions/${encodeURIComponent(n.id)}`, { replace: true });
                },
                onError: (e) => notify(`Could not launch: ${errorMessage(e)}`, 'error'),
              })
            }
          >
            Launch again
          </Button>
          <Button component={RouterLink} to="/">
            Back to catalog
          </Button>
        </Stack>
      </Screen>
    );
  } else {
    body = (
      <Screen>
        <Stack spacing={2} sx={{ alignItems: 'center' }} role="status">
          <Typography variant="h2" component="h1">
            {s.state === 'stopping' ? `Stopping ${s.template_display_name}…` : `${s.template_display_name} has ended`}
          </Typography>
          <Stack direction="row" spacing={1}>
            <Button component={RouterLink} to="/" variant="contained">
              Back to catalog
            </Button>
            <Button component={RouterLink} to="/sessions">
              My sessions
            </Button>
          </Stack>
        </Stack>
      </Screen>
    );
  }

  return (
    <Box ref={frameRef} sx={{ height: '100dvh', display: 'flex', flexDirection: 'column', bgcolor: 'background.default' }}>
      {!fullscreen.active ? (
        <AppBar position="static" color="default" elevation={0} sx={{ borderBottom: 1, borderColor: 'divider' }}>
          <Toolbar variant="dense" sx={{ gap: 1 }}>
            <Tooltip title="Back to my sessions">
              <IconButton component={RouterLink} to="/sessions" aria-label="Back to my sessions" edge="start">
                <ArrowBackIcon />
              </IconButton>
            </Tooltip>
            <Typography component="span" sx={{ fontWeight: 600 }} noWrap>
              {s?.template_display_name ?? 'Session'}
            </Typography>
            {s ? <SessionStateChip state={s.state} /> : null}
            <Box sx={{ flex: 1 }} />
            {s?.state === 'running' ? (
              <>
                {fullscreen.supported ? (
                  <Tooltip title="Fullscreen">
                    <IconButton aria-label="Fullscreen" onClick={() => void fullscreen.toggle()}>
                      <FullscreenIcon />
                    </IconButton>
                  </Tooltip>
                ) : null}
                <Tooltip title="Open in new tab">
                  <IconButton aria-label="Open in new tab" onClick={() => void openInNewTab()}>
                    <OpenInNewIcon />
                  </IconButton>
                </Tooltip>
                {owns ? (
                  <>
                    <WatchingChip sessionId={s.id} />
                    <ShareButton sessionId={s.id} />
                  </>
                ) : null}
                {runs ? (
                <Tooltip title="Hibernate">
                  <span>
                    <IconButton
                      aria-label="Hibernate"
                      disabled={busy}
                      onClick={() =>
                        hibernate.mutate(id, { onError: (e) => notify(`Could not hibernate: ${errorMessage(e)}`, 'error') })
                      }
                    >
                      <BedtimeIcon />
                    </IconButton>
                  </span>
                </Tooltip>
                ) : null}
              </>
            ) : null}
            {s && runs && s.state !== 'stopped' && s.state !== 'stopping' && s.state !== 'failed' ? (
              <ConfirmActionButton
                label="Stop"
                tooltip="Stop"
                icon={<StopCircleIcon />}
                disabled={busy}
                confirm={{ title: `Stop ${s.template_display_name}?`, message: STOP_WARNING, confirmLabel: 'Stop' }}
                action={() => stop.mutateAsync(id)}
                failure="Could not stop"
              />
            ) : null}
          </Toolbar>
        </AppBar>
      ) : (
        <Tooltip title="Exit fullscreen">
          <IconButton
            aria-label="Exit fullscreen"
            onClick={() => void fullscreen.toggle()}
            size="small"
            sx={{ position: 'fixed', top: 4, right: 4, zIndex: 10, bgcolor: 'background.paper', opacity: 0.6, '&:hover, &:focus-visible': { opacity: 1 } }}
          >
            <FullscreenExitIcon fontSize="small" />
          </IconButton>
        </Tooltip>
      )}
      {body}
    </Box>
  );
}
