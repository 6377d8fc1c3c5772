import { useState } from 'react';
import { Box, Button, Chip, IconButton, Tooltip, Typography } from '@mui/material';
import AddIcon from '@mui/icons-material/Add';
import InfoOutlinedIcon from '@mui/icons-material/InfoOutlined';
import KeyIcon from '@mui/icons-material/Key';
import { ResourceListView } from '@/components/ResourceListView';
import { ResourceFormDialog } from '@/components/ResourceFormDialog';
import { OneTimeSecretDialog } from '@/components/OneTimeSecretDialog';
import { DetailDrawer } from '@/components/DetailDrawer';
import type { Column } from '@/components/ResourceTable';
import { ConfirmActionButton } from '@/components/ConfirmActionButton';
import { ageSeconds, formatDateTime, formatDuration, formatMemory, formatMillicores } from '@/lib/format';
import { useNow } from '@/lib/hooks';
import { parseLabels } from '@/lib/labels';
import { useListQuery } from '@/lib/list';
import type { Agent } from '@/types/api';
import { getAgentsQueryOptions, useCreateAgent, useDeleteAgent, useRotateAgentToken } from '../api/agents';

/** Agents report capacity when they connect; 0 means "not stated" (never connected, or no limit given). */
function capacityText(a: Agent): string {
  const parts = [
    a.capacity.cpu_millis > 0 ? formatMillicores(a.capacity.cpu_millis) : null,
    a.capacity.memory_mb > 0 ? formatMemory(a.capacity.memory_mb) : null,
  ].filter((p) => p !== null);
  return parts.length ? parts.join(', ') : '—';
}

function sessionsText(a: Agent): string {
  return a.capacity.max_sessions > 0 ? `${a.session_count} / ${a.capacity.max_sessions}` : String(a.session_count);
}

export function AgentStatusChip({ agent }: { agent: Agent }) {
  return (
    <Chip
      size="small"
      label={agent.status}
      color={agent.status === 'online' ? 'success' : 'default'}
      variant={agent.status === 'online' ? 'filled' : 'outlined'}
    />
  );
}

function Labels({ labels }: { labels: Record<string, string> }) {
  const entries = Object.entries(labels);
  if (entries.length === 0) return <>—</>;
  return (
    <Box sx={{ display: 'flex', flexWrap: 'wrap', gap: 0.5 }}>
      {entries.map(([k, v]) => (
        <Chip key={k} size="small" variant="outlined" label={`${k}=${v}`} />
      ))}
    </Box>
  );
}

