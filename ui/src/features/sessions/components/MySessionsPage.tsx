import { useMemo, useState } from 'react';
import { Button, FormControlLabel, Switch, Typography } from '@mui/material';
import { Link as RouterLink } from 'react-router';
import AddIcon from '@mui/icons-material/Add';
import { ResourceListView } from '@/components/ResourceListView';
import type { Column } from '@/components/ResourceTable';
import { useUser } from '@/lib/auth';
import { formatRelative } from '@/lib/format';
import { useNow } from '@/lib/hooks';
import { useListQuery, type ListState } from '@/lib/list';
import type { Session } from '@/types/api';
import { ACTIVE_STATES, STARTING_STATES, getSessionsQueryOptions } from '../api/sessions';
import { SharedWithMe } from '@/features/sharing';
import { SessionActions } from './SessionActions';
import { SessionProgress, SessionStateChip } from './SessionStatus';

export function MySessionsPage() {
  const user = useUser();
  const [showEnded, setShowEnded] = useState(false);
  const list = useListQuery(getSessionsQueryOptions({ owner_id: user.id }));
  const now = useNow(15_000);

  const filtered: ListState<Session> = useMemo(
    () => ({
      ...list,
      items: list.items
        ?.filter((s) => showEnded || ACTIVE_STATES.includes(s.state))
        .sort((a, b) => b.created_at.localeCompare(a.created_at)),
    }),
    [list, showEnded],
  );

  const columns: Column<Session>[] = [
    {
      key: 'template',
      header: 'Application',
      render: (s) => <Typography variant="body2" sx={{ fontWeight: 600 }}>{s.template_display_name}</Typography>,
    },
    {
      key: 'state',
      header: 'State',
      render: (s) =>
        STARTING_STATES.includes(s.state) ? (
          <SessionProgress session={s} />
        ) : s.state === 'failed' ? (
          <>
            <SessionStateChip state={s.state} />
            {s.failure_reason ? (
              <Typography variant="caption" color="error" component="div">
                {s.failure_reason}
              </Typography>
            ) : null}
          </>
        ) : (
          <SessionStateChip state={s.state} />
        ),
    },
    { key: 'created', header: 'Created', hideBelow: 'sm', render: (s) => formatRelative(s.created_at, now) },
    { key: 'updated', header: 'Last change', hideBelow: 'md', render: (s) => formatRelative(s.updated_at, now) },
  ];

  return (
    <>
    <ResourceListView
      title="My sessions"
      subtitle="Live: states update as they change."
      actions={
        <>
          <FormControlLabel
            control={<Switch checked={showEnded} onChange={(e) => setShowEnded(e.target.checked)} />}
            label="Show ended"
          />
          <Button component={RouterLink} to="/" variant="contained" startIcon={<AddIcon />}>
            New session
          </Button>
        </>
      }
      columns={columns}
      list={filtered}
      getRowId={(s) => s.id}
      rowActions={(s) => <SessionActions session={s} />}
      emptyMessage={showEnded ? 'You have no sessions.' : 'No active sessions. Launch one from the catalog.'}
    />
    <SharedWithMe />
    </>
  );
}
