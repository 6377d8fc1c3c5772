import { Box, Typography } from '@mui/material';
import { TemplateIcon } from '@/components/TemplateIcon';
import type { Template } from '@/types/api';

/** A template in a table row: its icon, display name and name. */
export function TemplateLabel({ template }: { template: Pick<Template, 'icon' | 'display_name' | 'name'> }) {
  return (
    <Box sx={{ display: 'flex', alignItems: 'center', gap: 1.5 }}>
      <TemplateIcon template={template} size={32} />
      <Box>
        <Typography variant="body2" sx={{ fontWeight: 600 }}>
          {template.display_name}
        </Typography>
        <Typography variant="caption" color="text.secondary">
          {template.name}
        </Typography>
      </Box>
    </Box>
  );
}
