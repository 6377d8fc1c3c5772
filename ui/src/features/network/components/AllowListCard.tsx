import { useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import { Alert, Button, Card, CardContent, Skeleton, Stack, TextField, Typography } from '@mui/material';
import { ErrorAlert } from '@/components/ErrorAlert';
import { useFeedback } from '@/components/feedback';
import { errorMessage } from '@/lib/api';
import { formatNetworks, parseNetworks } from '@/lib/networks';
import type { AllowListView } from '@/types/api';
import { getAllowListQueryOptions, useSaveAllowList, type AllowListOwner } from '../api/allowLists';

type Props = AllowListOwner & { title: string; description: string };

function AllowListForm({ owner, list, title, description }: { owner: AllowListOwner; list: AllowListView; title: string; description: string }) {
  const save = useSaveAllowList(owner);
  const { notify } = useFeedback();
  const [text, setText] = useState(formatNetworks(list.cidrs));
  const [error, setError] = useState<string | null>(null);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    save.mutate(
      { cidrs: parseNetworks(text) },
      { onSuccess: () => notify(`${title} saved`), onError: (err) => setError(errorMessage(err)) },
    );
  };

  return (
    <Stack component="form" spacing={2} onSubmit={submit} noValidate aria-label={`Edit ${title}`}>
      {error ? <Alert severity="error">{error}</Alert> : null}
      <TextField
        label={title}
        value={text}
        onChange={(e) => setText(e.target.value)}
        multiline
        minRows={2}
        fullWidth
        placeholder="Every address is allowed"
        helperText={`${description} One network (CIDR) per line; empty allows every address. Your address is ${list.client_address}: a list without it is refused.`}
        slotProps={{ inputLabel: { shrink: true } }}
      />
      <div>
        <Button type="submit" variant="outlined" disabled={save.isPending}>
          {save.isPending ? 'Saving…' : `Save ${title.toLowerCase()}`}
        </Button>
      </div>
    </Stack>
  );
}

/** Edits one IP allow-list; the server refuses a list that would lock the editor out, and says why. */
export function AllowListCard({ orgId, title, description }: Props) {
  const owner = { orgId };
  const list = useQuery(getAllowListQueryOptions(owner));
  return (
    <Card variant="outlined">
      <CardContent>
        <Typography variant="h2" component="h2" sx={{ mb: 2 }}>
          {title}
        </Typography>
        <ErrorAlert error={list.error} onRetry={() => void list.refetch()} />
        {list.data ? (
          <AllowListForm key={JSON.stringify(list.data.cidrs)} owner={owner} list={list.data} title={title} description={description} />
        ) : list.isPending ? (
          <Skeleton variant="rounded" height={96} />
        ) : null}
      </CardContent>
    </Card>
  );
}
