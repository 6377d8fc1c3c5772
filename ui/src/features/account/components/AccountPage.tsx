import type { ReactNode } from 'react';
import { useQuery } from '@tanstack/react-query';
import { Box, Card, CardContent, Skeleton, Typography } from '@mui/material';
import { PageHeader } from '@/components/PageHeader';
import { ErrorAlert } from '@/components/ErrorAlert';
import { ROLE_LABELS } from '@/lib/auth';
import { formatDateTime } from '@/lib/format';
import { LinkedIdentitiesSection } from '@/features/sso';
import { getMeQueryOptions } from '../api/account';
import { ApiKeysSection } from './ApiKeysSection';
import { HomesSection } from './HomesSection';
import { MfaSection } from './MfaSection';
import { PasswordForm } from './PasswordForm';

function Section({ title, children }: { title: string; children: ReactNode }) {
  return (
    <Card variant="outlined" component="section" aria-label={title}>
      <CardContent>
        <Typography variant="h2" component="h2" sx={{ mb: 2 }}>
          {title}
        </Typography>
        {children}
      </CardContent>
    </Card>
  );
}

export function AccountPage() {
  const me = useQuery(getMeQueryOptions());
  return (
    <Box>
      <PageHeader title="Account" />
      <ErrorAlert error={me.error} onRetry={() => void me.refetch()} />
      <Box sx={{ display: 'grid', gap: 2 }}>
        <Section title="Profile">
          {me.data ? (
            <Box component="dl" sx={{ display: 'grid', gridTemplateColumns: 'max-content 1fr', columnGap: 2, rowGap: 0.5, m: 0 }}>
              <dt>Username</dt>
              <Box component="dd" sx={{ m: 0 }}>{me.data.username}</Box>
              <dt>Organization</dt>
              <Box component="dd" sx={{ m: 0 }}>{me.data.org_name}</Box>
              <dt>Role</dt>
              <Box component="dd" sx={{ m: 0 }}>{ROLE_LABELS[me.data.role]}</Box>
              <dt>Member since</dt>
              <Box component="dd" sx={{ m: 0 }}>{formatDateTime(me.data.created_at)}</Box>
            </Box>
          ) : (
            <Skeleton height={96} />
          )}
        </Section>
        <Section title="Password">
          <PasswordForm />
        </Section>
        <Section title="Two-factor authentication">
          {me.data ? <MfaSection me={me.data} /> : <Skeleton height={48} />}
        </Section>
        <Section title="Linked identities">
          {me.data ? <LinkedIdentitiesSection orgName={me.data.org_name} /> : <Skeleton height={48} />}
        </Section>
        <Section title="API keys">
          <ApiKeysSection />
        </Section>
        <Section title="Homes">
          <HomesSection />
        </Section>
      </Box>
    </Box>
  );
}
