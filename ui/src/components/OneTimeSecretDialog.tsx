import { Alert, Box, Button, Dialog, DialogActions, DialogContent, DialogTitle, Typography } from '@mui/material';
import { CopyButton } from './CopyButton';

/** Shows a secret that the server returns exactly once (API key, agent token, recovery codes). */
export function OneTimeSecretDialog({
  open,
  title,
  description,
  secret,
  onClose,
  filename,
}: {
  open: boolean;
  title: string;
  description?: string;
  secret: string | string[] | null;
  onClose: () => void;
  /** Offer a .txt download of the secret under this name. */
  filename?: string;
}) {
  const text = Array.isArray(secret) ? secret.join('\n') : (secret ?? '');
  const download = () => {
    const url = URL.createObjectURL(new Blob([text + '\n'], { type: 'text/plain' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = filename ?? 'secret.txt';
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  };
  return (
    <Dialog open={open} onClose={(_e, reason) => reason !== 'backdropClick' && onClose()} maxWidth="sm" fullWidth>
      <DialogTitle>{title}</DialogTitle>
      <DialogContent>
        <Alert severity="warning" sx={{ mb: 2 }}>
          {description ?? 'Copy this now. It will not be shown again.'}
        </Alert>
        <Box sx={{ display: 'flex', alignItems: 'flex-start', gap: 1 }}>
          <Box
            component="pre"
            aria-label={title}
            data-testid="one-time-secret"
            sx={{
              flex: 1,
              m: 0,
              p: 1.5,
              borderRadius: 1,
              bgcolor: 'action.hover',
              fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace',
              fontSize: '0.9rem',
              whiteSpace: 'pre-wrap',
              wordBreak: 'break-all',
              columnCount: Array.isArray(secret) && secret.length > 4 ? 2 : 1,
            }}
          >
            {text}
          </Box>
          <CopyButton text={text} label={`Copy ${title.toLowerCase()}`} />
        </Box>
        {Array.isArray(secret) ? (
          <Typography variant="body2" color="text.secondary" sx={{ mt: 1 }}>
            Each code works once.
          </Typography>
        ) : null}
      </DialogContent>
      <DialogActions>
        {filename ? <Button onClick={download}>Download</Button> : null}
        <Button variant="contained" onClick={onClose}>
          I have saved it
        </Button>
      </DialogActions>
    </Dialog>
  );
}
