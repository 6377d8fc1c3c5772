import { useSearchParams } from 'react-router';
import { useQuery } from '@tanstack/react-query';
import { Alert, Box, Button, Stack, Typography } from '@mui/material';
import LinkIcon from '@mui/icons-material/Link';
import LinkOffIcon from '@mui/icons-material/LinkOff';
import { ResourceTable, type Column } from '@/components/ResourceTable';
import { ConfirmActionButton } from '@/components/ConfirmActionButton';
import { ErrorAlert } from '@/components/ErrorAlert';
import { formatDateTime } from '@/lib/format';
import { useListQuery } from '@/lib/list';
import type { LinkedIdentity } from '@/types/api';
import { getLinkedIdentitiesQueryOptions, getSsoDiscoveryQueryOptions, useStartLink, useUnlinkIdentity } from '../api/sso';
import { SSO_KIND_LABELS, ssoErrorMessage } from '../discover';

/** The outcome of a link flow, which comes back to `/account?linked=<provider>` or `?link_error=<code>`. */
function LinkOutcome() {
  const [params, setParams] = useSearchParams();
  const linked = params.get('linked');
  const linkError = params.get('link_error');
  if (!linked && !linkError) return null;
  const dismiss = () => setParams({}, { replace: true });
  return linked ? (
    <Alert severity="success" onClose={dismiss} sx={{ mb: 2 }}>
      Your account is now linked to {linked}: you can sign in with it.
    </Alert>
  ) : (
    <Alert severity="error" onClose={dismiss} sx={{ mb: 2 }}>
      Linking failed: {ssoErrorMessage(linkError ?? '')}
    </Alert>
  );
}

/** Buttons for the org's providers this account is not linked to yet. */
function LinkButtons({ orgName, linked }: { orgName: string; linked: LinkedIdentity[] | undefined }) {
  const discovery = useQuery(getSsoDiscoveryQueryOptions({ org: orgName }));
  const start = useStartLink();
  if (!linked || !discovery.data) return null;
  const linkable = discovery.data.providers.filter((p) => !linked.some((l) => l.provider_id === p.id));
  if (linkable.length === 0) return null;
  return (
    <Box>
      <ErrorAlert error={start.error} />
      <Stack direction="row" spacing={1} sx={{ flexWrap: 'wrap', mt: 2 }}>
        {linkable.map((p) => (
          <Button key={p.id} variant="outlined" startIcon={<LinkIcon />} disabled={start.isPending} onClick={() => start.mutate(p.id)}>
            Link {p.display_name}
          </Button>
        ))}
      </Stack>
    </Box>
  );
}

/** Account page: the identity providers this account signs in with; linking is always this explicit step. */
export function LinkedIdentitiesSection({ orgName }: { orgName: string }) {
  const list = useListQuery(getLinkedIdentitiesQueryOptions());
  const unlink = useUnlinkIdentity();
  const columns: Column<LinkedIdentity>[] = [
    { key: 'provider', header: 'Provider', render: (i) => i.provider_display_name },
    { key: 'kind', header: 'Protocol', hideBelow: 'md', render: (i) => SSO_KIND_LABELS[i.kind] },
    { key: 'email', header: 'Signed in as', render: (i) => i.email ?? i.subject },
    { key: 'created', header: 'Linked', hideBelow: 'sm', render: (i) => formatDateTime(i.created_at) },
  ];
  return (
    <Box>
      <LinkOutcome />
      <Typography variant="body2" color="text.secondary" sx={{ mb: 2 }}>
        Sign in through your organization&apos;s identity provider as well as with your password.
      </Typography>
      <ResourceTable
        label="Linked identities"
        columns={columns}
        list={list}
        getRowId={(i) => i.id}
        emptyMessage="No identity provider is linked."
        rowActions={(i) => (
          <ConfirmActionButton
            label={`Unlink ${i.provider_display_name}`}
            tooltip="Unlink"
            icon={<LinkOffIcon />}
            confirm={{
              title: `Unlink ${i.provider_display_name}?`,
              message: 'You can no longer sign in with it until you link it again.',
              confirmLabel: 'Unlink',
            }}
            action={() => unlink.mutateAsync(i.id)}
            success="Identity unlinked"
          />
        )}
      />
      <LinkButtons orgName={orgName} linked={list.items} />
    </Box>
  );
}
