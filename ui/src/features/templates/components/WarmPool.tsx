import { useId } from 'react';
import { Box, Button, Typography } from '@mui/material';
import { ResourceFormDialog } from '@/components/ResourceFormDialog';
import { useFeedback } from '@/components/feedback';
import type { Template } from '@/types/api';
import {
  MAX_POOL_SIZE,
  type PoolFormValues,
  describePoolSize,
  keepsHome,
  useSetPool,
  validatePoolSize,
} from '../api/pools';

/**
 * A template's warm-pool size in its row: a button that opens the size dialog, disabled with the
 * reason beside it when the template keeps a home.
 */
export function WarmPoolCell({
  template,
  size,
  editable,
  onEdit,
}: {
  template: Template;
  /** Undefined while the pools are loading or could not be read. */
  size: number | undefined;
  editable: boolean;
  onEdit: () => void;
}) {
  const reasonId = useId();
  const label = `Warm pool of ${template.display_name}`;
  if (keepsHome(template)) {
    return (
      <Box>
        <Button size="small" disabled aria-label={label} aria-describedby={reasonId}>
          {describePoolSize(size ?? 0)}
        </Button>
        <Typography id={reasonId} variant="caption" color="text.secondary" sx={{ display: 'block' }}>
          {size ? 'Paused: not with a persistent home' : 'Not with a persistent home'}
        </Typography>
      </Box>
    );
  }
  const text = size === undefined ? '—' : describePoolSize(size);
  if (!editable) return <Typography variant="body2">{text}</Typography>;
  return (
    <Button size="small" variant="outlined" aria-label={label} disabled={size === undefined} onClick={onEdit}>
      {text}
    </Button>
  );
}

/** Sets how many containers of the template each fitting agent keeps started. */
export function WarmPoolDialog({
  template,
  size,
  onClose,
}: {
  template: Template | null;
  size: number | undefined;
  onClose: () => void;
}) {
  const setPool = useSetPool();
  const { notify } = useFeedback();
  const name = template?.display_name ?? '';
  return (
    <ResourceFormDialog<PoolFormValues>
      open={template !== null}
      title={`Warm pool of ${name}`}
      description={
        <Typography variant="body2" color="text.secondary">
          Every online agent where it fits keeps this many {name} containers started, so a launch finds one
          ready. They use memory and CPU while they wait and count against the agent&apos;s capacity like
          sessions. Launches in an organization with a stricter policy or its own egress allow list start cold.
        </Typography>
      }
      fields={[
        {
          name: 'size',
          label: 'Warm containers per agent',
          kind: 'number',
          helperText: `0 to ${MAX_POOL_SIZE}; 0 removes the pool`,
        },
      ]}
      initialValues={{ size: String(size ?? 0) }}
      validate={validatePoolSize}
      onSubmit={async (v) => {
        if (!template) return;
        const pool = await setPool.mutateAsync({ templateId: template.id, size: Number(v.size) });
        notify(pool.size === 0 ? `Warm pool of ${name} removed` : `Warm pool of ${name}: ${describePoolSize(pool.size)}`);
      }}
      onClose={onClose}
    />
  );
}
