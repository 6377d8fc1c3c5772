import { useState, type FormEvent } from 'react';
import { Link as RouterLink } from 'react-router';
import { useQuery } from '@tanstack/react-query';
import { Alert, Box, Button, CircularProgress, Link, Stack, TextField, Typography } from '@mui/material';
import LoginIcon from '@mui/icons-material/Login';
import { errorMessage } from '@/lib/api';
import { getSsoDiscoveryQueryOptions, type DiscoveryQuery } from '../api/sso';
import { parseDiscoveryInput, startUrlFor } from '../discover';

/** One button per provider the server found; each leaves for the IdP and comes back signed in. */
function ProviderButtons({ query, returnTo, emptyMessage }: { query: DiscoveryQuery; returnTo: string; emptyMessage: string }) {
  const discovery = useQuery(getSsoDiscoveryQueryOptions(query));
  if (discovery.isPending) {
    return (
      <Box sx={{ display: 'flex', justifyContent: 'center' }}>
        <CircularProgress size={24} aria-label="Looking up your organization" />
      </Box>
    );
  }
  if (discovery.error) return <Alert severity="error">{errorMessage(discovery.error)}</Alert>;
  const { providers } = discovery.data;
  if (providers.length === 0) return <Alert severity="info">{emptyMessage}</Alert>;
  return (
    <Stack spacing={1} aria-label="Identity providers" role="group">
      {providers.map((p) => (
        <Button key={p.id} component="a" href={startUrlFor(p.start_url, returnTo)} variant="outlined" size="large" startIcon={<LoginIcon />}>
          Sign in with {p.display_name}
        </Button>
      ))}
    </Stack>
  );
}

/** `/login/<org>`: the organization is known, its buttons show at once. */
export function OrgSsoButtons({ org, returnTo }: { org: string; returnTo: string }) {
  return (
    <Stack spacing={1}>
      <Typography variant="body2" color="text.secondary">
        Organization <strong>{org}</strong>
      </Typography>
      <ProviderButtons
        query={{ org }}
        returnTo={returnTo}
        emptyMessage="This organization has no single sign-on. Sign in with your username and password."
      />
      <Link component={RouterLink} to="/login" variant="body2">
        Another organization
      </Link>
    </Stack>
  );
}

/** `/login`: the user types a work email or the organization's name first. */
export function SsoDiscoveryForm({ returnTo }: { returnTo: string }) {
  const [value, setValue] = useState('');
  const [inputError, setInputError] = useState<string | null>(null);
  const [query, setQuery] = useState<DiscoveryQuery | null>(null);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const parsed = parseDiscoveryInput(value);
    if ('error' in parsed) {
      setInputError(parsed.error);
      setQuery(null);
    } else {
      setInputError(null);
      setQuery(parsed.query);
    }
  };

  return (
    <Stack spacing={1} component="form" onSubmit={submit} noValidate aria-label="Single sign-on">
      <Box sx={{ display: 'flex', gap: 1, alignItems: 'flex-start' }}>
        <TextField
          label="Work email or organization"
          name="sso"
          value={value}
          onChange={(e) => setValue(e.target.value)}
          autoComplete="email"
          error={Boolean(inputError)}
          helperText={inputError ?? undefined}
          size="small"
          fullWidth
        />
        <Button type="submit" variant="outlined" sx={{ flexShrink: 0, height: 40 }}>
          Continue
        </Button>
      </Box>
      {query ? (
        <ProviderButtons
          query={query}
          returnTo={returnTo}
          emptyMessage="No single sign-on was found for that. Sign in with your username and password below."
        />
      ) : null}
    </Stack>
  );
}
