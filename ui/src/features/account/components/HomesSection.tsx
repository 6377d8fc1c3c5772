import { useQuery } from '@tanstack/react-query';
import { Box, Typography } from '@mui/material';
import { ResourceTable, type Column } from '@/components/ResourceTable';
import { ConfirmActionButton } from '@/components/ConfirmActionButton';
import { formatDateTime, formatRelative } from '@/lib/format';
import { useListQuery } from '@/lib/list';
import type { Home } from '@/types/api';
import { getTemplatesQueryOptions } from '@/features/templates';
import { getHomesQueryOptions, useResetHome } from '../api/account';
import { HomeUsageCell } from './HomeUsageCell';

/** The caller's persistent homes: what their sessions keep between runs, and a reset for each. */
export function HomesSection() {
  const list = useListQuery(getHomesQueryOptions());
  const templates = useQuery(getTemplatesQueryOptions());
  const reset = useResetHome();
  const templateName = (id: string) => templates.data?.items.find((t) => t.id === id)?.display_name ?? 'a template';
  const name = (h: Home) => (h.template_id ? `${templateName(h.template_id)} only` : 'Your home (shared by applications)');

  const columns: Column<Home>[] = [
    { key: 'name', header: 'Home', render: name },
    { key: 'usage', header: 'Used', render: (h) => <HomeUsageCell home={h} /> },
    { key: 'size', header: 'Size limit', hideBelow: 'sm', render: (h) => (h.size_mb ? `${h.size_mb} MiB` : 'none') },
    { key: 'created', header: 'Created', hideBelow: 'md', render: (h) => formatDateTime(h.created_at) },
    { key: 'used', header: 'Last used', render: (h) => (h.last_used_at ? formatRelative(h.last_used_at) : 'never') },
  ];

  return (
    <Box>
      <Typography variant="body2" color="text.secondary" sx={{ mb: 2 }}>
        Applications that keep a home find your files, settings and profiles again in every session.
      </Typography>
      <ResourceTable
        label="Homes"
        columns={columns}
        list={list}
        getRowId={(h) => h.id}
        emptyMessage="No home yet: one is made the first time you launch an application that keeps one."
        rowActions={(h) => (
          <ConfirmActionButton
            label={`Reset ${name(h)}`}
            tooltip="Reset"
            confirm={{
              title: 'Reset this home?',
              message: 'Everything in it is deleted. Stop the sessions that use it first.',
              confirmLabel: 'Reset',
            }}
            action={() => reset.mutateAsync(h.id)}
            success="Home reset"
          />
        )}
      />
    </Box>
  );
}
