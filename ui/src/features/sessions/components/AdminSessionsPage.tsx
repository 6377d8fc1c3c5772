import { useMemo, useState } from 'react';
import { useSearchParams } from 'react-router';
import { useQuery } from '@tanstack/react-query';
import { Autocomplete, IconButton, MenuItem, TextField, Tooltip, Typography } from '@mui/material';
import InfoOutlinedIcon from '@mui/icons-material/InfoOutlined';
import { ResourceListView } from '@/components/ResourceListView';
import { DetailDrawer } from '@/components/DetailDrawer';
import type { Column } from '@/components/ResourceTable';
import { formatDateTime, formatRelative } from '@/lib/format';
import { useNow } from '@/lib/hooks';
import { useListQuery } from '@/lib/list';
import { SESSION_STATES, type Session, type SessionState } from '@/types/api';
import { getAllUsersQueryOptions } from '@/features/users';
import { getAgentsQueryOptions } from '@/features/agents';
import { STARTING_STATES, getSessionsQueryOptions } from '../api/sessions';
import { SessionActions } from './SessionActions';
import { PHASE_LABELS } from '../phase';
import { SessionProgress, SessionStateChip } from './SessionStatus';

function isState(v: string | null): v is SessionState {
  return v !== null && (SESSION_STATES as readonly string[]).includes(v);
}

export function AdminSessionsPage() {
  const [params, setParams] = useSearchParams();
  const rawState = params.get('state');
  const state: SessionState | '' = isState(rawState) ? rawState : '';
  const ownerId = params.get('owner') ?? '';
  const list = useListQuery(getSessionsQueryOptions({ state, owner_id: ownerId || undefined }));
  const users = useQuery(getAllUsersQueryOptions());
  const agents = useQuery(getAgentsQueryOptions());
  const now = useNow(15_000);
  const [detail, setDetail] = useState<Session | null>(null);
  const shown = detail ? (list.items?.find((s) => s.id === detail.id) ?? detail) : null;

  const agentName = useMemo(() => {
    const m = new Map(agents.data?.items.map((a) => [a.id, a.name]));
    return (id: string | null | undefined) => (id ? (m.get(id) ?? `…${id.slice(-8)}`) : '—');
  }, [agents.data]);
  const userOptions = users.data?.items ?? [];
  const selectedUser = userOptions.find((u) => u.id === ownerId) ?? null;

  const setFilter = (key: string, value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(key, value);
    else next.delete(key);
    setParams(next, { replace: true });
  };

  const columns: Column<Session>[] = [
    { key: 'template', header: 'Application', render: (s) => s.template_display_name },
    { key: 'owner', header: 'User', render: (s) => s.owner_username },
    {
      key: 'state',
      header: 'State',
      render: (s) =>
        STARTING_STATES.includes(s.state) ? (
          <SessionProgress session={s} />
        ) : (
          <>
            <SessionStateChip state={s.state} />
            {s.state === 'failed' && s.failure_reason ? (
              <Typography variant="caption" color="error" component="div">
                {s.failure_reason}
              </Typography>
            ) : null}
          </>
        ),
    },
    { key: 'agent', header: 'Agent', hideBelow: 'md', render: (s) => agentName(s.agent_id) },
    { key: 'created', header: 'Created', hideBelow: 'sm', render: (s) => formatRelative(s.created_at, now) },
  ];

  return (
    <ResourceListView
      title="All sessions"
      subtitle="Every session in your scope. Live."
      filters={
        <>
          <TextField
            select
            label="State"
            slotProps={{ inputLabel: { shrink: true }, select: { displayEmpty: true } }}
            value={state}
            onChange={(e) => setFilter('state', e.target.value)}
            sx={{ minWidth: 180 }}
            size="small"
          >
            <MenuItem value="">Any state</MenuItem>
            {SESSION_STATES.map((s) => (
              <MenuItem key={s} value={s}>
                {s}
              </MenuItem>
            ))}
          </TextField>
          <Autocomplete
            options={userOptions}
            value={selectedUser}
            loading={users.isPending}
            getOptionLabel={(u) => u.username}
            isOptionEqualToValue={(a, b) => a.id === b.id}
            onChange={(_e, u) => setFilter('owner', u?.id ?? '')}
            sx={{ minWidth: 240 }}
            size="small"
            renderInput={(p) => <TextField {...p} label="User" />}
          />
        </>
      }
      columns={columns}
      list={list}
      getRowId={(s) => s.id}
      emptyMessage="No sessions match."
      rowActions={(s) => (
        <>
          <Tooltip title="Details">
            <IconButton aria-label={`Details of session ${s.template_display_name} of ${s.owner_username}`} onClick={() => setDetail(s)}>
              <InfoOutlinedIcon />
            </IconButton>
          </Tooltip>
          <SessionActions session={s} force />
        </>
      )}
    >
      <DetailDrawer
        open={shown !== null}
        title={shown ? `Session ${shown.template_display_name}` : 'Session'}
        onClose={() => setDetail(null)}
        fields={
          shown
            ? [
                { label: 'ID', value: <code>{shown.id}</code> },
                { label: 'User', value: shown.owner_username },
                { label: 'Template', value: shown.template_display_name },
                { label: 'State', value: <SessionStateChip state={shown.state} /> },
                { label: 'Phase', value: shown.phase ? PHASE_LABELS[shown.phase] : '—' },
                { label: 'Progress', value: shown.progress != null ? `${shown.progress}%` : '—' },
                { label: 'Failure', value: shown.failure_reason ?? '—' },
                { label: 'Agent', value: agentName(shown.agent_id) },
                { label: 'Created', value: formatDateTime(shown.created_at) },
                { label: 'Started', value: formatDateTime(shown.started_at) },
                { label: 'Stopped', value: formatDateTime(shown.stopped_at) },
                { label: 'Updated', value: formatDateTime(shown.updated_at) },
              ]
            : []
        }
      />
    </ResourceListView>
  );
}
