import { useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import { Box, Button, Chip, IconButton, Switch, Tooltip } from '@mui/material';
import AddIcon from '@mui/icons-material/Add';
import EditIcon from '@mui/icons-material/Edit';
import { ResourceListView } from '@/components/ResourceListView';
import { ResourceFormDialog, type FieldSpec } from '@/components/ResourceFormDialog';
import type { Column } from '@/components/ResourceTable';
import { ConfirmActionButton } from '@/components/ConfirmActionButton';
import { useFeedback } from '@/components/feedback';
import { errorMessage } from '@/lib/api';
import { useUser } from '@/lib/auth';
import { formatMemory, formatMillicores } from '@/lib/format';
import { useListQuery } from '@/lib/list';
import type { Template } from '@/types/api';
import { getOrgsQueryOptions } from '@/features/orgs';
import { CLIPBOARD_OPTIONS, POLICY_SWITCHES } from '@/lib/sessionPolicy';
import {
  EMPTY_TEMPLATE_FORM,
  HOME_SCOPE_OPTIONS,
  type TemplateFormValues,
  formToTemplateInput,
  getTemplatesQueryOptions,
  inputFor,
  templateToForm,
  toTemplatePatch,
  useDeleteTemplate,
  useSaveTemplate,
  validateTemplate,
} from '../api/templates';
import { getPoolsQueryOptions, poolSizeOf } from '../api/pools';
import { TemplateLabel } from './TemplateLabel';
import { WarmPoolCell, WarmPoolDialog } from './WarmPool';

export function TemplatesPage() {
  const me = useUser();
  const isPlatform = me.role === 'platform_admin';
  const list = useListQuery(getTemplatesQueryOptions());
  const orgs = useQuery({ ...getOrgsQueryOptions(), enabled: isPlatform });
  const pools = useQuery(getPoolsQueryOptions());
  const save = useSaveTemplate();
  const del = useDeleteTemplate();
  const { notify } = useFeedback();
  const [editing, setEditing] = useState<Template | 'new' | null>(null);
  const [pooling, setPooling] = useState<Template | null>(null);

  // Org admins may only touch their org's templates; global ones are read-only for them.
  const canEdit = (t: Template) => isPlatform || t.org_id === me.org_id;

  const fields: FieldSpec<TemplateFormValues>[] = [
    { name: 'name', label: 'Name', required: true, half: true, helperText: 'a-z, 0-9 and -, e.g. firefox', disabled: editing !== 'new' },
    { name: 'display_name', label: 'Display name', required: true, half: true },
    { name: 'image', label: 'Image', required: true, helperText: 'e.g. ghcr.io/streamspace/firefox:1.0' },
    { name: 'description', label: 'Description', kind: 'multiline', rows: 2 },
    { name: 'icon', label: 'Icon URL', helperText: 'https://…, /path or data:image/…' },
    { name: 'cpu_millis', label: 'CPU (millicores)', kind: 'number', half: true },
    { name: 'memory_mb', label: 'Memory (MiB)', kind: 'number', half: true },
    { name: 'shm_mb', label: 'Shared memory (MiB)', kind: 'number', half: true },
    { name: 'port', label: 'Streamer port', kind: 'number', half: true },
    { name: 'tags', label: 'Tags', helperText: 'Comma-separated, e.g. browser, web' },
    { name: 'env', label: 'Environment', kind: 'multiline', rows: 3, helperText: 'KEY=value, one per line' },
    ...(isPlatform
      ? [
          {
            name: 'org_id' as const,
            label: 'Scope',
            kind: 'select' as const,
            disabled: editing !== 'new',
            options: [{ value: '', label: 'Global (all organizations)' }, ...(orgs.data?.items ?? []).map((o) => ({ value: o.id, label: o.name }))],
          },
          {
            name: 'egress_allow' as const,
            label: 'Egress allowed to',
            kind: 'multiline' as const,
            rows: 2,
            helperText: "Networks (CIDRs) the sessions may reach although the platform's deny list covers them, one per line",
          },
        ]
      : []),
    { name: 'home_scope', label: 'Persistent home', kind: 'select', half: true, options: HOME_SCOPE_OPTIONS },
    {
      name: 'home_size_mb',
      label: 'Home size limit (MiB)',
      kind: 'number',
      half: true,
      helperText: 'Empty: no limit. Enforced where the storage supports quotas',
    },
    {
      name: 'clipboard',
      label: 'Clipboard',
      kind: 'select',
      options: CLIPBOARD_OPTIONS,
      helperText: "Within the organization's policy: a template can close more, never open more",
    },
    ...POLICY_SWITCHES.map((s) => ({ name: s.key, label: s.label, kind: 'switch' as const, half: true })),
    { name: 'enabled', label: 'Enabled (shown in the catalog)', kind: 'switch' },
  ];

  const columns: Column<Template>[] = [
    {
      key: 'name',
      header: 'Template',
      render: (t) => <TemplateLabel template={t} />,
    },
    { key: 'image', header: 'Image', hideBelow: 'md', render: (t) => <code>{t.image}</code> },
    {
      key: 'resources',
      header: 'Resources',
      hideBelow: 'lg',
      render: (t) => `${formatMillicores(t.cpu_millis)}, ${formatMemory(t.memory_mb)}`,
    },
    {
      key: 'tags',
      header: 'Tags',
      hideBelow: 'lg',
      render: (t) => (
        <Box sx={{ display: 'flex', flexWrap: 'wrap', gap: 0.5 }}>
          {t.tags.map((tag) => (
            <Chip key={tag} size="small" variant="outlined" label={tag} />
          ))}
        </Box>
      ),
    },
    { key: 'scope', header: 'Scope', hideBelow: 'sm', render: (t) => (t.org_id ? 'Organization' : 'Global') },
    {
      key: 'pool',
      header: 'Warm pool',
      render: (t) => (
        <WarmPoolCell
          template={t}
          // The pools list leaves out the templates the caller does not manage: their size is unknown here.
          size={canEdit(t) ? poolSizeOf(pools.data, t.id) : undefined}
          editable={canEdit(t)}
          onEdit={() => setPooling(t)}
        />
      ),
    },
    {
      key: 'enabled',
      header: 'Enabled',
      render: (t) => (
        <Switch
          checked={t.enabled}
          disabled={!canEdit(t) || save.isPending}
          slotProps={{ input: { 'aria-label': `${t.enabled ? 'Disable' : 'Enable'} ${t.display_name}` } }}
          onChange={(e) =>
            save.mutate(
              { id: t.id, patch: { enabled: e.target.checked } },
              { onError: (err) => notify(errorMessage(err), 'error') },
            )
          }
        />
      ),
    },
  ];

  const current = editing === 'new' ? null : editing;

  return (
    <ResourceListView
      title="Templates"
      subtitle="What users can launch from the catalog."
      actions={
        <Button variant="contained" startIcon={<AddIcon />} onClick={() => setEditing('new')}>
          Add template
        </Button>
      }
      columns={columns}
      list={list}
      getRowId={(t) => t.id}
      rowActions={(t) =>
        canEdit(t) ? (
          <>
            <Tooltip title="Edit">
              <IconButton aria-label={`Edit template ${t.display_name}`} onClick={() => setEditing(t)}>
                <EditIcon />
              </IconButton>
            </Tooltip>
            <ConfirmActionButton
              label={`Delete template ${t.display_name}`}
              tooltip="Delete"
              confirm={{
                title: `Delete template ${t.display_name}?`,
                message: 'Running sessions keep running; nobody can launch it any more.',
                confirmLabel: 'Delete',
              }}
              action={() => del.mutateAsync(t.id)}
              success={`Template ${t.display_name} deleted`}
            />
          </>
        ) : null
      }
    >
      <ResourceFormDialog<TemplateFormValues>
        open={editing !== null}
        title={current ? `Edit ${current.display_name}` : 'Add template'}
        submitLabel={current ? 'Save' : 'Create'}
        fields={fields}
        initialValues={current ? templateToForm(current) : { ...EMPTY_TEMPLATE_FORM, org_id: isPlatform ? '' : me.org_id }}
        validate={validateTemplate}
        onSubmit={async (v) => {
          const input = inputFor(formToTemplateInput(v), { platformAdmin: isPlatform, orgId: me.org_id });
          await save.mutateAsync(current ? { id: current.id, patch: toTemplatePatch(input) } : { input });
          notify(`Template ${input.display_name} saved`);
        }}
        onClose={() => setEditing(null)}
      />
      <WarmPoolDialog template={pooling} size={pooling ? poolSizeOf(pools.data, pooling.id) : undefined} onClose={() => setPooling(null)} />
    </ResourceListView>
  );
}
