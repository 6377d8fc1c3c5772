import { Box, Chip, LinearProgress, Typography, type ChipProps } from '@mui/material';
import type { Session, SessionState } from '@/types/api';
import { phaseLabel } from '../phase';

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
