import { useState } from 'react';
import { Box, Button } from '@mui/material';
import AddIcon from '@mui/icons-material/Add';
import { ResourceTable, type Column } from '@/components/ResourceTable';
import { ResourceFormDialog } from '@/components/ResourceFormDialog';
import { OneTimeSecretDialog } from '@/components/OneTimeSecretDialog';
import { ConfirmActionButton } from '@/components/ConfirmActionButton';
import { formatDateTime, formatRelative } from '@/lib/format';
import { useListQuery } from '@/lib/list';
import type { ApiKey } from '@/types/api';
import { getApiKeysQueryOptions, useCreateApiKey, useRevokeApiKey } from '../api/account';

export function ApiKeysSection() {
  const list = useListQuery(getApiKeysQueryOptions());
  const create = useCreateApiKey();
  const revoke = useRevokeApiKey();
  const [creating, setCreating] = useState(false);
  const [newKey, setNewKey] = useState<string | null>(null);

  const columns: Column<ApiKey>[] = [
    { key: 'name', header: 'Name', render: (k) => k.name },
    { key: 'prefix', header: 'Key', render: (k) => <code>{k.prefix}…</code> },
    { key: 'created', header: 'Created', hideBelow: 'sm', render: (k) => formatDateTime(k.created_at) },
    { key: 'used', header: 'Last used', hideBelow: 'md', render: (k) => (k.last_used_at ? formatRelative(k.last_used_at) : 'never') },
    { key: 'expires', header: 'Expires', hideBelow: 'md', render: (k) => (k.expires_at ? formatDateTime(k.expires_at) : 'never') },
    {
      key: 'mfa',
      header: 'Two-factor',
      hideBelow: 'md',
      // An org that requires MFA refuses keys created by a sign-in without a second factor.
      render: (k) => (k.mfa ? 'yes' : 'no'),
    },
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
          <ConfirmActionButton
            label={`Revoke API key ${k.name}`}
            tooltip="Revoke"
            confirm={{
              title: `Revoke the API key “${k.name}”?`,
              message: 'Scripts that use it stop working at once.',
              confirmLabel: 'Revoke',
            }}
            action={() => revoke.mutateAsync(k.id)}
            success="API key revoked"
          />
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
