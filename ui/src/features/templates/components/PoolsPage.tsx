import { useQuery } from '@tanstack/react-query';
import { Box, Typography } from '@mui/material';
import { ResourceListView } from '@/components/ResourceListView';
import type { Column } from '@/components/ResourceTable';
import { useUser } from '@/lib/auth';
import { useArrayQuery } from '@/lib/list';
import type { Pool, PoolAgent, Template } from '@/types/api';
import { getAgentsQueryOptions } from '@/features/agents';
import { POOLS_REFRESH_MS, activePools, describePoolSize, getPoolsQueryOptions, pausedBecause } from '../api/pools';
import { getTemplatesQueryOptions } from '../api/templates';
import { TemplateLabel } from './TemplateLabel';

const total = (pool: Pool, count: (a: PoolAgent) => number) => pool.agents.reduce((n, a) => n + count(a), 0);

/** Administrators' view of the warm pools: each template's size and what is warm on which agent, kept fresh. */
export function PoolsPage() {
  const isPlatform = useUser().role === 'platform_admin';
  const list = useArrayQuery({ ...getPoolsQueryOptions(), select: activePools, refetchInterval: POOLS_REFRESH_MS });
  const templates = useQuery(getTemplatesQueryOptions());
  // Only platform administrators may list agents; others see the agents' ids.
  const agents = useQuery({ ...getAgentsQueryOptions(), enabled: isPlatform });

  const templateOf = (pool: Pool): Template | undefined => templates.data?.items.find((t) => t.id === pool.template_id);
  const pausedOf = (pool: Pool): string | null => {
    const template = templateOf(pool);
    return pool.size > 0 && template ? pausedBecause(template) : null;
  };
  const agentName = (id: string) => agents.data?.items.find((a) => a.id === id)?.name ?? `Agent ${id.slice(0, 8)}`;

  const columns: Column<Pool>[] = [
    {
      key: 'template',
      header: 'Template',
      render: (pool) => (
        <TemplateLabel template={templateOf(pool) ?? { icon: '', display_name: pool.template_name, name: pool.template_name }} />
      ),
    },
    { key: 'size', header: 'Size', render: (pool) => <PoolSize size={pool.size} paused={pausedOf(pool)} /> },
    { key: 'ready', header: 'Ready', align: 'right', render: (pool) => total(pool, (a) => a.ready) },
    { key: 'starting', header: 'Starting', align: 'right', render: (pool) => total(pool, (a) => a.starting) },
    {
      key: 'agents',
      header: 'Per agent',
      render: (pool) =>
        pool.agents.length === 0 ? (
          <Typography variant="body2" color="text.secondary">
            {pausedOf(pool) ? 'Nothing warm' : 'Nothing warm yet'}
          </Typography>
        ) : (
          <Box component="ul" sx={{ m: 0, pl: 0, listStyle: 'none' }} aria-label={`Agents of ${pool.template_name}`}>
            {pool.agents.map((a) => (
              <li key={a.agent_id}>
                <Typography variant="body2">
                  {agentName(a.agent_id)}: {a.ready} ready, {a.starting} starting
                </Typography>
              </li>
            ))}
          </Box>
        ),
    },
  ];

  return (
    <ResourceListView
      title="Warm pools"
      subtitle={`Containers started ahead of demand, so a launch finds one ready. Refreshed every ${POOLS_REFRESH_MS / 1000} seconds; set a template's size on the Templates page.`}
      columns={columns}
      list={list}
      getRowId={(pool) => pool.template_id}
      emptyMessage="No template has a warm pool."
    />
  );
}

function PoolSize({ size, paused }: { size: number; paused: string | null }) {
  return (
    <>
      {describePoolSize(size)}
      {paused ? (
        <Typography variant="caption" color="text.secondary" sx={{ display: 'block' }}>
          Paused: {paused}
        </Typography>
      ) : null}
    </>
  );
}
