import { Box, Chip, LinearProgress, Typography, type ChipProps } from '@mui/material';
import type { Session, SessionState } from '@/types/api';

const COLORS: Record<SessionState, ChipProps['color']> = {
  pending: 'default',
  scheduled: 'info',
  starting: 'info',
  running: 'success',
  hibernating: 'warning',
  hibernated: 'warning',
  stopping: 'default',
  stopped: 'default',
  failed: 'error',
};

export function SessionStateChip({ state }: { state: SessionState }) {
  return <Chip size="small" label={state} color={COLORS[state]} variant={state === 'running' ? 'filled' : 'outlined'} />;
}

const PHASE_LABELS: Record<string, string> = {
  scheduling: 'Finding a host',
  pulling_image: 'Pulling image',
  pull: 'Pulling image',
  creating: 'Creating container',
  starting: 'Starting the desktop',
  waiting_ready: 'Waiting for the app',
};

export function phaseLabel(session: Pick<Session, 'state' | 'phase'>): string {
  if (session.phase) return PHASE_LABELS[session.phase] ?? session.phase.replace(/_/g, ' ');
  switch (session.state) {
    case 'pending':
      return 'Queued';
    case 'scheduled':
      return 'Assigned to a host';
    case 'starting':
      return 'Starting';
    default:
      return session.state;
  }
}

/** Start progress: phase text plus a bar (determinate when the agent reports a percentage). */
export function SessionProgress({ session }: { session: Session }) {
  const pct = session.progress ?? null;
  const label = phaseLabel(session);
  return (
    <Box sx={{ minWidth: 160 }}>
      <Typography variant="caption" color="text.secondary" component="div">
        {label}
        {pct !== null ? ` · ${Math.round(pct)}%` : ''}
      </Typography>
      <LinearProgress
        aria-label={`Start progress: ${label}`}
        variant={pct !== null ? 'determinate' : 'indeterminate'}
        value={pct ?? undefined}
      />
    </Box>
  );
}
