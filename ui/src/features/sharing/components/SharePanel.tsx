import { useState } from 'react';
import {
  Box,
  Button,
  Chip,
  Dialog,
  DialogActions,
  DialogContent,
  DialogTitle,
  IconButton,
  List,
  ListItem,
  ListItemText,
  MenuItem,
  Stack,
  TextField,
  Tooltip,
  Typography,
} from '@mui/material';
import { useQuery } from '@tanstack/react-query';
import DeleteIcon from '@mui/icons-material/Delete';
import ShareIcon from '@mui/icons-material/Share';
import VisibilityIcon from '@mui/icons-material/Visibility';
import { OneTimeSecretDialog } from '@/components/OneTimeSecretDialog';
import { useFeedback } from '@/components/feedback';
import { errorMessage } from '@/lib/api';
import type { ShareRole, ShareView } from '@/types/api';
import { getSharesQueryOptions, useCreateShare, useRevokeShare } from '../api';

const ROLE_LABELS: Record<ShareRole, string> = { viewer: 'Viewer (sees, no input)', collaborator: 'Collaborator (input too)' };

/** "2 people watching": the guests with the session open now, for its owner's toolbar. */
export function WatchingChip({ sessionId }: { sessionId: string }) {
  const shares = useQuery(getSharesQueryOptions(sessionId));
  const count = shares.data?.watching.length ?? 0;
  if (count === 0) return null;
  const names = shares.data?.watching.map((w) => `${w.username} (${w.role})`).join(', ');
  return (
    <Tooltip title={names}>
      <Chip size="small" icon={<VisibilityIcon />} label={`${count} ${count === 1 ? 'person' : 'people'} watching`} />
    </Tooltip>
  );
}

function describe(share: ShareView): string {
  const until = share.expires_at ? ` · until ${new Date(share.expires_at).toLocaleString()}` : '';
  const who = share.kind === 'link' ? 'Link for org members' : (share.username ?? 'someone');
  const via = share.kind === 'joined' ? ' · joined through a link' : '';
  return `${who} · ${share.role}${via}${until}`;
}

/** The owner's sharing controls: invite a member, make an expiring link, revoke. */
export function ShareButton({ sessionId }: { sessionId: string }) {
  const [open, setOpen] = useState(false);
  const [user, setUser] = useState('');
  const [role, setRole] = useState<ShareRole>('viewer');
  const [minutes, setMinutes] = useState('60');
  const [link, setLink] = useState<string | null>(null);
  const { notify } = useFeedback();
  const shares = useQuery({ ...getSharesQueryOptions(sessionId), enabled: open });
  const create = useCreateShare(sessionId);
  const revoke = useRevokeShare(sessionId);
  const expires = Number(minutes) > 0 ? Number(minutes) : null;

  const invite = () =>
    create.mutate(
      { user: user.trim(), role, expires_in_minutes: expires },
      { onSuccess: () => setUser(''), onError: (e) => notify(`Could not invite: ${errorMessage(e)}`, 'error') },
    );
  const makeLink = () =>
    create.mutate(
      { role, expires_in_minutes: expires ?? 60 },
      { onSuccess: (created) => setLink(created.url ?? null), onError: (e) => notify(`Could not make a link: ${errorMessage(e)}`, 'error') },
    );

  return (
    <>
      <Tooltip title="Share">
        <IconButton aria-label="Share" onClick={() => setOpen(true)}>
          <ShareIcon />
        </IconButton>
      </Tooltip>
      <Dialog open={open} onClose={() => setOpen(false)} maxWidth="sm" fullWidth>
        <DialogTitle>Share this session</DialogTitle>
        <DialogContent>
          <Stack spacing={2} sx={{ mt: 1 }}>
            <TextField select label="Role" value={role} onChange={(e) => setRole(e.target.value as ShareRole)}>
              {(Object.keys(ROLE_LABELS) as ShareRole[]).map((r) => (
                <MenuItem key={r} value={r}>
                  {ROLE_LABELS[r]}
                </MenuItem>
              ))}
            </TextField>
            <TextField
              label="Expires after (minutes, empty: until revoked for invitations)"
              value={minutes}
              onChange={(e) => setMinutes(e.target.value.replace(/\D/g, ''))}
            />
            <Stack direction="row" spacing={1}>
              <TextField label="Username" value={user} onChange={(e) => setUser(e.target.value)} sx={{ flex: 1 }} />
              <Button variant="contained" disabled={!user.trim() || create.isPending} onClick={invite}>
                Invite
              </Button>
            </Stack>
            <Button variant="outlined" disabled={create.isPending} onClick={makeLink}>
              Make a link for members of the organization
            </Button>
            <Box>
              <Typography variant="subtitle2">Shared with</Typography>
              <List dense>
                {(shares.data?.shares ?? []).map((share) => (
                  <ListItem
                    key={share.id}
                    secondaryAction={
                      <IconButton
                        aria-label={`Revoke ${share.username ?? 'link'}`}
                        edge="end"
                        onClick={() =>
                          revoke.mutate(share.id, { onError: (e) => notify(`Could not revoke: ${errorMessage(e)}`, 'error') })
                        }
                      >
                        <DeleteIcon />
                      </IconButton>
                    }
                  >
                    <ListItemText primary={describe(share)} />
                  </ListItem>
                ))}
                {shares.data?.shares.length === 0 ? <ListItem>Nobody yet.</ListItem> : null}
              </List>
            </Box>
          </Stack>
        </DialogContent>
        <DialogActions>
          <Button onClick={() => setOpen(false)}>Done</Button>
        </DialogActions>
      </Dialog>
      <OneTimeSecretDialog
        open={link !== null}
        title="Sharing link"
        description="Send this to members of your organization. It is shown only now; revoke it here at any time."
        secret={link}
        onClose={() => setLink(null)}
      />
    </>
  );
}
