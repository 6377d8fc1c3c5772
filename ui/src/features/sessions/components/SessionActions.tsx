import { Button, IconButton, Tooltip } from '@mui/material';
import { Link as RouterLink } from 'react-router';
import OpenInBrowserIcon from '@mui/icons-material/OpenInBrowser';
import BedtimeIcon from '@mui/icons-material/Bedtime';
import WbSunnyIcon from '@mui/icons-material/WbSunny';
import StopCircleIcon from '@mui/icons-material/StopCircle';
import { useFeedback } from '@/components/feedback';
import { errorMessage } from '@/lib/api';
import type { Session } from '@/types/api';
import { useHibernateSession, useStopSession, useWakeSession } from '../api/sessions';

const STOPPABLE = new Set<Session['state']>(['pending', 'scheduled', 'starting', 'running', 'hibernating', 'hibernated']);

/** Row actions for a session: connect, hibernate, wake, stop. */
export function SessionActions({ session, force = false }: { session: Session; force?: boolean }) {
  const { confirm, notify } = useFeedback();
  const hibernate = useHibernateSession();
  const wake = useWakeSession();
  const stop = useStopSession();
  const busy = hibernate.isPending || wake.isPending || stop.isPending;
  const name = session.template_display_name;
  const onError = (what: string) => (e: unknown) => notify(`Could not ${what} ${name}: ${errorMessage(e)}`, 'error');

  const doStop = async () => {
    const ok = await confirm({
      title: force ? `Force stop ${name} of ${session.owner_username}?` : `Stop ${name}?`,
      message: 'The session is stopped and removed. Unsaved work inside it is lost.',
      confirmLabel: force ? 'Force stop' : 'Stop',
      destructive: true,
    });
    if (ok) stop.mutate(session.id, { onError: onError('stop'), onSuccess: () => notify(`Stopping ${name}`) });
  };

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
        <Tooltip title={force ? 'Force stop' : 'Stop'}>
          <span>
            <IconButton aria-label={`${force ? 'Force stop' : 'Stop'} ${name}`} disabled={busy} onClick={() => void doStop()} color="error">
              <StopCircleIcon />
            </IconButton>
          </span>
        </Tooltip>
      ) : null}
    </>
  );
}
