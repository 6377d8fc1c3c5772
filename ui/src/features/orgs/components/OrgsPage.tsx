import { useState } from 'react';
import { Link as RouterLink } from 'react-router';
import { Button, IconButton, Tooltip } from '@mui/material';
import AddIcon from '@mui/icons-material/Add';
import EditIcon from '@mui/icons-material/Edit';
import TuneIcon from '@mui/icons-material/Tune';
import { ResourceListView } from '@/components/ResourceListView';
import { ResourceFormDialog } from '@/components/ResourceFormDialog';
import type { Column } from '@/components/ResourceTable';
import { ConfirmActionButton } from '@/components/ConfirmActionButton';
import { useFeedback } from '@/components/feedback';
import { formatDateTime, formatMemory, formatMillicores } from '@/lib/format';
import { useListQuery } from '@/lib/list';
import type { Organization } from '@/types/api';
import { getOrgsQueryOptions, useCreateOrg, useDeleteOrg, useUpdateOrg } from '../api/orgs';

/** The API's rule for organization names (a slug). */
const ORG_NAME_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

function quota(n: number | null | undefined) {
  return n === null ? '∞' : String(n);
}

export function OrgsPage() {
  const list = useListQuery(getOrgsQueryOptions());
  const create = useCreateOrg();
  const update = useUpdateOrg();
  const del = useDeleteOrg();
  const { notify } = useFeedback();
  const [creating, setCreating] = useState(false);
  const [renaming, setRenaming] = useState<Organization | null>(null);

  const validate = (v: { name: string }) => ({
    name: ORG_NAME_RE.test(v.name)
      ? undefined
      : 'Lowercase letters, digits and dashes; starts with a letter or digit; at most 63 characters',
  });

  const columns: Column<Organization>[] = [
    { key: 'name', header: 'Name', render: (o) => o.name },
    { key: 'mfa', header: 'MFA required', render: (o) => (o.mfa_required ? 'yes' : 'no') },
    {
      key: 'quotas',
      header: 'Quotas (sessions / per user / CPU / memory)',
      hideBelow: 'md',
      render: (o) =>
        `${quota(o.max_sessions)} / ${quota(o.max_sessions_per_user)} / ${formatMillicores(o.max_cpu_millis)} / ${formatMemory(o.max_memory_mb)}`,
    },
    { key: 'created', header: 'Created', hideBelow: 'sm', render: (o) => formatDateTime(o.created_at) },
  ];

  return (
    <ResourceListView
      title="Organizations"
      actions={
        <Button variant="contained" startIcon={<AddIcon />} onClick={() => setCreating(true)}>
          Add organization
        </Button>
      }
      columns={columns}
      list={list}
      getRowId={(o) => o.id}
      rowActions={(o) => (
        <>
          <Tooltip title="Settings and quotas">
            <IconButton component={RouterLink} to={`/admin/settings?org=${encodeURIComponent(o.id)}`} aria-label={`Settings of ${o.name}`}>
              <TuneIcon />
            </IconButton>
          </Tooltip>
          <Tooltip title="Rename">
            <IconButton aria-label={`Rename ${o.name}`} onClick={() => setRenaming(o)}>
              <EditIcon />
            </IconButton>
          </Tooltip>
          <ConfirmActionButton
            label={`Delete ${o.name}`}
            tooltip="Delete"
            confirm={{
              title: `Delete organization ${o.name}?`,
              message: 'Only an organization without users can be deleted. This cannot be undone.',
              confirmLabel: 'Delete',
            }}
            action={() => del.mutateAsync(o.id)}
            success={`Organization ${o.name} deleted`}
          />
        </>
      )}
    >
      <ResourceFormDialog
        open={creating}
        title="Add organization"
        submitLabel="Create"
        fields={[{ name: 'name', label: 'Name', required: true, helperText: 'e.g. engineering' }]}
        initialValues={{ name: '' }}
        validate={validate}
        onSubmit={async (v) => {
          await create.mutateAsync({ name: v.name });
          notify(`Organization ${v.name} created`);
        }}
        onClose={() => setCreating(false)}
      />
      <ResourceFormDialog
        open={renaming !== null}
        title={renaming ? `Rename ${renaming.name}` : 'Rename'}
        submitLabel="Rename"
        fields={[{ name: 'name', label: 'Name', required: true }]}
        initialValues={{ name: renaming?.name ?? '' }}
        validate={validate}
        onSubmit={async (v) => {
          if (renaming) await update.mutateAsync({ id: renaming.id, patch: { name: v.name } });
        }}
        onClose={() => setRenaming(null)}
      />
    </ResourceListView>
  );
}
