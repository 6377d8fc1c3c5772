import { Button, IconButton, Tooltip } from '@mui/material';
import { Link as RouterLink } from 'react-router';
import OpenInBrowserIcon from '@mui/icons-material/OpenInBrowser';
import BedtimeIcon from '@mui/icons-material/Bedtime';
import WbSunnyIcon from '@mui/icons-material/WbSunny';
import StopCircleIcon from '@mui/icons-material/StopCircle';
import { ConfirmActionButton } from '@/components/ConfirmActionButton';
import { useFeedback } from '@/components/feedback';
import { errorMessage } from '@/lib/api';
import type { Session } from '@/types/api';
import { useHibernateSession, useStopSession, useWakeSession } from '../api/sessions';

export const STOP_WARNING = 'The session is stopped and removed. Unsaved work inside it is lost.';

const STOPPABLE = new Set<Session['state']>(['pending', 'scheduled', 'starting', 'running', 'hibernating', 'hibernated']);

/** Row actions for a session: connect, hibernate, wake, stop. */
export function SessionActions({ session, force = false }: { session: Session; force?: boolean }) {
  const { notify } = useFeedback();
  const hibernate = useHibernateSession();
  const wake = useWakeSession();
  const stop = useStopSession();
  const busy = hibernate.isPending || wake.isPending || stop.isPending;
  const name = session.template_display_name;
  const stopLabel = force ? 'Force stop' : 'Stop';
  const onError = (what: string) => (e: unknown) => notify(`Could not ${what} ${name}: ${errorMessage(e)}`, 'error');

  return (
    <>
      {!force && session.state !== 'stopped' && session.state !== 'failed' && session.state !== 'stopping' ? (
        <Button
          component={RouterLink}
          to={`/sessions/${encodeURIComponent(session.id)}`}
          size="small"
          startIcon={<OpenInBrowserIcon />}
          aria-label={`${session.state === 'running' ? 'Connect to' : 'Open'} ${name}`}
          sx={{ mr: 0.5 }}
        >
          {session.state === 'running' ? 'Connect' : 'Open'}
        </Button>
      ) : null}
      {!force && session.state === 'running' ? (
        <Tooltip title="Hibernate">
          <span>
            <IconButton
              aria-label={`Hibernate ${name}`}
              disabled={busy}
              onClick={() => hibernate.mutate(session.id, { onError: onError('hibernate') })}
            >
              <BedtimeIcon />
            </IconButton>
          </span>
        </Tooltip>
      ) : null}
      {!force && session.state === 'hibernated' ? (
        <Tooltip title="Wake">
          <span>
            <IconButton aria-label={`Wake ${name}`} disabled={busy} onClick={() => wake.mutate(session.id, { onError: onError('wake') })}>
              <WbSunnyIcon />
            </IconButton>
          </span>
        </Tooltip>
      ) : null}
      {STOPPABLE.has(session.state) ? (
        <ConfirmActionButton
          label={`${stopLabel} ${name}`}
          tooltip={stopLabel}
          icon={<StopCircleIcon />}
          disabled={busy}
          confirm={{
            title: force ? `Force stop ${name} of ${session.owner_username}?` : `Stop ${name}?`,
            message: STOP_WARNING,
            confirmLabel: stopLabel,
          }}
          action={() => stop.mutateAsync(session.id)}
          success={`Stopping ${name}`}
          failure={`Could not stop ${name}`}
        />
      ) : null}
    </>
  );
}
