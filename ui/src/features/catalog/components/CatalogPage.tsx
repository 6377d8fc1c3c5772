import { useMemo, useState } from 'react';
import { useNavigate } from 'react-router';
import { useQuery } from '@tanstack/react-query';
import { Box, Chip, InputAdornment, Skeleton, TextField, Typography } from '@mui/material';
import SearchIcon from '@mui/icons-material/Search';
import { PageHeader } from '@/components/PageHeader';
import { ErrorAlert } from '@/components/ErrorAlert';
import { useFeedback } from '@/components/feedback';
import { errorMessage } from '@/lib/api';
import { getTemplatesQueryOptions } from '@/features/templates';
import { useCreateSession } from '@/features/sessions';
import type { Template } from '@/types/api';
import { collectTags, filterTemplates } from '../filter';
import { TemplateCard } from './TemplateCard';

export function CatalogPage() {
  const templates = useQuery(getTemplatesQueryOptions());
  const [search, setSearch] = useState('');
  const [tags, setTags] = useState<string[]>([]);
  const navigate = useNavigate();
  const { notify } = useFeedback();
  const create = useCreateSession();

  const all = useMemo(() => templates.data?.items ?? [], [templates.data]);
  const allTags = useMemo(() => collectTags(all), [all]);
  const visible = useMemo(() => filterTemplates(all, search, tags), [all, search, tags]);

  const launch = (t: Template) => {
    create.mutate(t.id, {
      onSuccess: (session) => {
        if (session) void navigate(`/sessions/${encodeURIComponent(session.id)}`);
      },
      onError: (e) => notify(`Could not launch ${t.display_name}: ${errorMessage(e)}`, 'error'),
    });
  };

  const toggleTag = (tag: string) =>
    setTags((cur) => (cur.includes(tag) ? cur.filter((t) => t !== tag) : [...cur, tag]));

  return (
    <Box>
      <PageHeader title="Catalog" subtitle="Pick an application and it opens in this browser." />
      <Box role="search" sx={{ display: 'flex', flexDirection: 'column', gap: 1.5, mb: 3 }}>
        <TextField
          label="Search templates"
          type="search"
          value={search}
          onChange={(e) => setSearch(e.target.value)}
          sx={{ maxWidth: 480 }}
          slotProps={{
            input: {
              startAdornment: (
                <InputAdornment position="start">
                  <SearchIcon aria-hidden />
                </InputAdornment>
              ),
            },
          }}
        />
        {allTags.length > 0 ? (
          <Box role="group" aria-label="Filter by tag" sx={{ display: 'flex', flexWrap: 'wrap', gap: 1 }}>
            {allTags.map((tag) => {
              const on = tags.includes(tag);
              return (
                <Chip
                  key={tag}
                  label={tag}
                  clickable
                  color={on ? 'primary' : 'default'}
                  variant={on ? 'filled' : 'outlined'}
                  onClick={() => toggleTag(tag)}
                  aria-pressed={on}
                  role="button"
                />
              );
            })}
          </Box>
        ) : null}
      </Box>
      <ErrorAlert error={templates.error} title="Could not load the catalog" onRetry={() => void templates.refetch()} />
      <Box
        component="section"
        aria-label="Templates"
        aria-busy={templates.isPending || undefined}
        sx={{ display: 'grid', gap: 2, gridTemplateColumns: 'repeat(auto-fill, minmax(260px, 1fr))' }}
      >
        {templates.isPending
          ? [0, 1, 2].map((i) => <Skeleton key={i} variant="rounded" height={200} />)
          : visible.map((t) => (
              <TemplateCard
                key={t.id}
                template={t}
                onLaunch={launch}
                launching={create.isPending && create.variables === t.id}
                disabled={create.isPending}
              />
            ))}
      </Box>
      {!templates.isPending && !templates.error && visible.length === 0 ? (
        <Typography color="text.secondary" sx={{ mt: 4, textAlign: 'center' }} role="status">
          {all.length === 0 ? 'No templates are available yet.' : 'No templates match your search.'}
        </Typography>
      ) : null}
    </Box>
  );
}
