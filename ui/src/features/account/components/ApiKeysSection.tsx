import { useState } from 'react';
import { Box, Button, IconButton, Tooltip } from '@mui/material';
import AddIcon from '@mui/icons-material/Add';
import DeleteIcon from '@mui/icons-material/Delete';
import { ResourceTable, type Column } from '@/components/ResourceTable';
import { ResourceFormDialog } from '@/components/ResourceFormDialog';
import { OneTimeSecretDialog } from '@/components/OneTimeSecretDialog';
import { useFeedback } from '@/components/feedback';
import { errorMessage } from '@/lib/api';
import { formatDateTime, formatRelative } from '@/lib/format';
import { useListQuery } from '@/lib/list';
import type { ApiKey } from '@/types/api';
import { getApiKeysQueryOptions, useCreateApiKey, useRevokeApiKey } from '../api/account';

export function ApiKeysSection() {
  const list = useListQuery(getApiKeysQueryOptions());
  const create = useCreateApiKey();
  const revoke = useRevokeApiKey();
  const { confirm, notify } = useFeedback();
  const [creating, setCreating] = useState(false);
  const [newKey, setNewKey] = useState<string | null>(null);

  const columns: Column<ApiKey>[] = [
    { key: 'name', header: 'Name', render: (k) => k.name },
    { key: 'prefix', header: 'Key', render: (k) => <code>{k.prefix}…</code> },
    { key: 'created', header: 'Created', hideBelow: 'sm', render: (k) => formatDateTime(k.created_at) },
    { key: 'used', header: 'Last used', hideBelow: 'md', render: (k) => (k.last_used_at ? formatRelative(k.last_used_at) : 'never') },
  ];

  return (
    <Box>
      <Box sx={{ mb: 2 }}>
        <Button startIcon={<AddIcon />} variant="outlined" onClick={() => setCreating(true)}>
          Create API key
        </Button>
      </Box>
      <ResourceTable
        label="API keys"
        columns={columns}
        list={list}
        getRowId={(k) => k.id}
        emptyMessage="No API keys."
        rowActions={(k) => (
          <Tooltip title="Revoke">
            <IconButton
              aria-label={`Revoke API key ${k.name}`}
              color="error"
              onClick={async () => {
                const ok = await confirm({
                  title: `Revoke the API key “${k.name}”?`,
                  message: 'Scripts that use it stop working at once.',
                  confirmLabel: 'Revoke',
                  destructive: true,
                });
                if (ok)
                  revoke.mutate(k.id, {
                    onSuccess: () => notify('API key revoked'),
                    onError: (e) => notify(errorMessage(e), 'error'),
                  });
              }}
            >
              <DeleteIcon />
            </IconButton>
          </Tooltip>
        )}
      />
      <ResourceFormDialog
        open={creating}
        title="Create API key"
        submitLabel="Create"
        fields={[{ name: 'name', label: 'Name', required: true, helperText: 'What the key is for, e.g. “CI”' }]}
        initialValues={{ name: '' }}
        onSubmit={async (v) => {
          const created = await create.mutateAsync(v.name.trim());
          setNewKey(created.key);
        }}
        onClose={() => setCreating(false)}
      />
      <OneTimeSecretDialog open={newKey !== null} title="New API key" secret={newKey} onClose={() => setNewKey(null)} />
    </Box>
  );
}
