import type { Session, SessionPhase } from '@/types/api';

/** What people read for each phase the server reports while a session starts. */
export const PHASE_LABELS: Record<SessionPhase, string> = {
  scheduling: 'Finding a host',
  pulling: 'Pulling image',
  creating: 'Creating container',
  starting: 'Starting the app',
};

/** The start progress of a session in words: its phase, or its state before the agent reports one. */
export function phaseLabel(session: Pick<Session, 'state' | 'phase'>): string {
  if (session.phase) return PHASE_LABELS[session.phase];
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
