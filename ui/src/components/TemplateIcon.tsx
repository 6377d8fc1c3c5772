import { Avatar } from '@mui/material';
import type { Template } from '@/types/api';

/** A template's icon, or its initial where it has none. */
export function TemplateIcon({ template, size = 48 }: { template: Pick<Template, 'icon' | 'display_name'>; size?: number }) {
  return (
    <Avatar
      variant="rounded"
      src={template.icon || undefined}
      alt=""
      slotProps={{ img: { referrerPolicy: 'no-referrer', loading: 'lazy' } }}
      sx={{ width: size, height: size, bgcolor: 'primary.main', fontWeight: 600 }}
    >
      {template.display_name.slice(0, 1).toUpperCase()}
    </Avatar>
  );
}
