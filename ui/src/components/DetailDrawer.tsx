import type { ReactNode } from 'react';
import { Box, Divider, Drawer, IconButton, Typography } from '@mui/material';
import CloseIcon from '@mui/icons-material/Close';

export interface DetailField {
  label: string;
  value: ReactNode;
}

/** Generic detail view: a side panel with label/value rows, reused by every admin resource. */
export function DetailDrawer({
  open,
  title,
  fields,
  onClose,
  children,
}: {
  open: boolean;
  title: string;
  fields: DetailField[];
  onClose: () => void;
  children?: ReactNode;
}) {
  return (
    <Drawer anchor="right" open={open} onClose={onClose} slotProps={{ paper: { sx: { width: { xs: '100%', sm: 440 } } } }}>
      <Box role="region" aria-label={title} sx={{ p: 2 }}>
        <Box sx={{ display: 'flex', alignItems: 'center', justifyContent: 'space-between', gap: 1 }}>
          <Typography variant="h2" component="h2" sx={{ wordBreak: 'break-word' }}>
            {title}
          </Typography>
          <IconButton aria-label="Close details" onClick={onClose}>
            <CloseIcon />
          </IconButton>
        </Box>
        <Divider sx={{ my: 1 }} />
        <Box component="dl" sx={{ display: 'grid', gridTemplateColumns: 'max-content 1fr', columnGap: 2, rowGap: 1, m: 0 }}>
          {fields.map((f) => (
            <Box key={f.label} sx={{ display: 'contents' }}>
              <Typography component="dt" variant="body2" color="text.secondary">
                {f.label}
              </Typography>
              <Typography component="dd" variant="body2" sx={{ m: 0, wordBreak: 'break-word' }}>
                {f.value ?? '—'}
              </Typography>
            </Box>
          ))}
        </Box>
        {children ? <Box sx={{ mt: 2 }}>{children}</Box> : null}
      </Box>
    </Drawer>
  );
}

export function JsonBlock({ value, label }: { value: unknown; label: string }) {
  return (
    <Box
      component="pre"
      aria-label={label}
      sx={{ p: 1.5, m: 0, bgcolor: 'action.hover', borderRadius: 1, overflow: 'auto', fontSize: '0.8rem', maxHeight: 360 }}
    >
      {JSON.stringify(value, null, 2)}
    </Box>
  );
}
