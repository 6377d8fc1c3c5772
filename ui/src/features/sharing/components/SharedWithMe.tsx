import { Link as RouterLink } from 'react-router';
import { Box, Button, List, ListItem, ListItemText, Typography } from '@mui/material';
import { useQuery } from '@tanstack/react-query';
import { getSharedSessionsQueryOptions } from '../api';

/** Sessions other members shared with the signed-in user, each a link into its viewer. */
export function SharedWithMe() {
  const shared = useQuery(getSharedSessionsQueryOptions());
  if (!shared.data?.length) return null;
  return (
    <Box sx={{ mt: 3 }}>
      <Typography variant="h2" component="h2" sx={{ fontSize: '1.1rem', mb: 1 }}>
        Shared with me
      </Typography>
      <List dense>
        {shared.data.map(({ session, role, expires_at }) => (
          <ListItem
            key={session.id}
            secondaryAction={
              <Button component={RouterLink} to={`/sessions/${encodeURIComponent(session.id)}`} size="small">
                Open
              </Button>
            }
          >
            <ListItemText
              primary={`${session.template_display_name} of ${session.owner_username}`}
              secondary={`${role === 'viewer' ? 'View only' : 'Collaborator'}${expires_at ? ` · until ${new Date(expires_at).toLocaleString()}` : ''}`}
            />
          </ListItem>
        ))}
      </List>
    </Box>
  );
}
