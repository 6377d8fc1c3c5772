import { useState } from 'react';
import { Box, Button, IconButton, Menu, MenuItem, Switch, Tooltip, Typography } from '@mui/material';
import AddIcon from '@mui/icons-material/Add';
import EditIcon from '@mui/icons-material/Edit';
import KeyIcon from '@mui/icons-material/VpnKey';
import { ResourceTable, type Column } from '@/components/ResourceTable';
import { ResourceFormDialog } from '@/components/ResourceFormDialog';
import { ConfirmActionButton } from '@/components/ConfirmActionButton';
import { DetailDrawer, type DetailField } from '@/components/DetailDrawer';
import { CopyButton } from '@/components/CopyButton';
import { useFeedback } from '@/components/feedback';
import { errorMessage } from '@/lib/api';
import { useListQuery } from '@/lib/list';
import type { IdentityProvider, SsoKind } from '@/types/api';
import {
  getIdentityProvidersQueryOptions,
  useCreateIdentityProvider,
  useDeleteIdentityProvider,
  useUpdateIdentityProvider,
} from '../api/sso';
import { SSO_KIND_LABELS } from '../discover';
import { newProviderValues, providerFields, type ProviderFormValues, providerInput, providerPatch, providerValues, validateProvider } from '../providerForm';

type Editing = { kind: SsoKind; provider?: IdentityProvider };

function Copyable({ value }: { value: string }) {
  return (
    <Box sx={{ display: 'flex', alignItems: 'center', gap: 0.5 }}>
      <Box component="code" sx={{ wordBreak: 'break-all' }}>
        {value}
      </Box>
      <CopyButton text={value} />
    </Box>
  );
}

/** What the admin enters at the IdP (redirect URI, or the SP's entity ID, ACS and metadata), and the deep link. */
export function valuesForIdp(p: IdentityProvider, signInLink: string): DetailField[] {
  const entries: [string, string | null | undefined][] =
    p.kind === 'saml'
      ? [
          ['SP entity ID (audience)', p.sp_entity_id],
          ['ACS URL (reply URL)', p.acs_url],
          ['SP metadata URL', p.sp_metadata_url],
        ]
      : [['Redirect URI (callback URL)', p.redirect_uri]];
  entries.push(['Sign-in link for your users', signInLink]);
  return entries.flatMap(([label, value]) => (value ? [{ label, value: <Copyable value={value} /> }] : []));
}

/** Org settings: the organization's identity providers (single sign-on). */
export function IdentityProvidersSection({ orgId, orgName, platformAdmin }: { orgId: string; orgName: string; platformAdmin: boolean }) {
  const list = useListQuery(getIdentityProvidersQueryOptions(orgId));
  const create = useCreateIdentityProvider(orgId);
  const update = useUpdateIdentityProvider(orgId);
  const remove = useDeleteIdentityProvider(orgId);
  const { notify } = useFeedback();
  const [menuAnchor, setMenuAnchor] = useState<HTMLElement | null>(null);
  const [editing, setEditing] = useState<Editing | null>(null);
  const [shown, setShown] = useState<IdentityProvider | null>(null);
  const signInLink = `${window.location.origin}/login/${orgName}`;

  const toggle = (p: IdentityProvider, enabled: boolean) =>
    update.mutate(
      { id: p.id, patch: { enabled } },
      { onError: (e) => notify(`Could not update ${p.display_name}: ${errorMessage(e)}`, 'error') },
    );

  const columns: Column<IdentityProvider>[] = [
    {
      key: 'name',
      header: 'Provider',
      render: (p) => (
        <>
          {p.display_name}
          <Typography variant="body2" color="text.secondary" component="div">
            {p.name}
          </Typography>
        </>
      ),
    },
    { key: 'kind', header: 'Protocol', render: (p) => SSO_KIND_LABELS[p.kind] },
    { key: 'domains', header: 'Email domains', hideBelow: 'md', render: (p) => p.domains.join(', ') || '—' },
    {
      key: 'enabled',
      header: 'Enabled',
      render: (p) => (
        <Switch
          checked={p.enabled}
          onChange={(e) => toggle(p, e.target.checked)}
          slotProps={{ input: { 'aria-label': `${p.display_name} enabled` } }}
        />
      ),
    },
  ];

  const submit = async (kind: SsoKind, provider: IdentityProvider | undefined, values: ProviderFormValues) => {
    if (provider) {
      await update.mutateAsync({ id: provider.id, patch: providerPatch(kind, values) });
      notify('Identity provider saved');
    } else {
      // The values to copy into the IdP exist once the provider does: show them right away.
      setShown(await create.mutateAsync(providerInput(kind, values)));
    }
  };

  return (
    <Box component="section" aria-label="Identity providers">
      <Box sx={{ mb: 2 }}>
        <Button startIcon={<AddIcon />} variant="outlined" onClick={(e) => setMenuAnchor(e.currentTarget)}>
          Add identity provider
        </Button>
        <Menu anchorEl={menuAnchor} open={menuAnchor !== null} onClose={() => setMenuAnchor(null)}>
          {(Object.keys(SSO_KIND_LABELS) as SsoKind[]).map((kind) => (
            <MenuItem
              key={kind}
              onClick={() => {
                setMenuAnchor(null);
                setEditing({ kind });
              }}
            >
              {SSO_KIND_LABELS[kind]}
            </MenuItem>
          ))}
        </Menu>
      </Box>
      <ResourceTable
        label="Identity providers"
        columns={columns}
        list={list}
        getRowId={(p) => p.id}
        emptyMessage="No identity provider: users sign in with their StreamSpace password."
        rowActions={(p) => (
          <>
            <Tooltip title="Values for the identity provider">
              <IconButton aria-label={`Values for ${p.display_name}`} onClick={() => setShown(p)}>
                <KeyIcon />
              </IconButton>
            </Tooltip>
            <Tooltip title="Edit">
              <IconButton aria-label={`Edit ${p.display_name}`} onClick={() => setEditing({ kind: p.kind, provider: p })}>
                <EditIcon />
              </IconButton>
            </Tooltip>
            <ConfirmActionButton
              label={`Delete ${p.display_name}`}
              tooltip="Delete"
              confirm={{
                title: `Delete the identity provider “${p.display_name}”?`,
                message: 'Its users can no longer sign in with it; their accounts and linked password sign-ins stay.',
                confirmLabel: 'Delete',
              }}
              action={() => remove.mutateAsync(p.id)}
              success="Identity provider deleted"
            />
          </>
        )}
      />
      {editing ? (
        <ResourceFormDialog
          open
          title={`${editing.provider ? 'Edit' : 'Add'} ${SSO_KIND_LABELS[editing.kind]} provider`}
          submitLabel={editing.provider ? 'Save' : 'Add'}
          description={editing.provider ? undefined : 'Once added, the values to enter at the identity provider are shown.'}
          fields={providerFields(editing.kind, { hasSecret: editing.provider?.has_client_secret ?? false, platformAdmin })}
          initialValues={editing.provider ? providerValues(editing.provider) : newProviderValues(editing.kind)}
          validate={(v) => validateProvider(editing.kind, v)}
          onSubmit={(v) => submit(editing.kind, editing.provider, v)}
          onClose={() => setEditing(null)}
        />
      ) : null}
      <DetailDrawer
        open={shown !== null}
        title={shown ? `${shown.display_name}: values for the identity provider` : ''}
        fields={shown ? valuesForIdp(shown, signInLink) : []}
        onClose={() => setShown(null)}
      />
    </Box>
  );
}
