import { useMemo, useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import { Button, Chip, IconButton, Tooltip } from '@mui/material';
import AddIcon from '@mui/icons-material/Add';
import EditIcon from '@mui/icons-material/Edit';
import { ResourceListView } from '@/components/ResourceListView';
import { ResourceFormDialog, type FieldSpec } from '@/components/ResourceFormDialog';
import type { Column } from '@/components/ResourceTable';
import { ConfirmActionButton } from '@/components/ConfirmActionButton';
import { useFeedback } from '@/components/feedback';
import { ROLE_LABELS, useUser } from '@/lib/auth';
import { formatDateTime } from '@/lib/format';
import { useCursorList } from '@/lib/list';
import { ROLES, type PatchUserRequest, type Role, type User } from '@/types/api';
import { getOrgsQueryOptions } from '@/features/orgs';
import { MIN_PASSWORD_LENGTH } from '@/features/account';
import { getUsersInfiniteQueryOptions, useCreateUser, useDeleteUser, useUpdateUser } from '../api/users';

/** The API's rule: letters, digits, '.', '-' and '_', starting with a letter or digit, at most 64. */
const USERNAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

type CreateValues = { username: string; password: string; role: string; org_id: string };
type EditValues = { role: string; disabled: boolean; password: string };

function isRole(v: string): v is Role {
  return (ROLES as readonly string[]).includes(v);
}

export function UsersPage() {
  const me = useUser();
  const isPlatform = me.role === 'platform_admin';
  const list = useCursorList(getUsersInfiniteQueryOptions());
  const orgs = useQuery({ ...getOrgsQueryOptions(), enabled: isPlatform });
  const create = useCreateUser();
  const update = useUpdateUser();
  const del = useDeleteUser();
  const { notify } = useFeedback();
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState<User | null>(null);

  const orgName = useMemo(() => {
    const m = new Map(orgs.data?.items.map((o) => [o.id, o.name]));
    return (id: string) => m.get(id) ?? `…${id.slice(-8)}`;
  }, [orgs.data]);

  // Org admins manage their own org and cannot mint platform admins.
  const roleOptions = ROLES.filter((r) => isPlatform || r !== 'platform_admin').map((r) => ({ value: r, label: ROLE_LABELS[r] }));

  const createFields: FieldSpec<CreateValues>[] = [
    { name: 'username', label: 'Username', required: true, half: true },
    { name: 'password', label: 'Password', kind: 'password', required: true, half: true, helperText: `At least ${MIN_PASSWORD_LENGTH} characters` },
    { name: 'role', label: 'Role', kind: 'select', options: roleOptions, half: true },
    ...(isPlatform
      ? [
          {
            name: 'org_id' as const,
            label: 'Organization',
            kind: 'select' as const,
            half: true,
            options: (orgs.data?.items ?? []).map((o) => ({ value: o.id, label: o.name })),
          },
        ]
      : []),
  ];

  const editFields: FieldSpec<EditValues>[] = [
    { name: 'role', label: 'Role', kind: 'select', options: roleOptions },
    { name: 'disabled', label: 'Disabled (cannot sign in)', kind: 'switch' },
    { name: 'password', label: 'New password', kind: 'password', helperText: 'Leave empty to keep the current password' },
  ];

  const columns: Column<User>[] = [
    { key: 'username', header: 'Username', render: (u) => u.username },
    { key: 'role', header: 'Role', render: (u) => ROLE_LABELS[u.role] },
    ...(isPlatform ? [{ key: 'org', header: 'Organization', hideBelow: 'sm' as const, render: (u: User) => orgName(u.org_id) }] : []),
    { key: 'mfa', header: 'MFA', hideBelow: 'md', render: (u) => (u.mfa_enabled ? 'on' : 'off') },
    {
      key: 'status',
      header: 'Status',
      render: (u) => (u.disabled ? <Chip size="small" label="disabled" color="warning" /> : <Chip size="small" label="active" variant="outlined" />),
    },
    { key: 'created', header: 'Created', hideBelow: 'lg', render: (u) => formatDateTime(u.created_at) },
  ];

  return (
    <ResourceListView
      title="Users"
      actions={
        <Button variant="contained" startIcon={<AddIcon />} onClick={() => setCreating(true)}>
          Add user
        </Button>
      }
      columns={columns}
      list={list}
      getRowId={(u) => u.id}
      rowActions={(u) => (
        <>
          <Tooltip title="Edit">
            <IconButton aria-label={`Edit user ${u.username}`} onClick={() => setEditing(u)}>
              <EditIcon />
            </IconButton>
          </Tooltip>
          <ConfirmActionButton
            label={`Delete user ${u.username}`}
            tooltip={u.id === me.id ? 'You cannot delete yourself' : 'Delete'}
            disabled={u.id === me.id}
            confirm={{
              title: `Delete user ${u.username}?`,
              message: 'Their API keys and sign-ins are revoked. A user with active sessions cannot be deleted: stop them first.',
              confirmLabel: 'Delete',
            }}
            action={() => del.mutateAsync(u.id)}
            success={`User ${u.username} deleted`}
          />
        </>
      )}
    >
      <ResourceFormDialog<CreateValues>
        open={creating}
        title="Add user"
        submitLabel="Create"
        fields={createFields}
        initialValues={{ username: '', password: '', role: 'member', org_id: me.org_id }}
        validate={(v) => ({
          username: USERNAME_RE.test(v.username.trim())
            ? undefined
            : 'Letters, digits, dots, dashes and underscores, starting with a letter or digit; at most 64 characters',
          password: v.password.length >= MIN_PASSWORD_LENGTH ? undefined : `At least ${MIN_PASSWORD_LENGTH} characters`,
          role: isRole(v.role) ? undefined : 'Pick a role',
        })}
        onSubmit={async (v) => {
          if (!isRole(v.role)) return;
          await create.mutateAsync({
            username: v.username.trim(),
            password: v.password,
            role: v.role,
            ...(isPlatform && v.org_id ? { org_id: v.org_id } : {}),
          });
          notify(`User ${v.username} created`);
        }}
        onClose={() => setCreating(false)}
      />
      <ResourceFormDialog<EditValues>
        open={editing !== null}
        title={editing ? `Edit ${editing.username}` : 'Edit user'}
        fields={editFields}
        initialValues={{ role: editing?.role ?? 'member', disabled: editing?.disabled ?? false, password: '' }}
        validate={(v) => ({
          password: v.password && v.password.length < MIN_PASSWORD_LENGTH ? `At least ${MIN_PASSWORD_LENGTH} characters` : undefined,
        })}
        onSubmit={async (v) => {
          if (!editing || !isRole(v.role)) return;
          const patch: PatchUserRequest = {};
          if (v.role !== editing.role) patch.role = v.role;
          if (v.disabled !== editing.disabled) patch.disabled = v.disabled;
          if (v.password) patch.password = v.password;
          if (Object.keys(patch).length > 0) await update.mutateAsync({ id: editing.id, patch });
          notify(`User ${editing.username} saved`);
        }}
        onClose={() => setEditing(null)}
      />
    </ResourceListView>
  );
}