export function AgentsPage() {
  const list = useListQuery(getAgentsQueryOptions());
  const create = useCreateAgent();
  const del = useDeleteAgent();
  const rotate = useRotateAgentToken();
  const now = useNow(2000);
  const [creating, setCreating] = useState(false);
  const [token, setToken] = useState<{ agent: string; token: string; rotated: boolean } | null>(null);
  const [detail, setDetail] = useState<Agent | null>(null);
  // Keep the drawer live: show the cached copy of the selected agent.
  const shown = detail ? (list.items?.find((a) => a.id === detail.id) ?? detail) : null;

  const columns: Column<Agent>[] = [
    {
      key: 'name',
      header: 'Name',
      render: (a) => (
        <>
          <Typography variant="body2" sx={{ fontWeight: 600 }}>
            {a.name}
          </Typography>
          <Typography variant="caption" color="text.secondary">
            {a.platform} {a.version ? `· ${a.version}` : ''}
          </Typography>
        </>
      ),
    },
    { key: 'status', header: 'Status', render: (a) => <AgentStatusChip agent={a} /> },
    {
      key: 'heartbeat',
      header: 'Last heartbeat',
      render: (a) => {
        const age = ageSeconds(a.last_heartbeat_at, now);
        return age === null ? 'never' : `${formatDuration(age)} ago`;
      },
    },
    {
      key: 'sessions',
      header: 'Sessions',
      align: 'right',
      render: sessionsText,
    },
    {
      key: 'capacity',
      header: 'Capacity',
      hideBelow: 'md',
      render: capacityText,
    },
    { key: 'labels', header: 'Labels', hideBelow: 'lg', render: (a) => <Labels labels={a.labels} /> },
  ];

  return (
    <ResourceListView
      title="Agents"
      subtitle="Hosts and clusters that run sessions. Status updates live."
      actions={
        <Button variant="contained" startIcon={<AddIcon />} onClick={() => setCreating(true)}>
          Add agent
        </Button>
      }
      columns={columns}
      list={list}
      getRowId={(a) => a.id}
      emptyMessage="No agents yet. Add one, then start it with its token."
      rowActions={(a) => (
        <>
          <Tooltip title="Details">
            <IconButton aria-label={`Details of agent ${a.name}`} onClick={() => setDetail(a)}>
              <InfoOutlinedIcon />
            </IconButton>
          </Tooltip>
          <ConfirmActionButton
            label={`New token for agent ${a.name}`}
            tooltip="New token"
            icon={<KeyIcon />}
            disabled={rotate.isPending}
            confirm={{
              title: `Give agent ${a.name} a new token?`,
              message: 'The current token stops working at once and the agent is disconnected. Restart it with the new token.',
              confirmLabel: 'New token',
            }}
            action={async () => {
              const r = await rotate.mutateAsync(a.id);
              setToken({ agent: a.name, token: r.token, rotated: true });
            }}
          />
          <ConfirmActionButton
            label={`Delete agent ${a.name}`}
            tooltip="Revoke and delete"
            confirm={{
              title: `Delete agent ${a.name}?`,
              message:
                a.session_count > 0
                  ? `Its token is revoked and it is disconnected. Its ${a.session_count} session(s) fail: nothing runs or stops them any more.`
                  : 'Its token is revoked and it is disconnected.',
              confirmLabel: 'Delete',
            }}
            action={() => del.mutateAsync(a.id)}
            success={`Agent ${a.name} deleted`}
          />
        </>
      )}
    >
      <ResourceFormDialog
        open={creating}
        title="Add agent"
        submitLabel="Create"
        fields={[
          { name: 'name', label: 'Name', required: true, helperText: 'e.g. docker-host-1' },
          {
            name: 'platform',
            label: 'Platform',
            kind: 'select',
            options: [
              { value: 'docker', label: 'Docker' },
              { value: 'kubernetes', label: 'Kubernetes' },
            ],
          },
          { name: 'labels', label: 'Labels', kind: 'multiline', rows: 2, helperText: 'key=value, one per line (optional)' },
        ]}
        initialValues={{ name: '', platform: 'docker', labels: '' }}
        validate={(v) => {
          const { error } = parseLabels(v.labels);
          return error ? { labels: error } : {};
        }}
        onSubmit={async (v) => {
          const created = await create.mutateAsync({
            name: v.name.trim(),
            platform: v.platform === 'kubernetes' ? 'kubernetes' : 'docker',
            labels: parseLabels(v.labels).labels,
          });
          setToken({ agent: created.name, token: created.token, rotated: false });
        }}
        onClose={() => setCreating(false)}
      />
      <OneTimeSecretDialog
        open={token !== null}
        title={token?.rotated ? `New token for ${token.agent}` : 'Agent token'}
        description={`Start the agent with this token (streamspace agent docker --server <URL> --token <token>). It is shown only once; give the agent a new token if it is lost.`}
        secret={token?.token ?? null}
        onClose={() => setToken(null)}
      />
      <DetailDrawer
        open={shown !== null}
        title={shown ? `Agent ${shown.name}` : 'Agent'}
        onClose={() => setDetail(null)}
        fields={
          shown
            ? [
                { label: 'ID', value: <code>{shown.id}</code> },
                { label: 'Status', value: <AgentStatusChip agent={shown} /> },
                { label: 'Platform', value: shown.platform },
                { label: 'Version', value: shown.version ?? '—' },
                { label: 'Last heartbeat', value: formatDateTime(shown.last_heartbeat_at) },
                { label: 'Sessions', value: sessionsText(shown) },
                { label: 'CPU', value: shown.capacity.cpu_millis > 0 ? formatMillicores(shown.capacity.cpu_millis) : '—' },
                { label: 'Memory', value: shown.capacity.memory_mb > 0 ? formatMemory(shown.capacity.memory_mb) : '—' },
                { label: 'Labels', value: <Labels labels={shown.labels} /> },
                { label: 'Reported labels', value: <Labels labels={shown.reported_labels} /> },
                { label: 'Endpoint networks', value: shown.endpoint_cidrs.length ? shown.endpoint_cidrs.join(', ') : 'any allowed address' },
                { label: 'Created', value: formatDateTime(shown.created_at) },
              ]
            : []
        }
      />
    </ResourceListView>
  );
}
