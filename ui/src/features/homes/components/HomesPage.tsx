import { useQuery } from '@tanstack/react-query';
import { ResourceListView } from '@/components/ResourceListView';
import type { Column } from '@/components/ResourceTable';
import { ConfirmActionButton } from '@/components/ConfirmActionButton';
import { formatDateTime, formatRelative } from '@/lib/format';
import { useListQuery } from '@/lib/list';
import type { Home } from '@/types/api';
import { HomeUsageCell } from '@/features/account';
import { getTemplatesQueryOptions } from '@/features/templates';
import { getAllUsersQueryOptions } from '@/features/users';
import { getAllHomesQueryOptions, useDeleteHome } from '../api/homes';

/** Administrators' view of the persistent homes: whose, how full, and a delete for each. */
export function HomesPage() {
  const list = useListQuery(getAllHomesQueryOptions());
  const users = useQuery(getAllUsersQueryOptions());
  const templates = useQuery(getTemplatesQueryOptions());
  const del = useDeleteHome();
  const owner = (h: Home) => users.data?.items.find((u) => u.id === h.user_id)?.username ?? 'a deleted user';
  const scope = (h: Home) =>
    h.template_id ? `${templates.data?.items.find((t) => t.id === h.template_id)?.display_name ?? 'a template'} only` : 'Shared by applications';

  const columns: Column<Home>[] = [
    { key: 'owner', header: 'User', render: owner },
    { key: 'scope', header: 'Home', hideBelow: 'sm', render: scope },
    { key: 'usage', header: 'Used', render: (h) => <HomeUsageCell home={h} /> },
    { key: 'size', header: 'Size limit', hideBelow: 'sm', render: (h) => (h.size_mb ? `${h.size_mb} MiB` : 'none') },
    { key: 'used', header: 'Last used', hideBelow: 'md', render: (h) => (h.last_used_at ? formatRelative(h.last_used_at) : 'never') },
    {
      key: 'deleted',
      header: 'Deletion due',
      hideBelow: 'md',
      render: (h) => (h.delete_after ? formatDateTime(h.delete_after) : ''),
    },
  ];

  return (
    <ResourceListView
      title="Homes"
      subtitle="Persistent homes keep their users' files between sessions. Their used space is measured by the agent that holds them, about once a minute."
      columns={columns}
      list={list}
      getRowId={(h) => h.id}
      emptyMessage="No homes yet."
      rowActions={(h) => (
        <ConfirmActionButton
          label={`Delete the home of ${owner(h)}`}
          tooltip="Delete"
          confirm={{
            title: 'Delete this home?',
            message: 'Everything in it is deleted. Sessions that mount it must be stopped first.',
            confirmLabel: 'Delete',
          }}
          action={() => del.mutateAsync(h.id)}
          success="Home deleted"
        />
      )}
    />
  );
}
