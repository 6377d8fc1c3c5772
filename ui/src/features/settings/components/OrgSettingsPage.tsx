import { useState, type FormEvent } from 'react';
import { useSearchParams } from 'react-router';
import { useQuery } from '@tanstack/react-query';
import { Alert, Box, Button, Card, CardContent, FormControlLabel, MenuItem, Skeleton, Stack, Switch, TextField, Typography } from '@mui/material';
import { PageHeader } from '@/components/PageHeader';
import { ErrorAlert } from '@/components/ErrorAlert';
import { useFeedback } from '@/components/feedback';
import { errorMessage } from '@/lib/api';
import { useUser } from '@/lib/auth';
import { formatNetworks, parseNetworks } from '@/lib/networks';
import type { Organization, OrgPatch, SsoMfaPolicy } from '@/types/api';
import { getOrgQueryOptions, getOrgsQueryOptions, useUpdateOrg } from '@/features/orgs';
import { ComplianceSettingsCard } from '@/features/reports';
import { AllowListCard } from '@/features/network';
import { IdentityProvidersSection } from '@/features/sso';
import { samePolicy, withDefaults } from '@/lib/sessionPolicy';
import { SessionPolicyFields } from './SessionPolicyFields';

type QuotaKey = 'max_sessions' | 'max_sessions_per_user' | 'max_cpu_millis' | 'max_memory_mb';

const QUOTAS: { key: QuotaKey; label: string; unit?: string }[] = [
  { key: 'max_sessions', label: 'Sessions in the organization' },
  { key: 'max_sessions_per_user', label: 'Sessions per user' },
  { key: 'max_cpu_millis', label: 'CPU for all sessions', unit: 'millicores' },
  { key: 'max_memory_mb', label: 'Memory for all sessions', unit: 'MiB' },
];

const SSO_MFA_OPTIONS: { value: SsoMfaPolicy; label: string }[] = [
  { value: 'trust_idp', label: "Trust the identity provider's MFA" },
  { value: 'require_totp', label: 'Still ask for a StreamSpace TOTP code' },
];

/** Blank means unlimited (null); otherwise a positive whole number. */
export function parseQuota(raw: string): { value: number | null; error?: string } {
  const v = raw.trim();
  if (!v) return { value: null };
  if (!/^\d+$/.test(v) || Number(v) <= 0) return { value: null, error: 'A positive whole number, or empty for unlimited' };
  return { value: Number(v) };
}

/**
 * Org admins set the MFA and session policies; quotas and the egress allow list are the platform admins'
 * (the API answers 403 otherwise).
 */
function SettingsForm({ org, platformAdmin }: { org: Organization; platformAdmin: boolean }) {
  const update = useUpdateOrg();
  const { notify } = useFeedback();
  const [mfa, setMfa] = useState(org.mfa_required);
  const [ssoMfa, setSsoMfa] = useState<SsoMfaPolicy>(org.sso_mfa);
  const [sessionPolicy, setSessionPolicy] = useState(withDefaults(org.session_policy));
  const [egress, setEgress] = useState(formatNetworks(org.egress_allow));
  const [quotas, setQuotas] = useState<Record<QuotaKey, string>>({
    max_sessions: org.max_sessions?.toString() ?? '',
    max_sessions_per_user: org.max_sessions_per_user?.toString() ?? '',
    max_cpu_millis: org.max_cpu_millis?.toString() ?? '',
    max_memory_mb: org.max_memory_mb?.toString() ?? '',
  });
  const [errors, setErrors] = useState<Partial<Record<QuotaKey, string>>>({});
  const [error, setError] = useState<string | null>(null);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    // Send only what changed: PATCH leaves absent fields alone.
    const patch: OrgPatch = {};
    if (mfa !== org.mfa_required) patch.mfa_required = mfa;
    if (!samePolicy(sessionPolicy, org.session_policy)) patch.session_policy = sessionPolicy;
    if (ssoMfa !== org.sso_mfa) patch.sso_mfa = ssoMfa;
    const errs: Partial<Record<QuotaKey, string>> = {};
    if (platformAdmin) {
      const allow = parseNetworks(egress);
      if (formatNetworks(allow) !== formatNetworks(org.egress_allow)) patch.egress_allow = allow;
      for (const q of QUOTAS) {
        const r = parseQuota(quotas[q.key]);
        if (r.error) errs[q.key] = r.error;
        else if (r.value !== org[q.key]) patch[q.key] = r.value;
      }
    }
    setErrors(errs);
    if (Object.keys(errs).length) return;
    setError(null);
    if (Object.keys(patch).length === 0) {
      notify('Nothing to save', 'info');
      return;
    }
    update.mutate(
      { id: org.id, patch },
      { onSuccess: () => notify('Settings saved'), onError: (err) => setError(errorMessage(err)) },
    );
  };

  return (
    <Stack component="form" spacing={3} onSubmit={submit} noValidate aria-label={`Settings of ${org.name}`}>
      {error ? <Alert severity="error">{error}</Alert> : null}
      <Card variant="outlined">
        <CardContent>
          <Typography variant="h2" component="h2" sx={{ mb: 1 }}>
            Security
          </Typography>
          <FormControlLabel
            control={<Switch checked={mfa} onChange={(e) => setMfa(e.target.checked)} />}
            label="Require two-factor authentication for every user"
          />
          <Typography variant="body2" color="text.secondary">
            Users without MFA can do nothing else until they have set it up.
          </Typography>
          <TextField
            select
            label="Two-factor with single sign-on"
            value={ssoMfa}
            onChange={(e) => setSsoMfa(e.target.value as SsoMfaPolicy)}
            sx={{ mt: 2, display: 'flex' }}
            helperText="Whether the identity provider's own MFA (OIDC acr/amr, SAML AuthnContextClassRef) is enough"
          >
            {SSO_MFA_OPTIONS.map((o) => (
              <MenuItem key={o.value} value={o.value}>
                {o.label}
              </MenuItem>
            ))}
          </TextField>
        </CardContent>
      </Card>
      <Card variant="outlined">
        <CardContent>
          <Typography variant="h2" component="h2" sx={{ mb: 1 }}>
            Session policy
          </Typography>
          <Typography variant="body2" color="text.secondary" sx={{ mb: 2 }}>
            What every session of the organization may exchange with the viewer's browser. A template can close
            more, never open more. Sessions started or woken after saving follow the new policy.
          </Typography>
          <SessionPolicyFields value={sessionPolicy} onChange={setSessionPolicy} />
        </CardContent>
      </Card>
      <Card variant="outlined">
        <CardContent>
          <Typography variant="h2" component="h2" sx={{ mb: platformAdmin ? 2 : 1 }}>
            Quotas
          </Typography>
          {!platformAdmin ? (
            <Typography variant="body2" color="text.secondary" sx={{ mb: 2 }}>
              Set by the platform administrators.
            </Typography>
          ) : null}
          <Box sx={{ display: 'grid', gap: 2, gridTemplateColumns: { xs: '1fr', sm: '1fr 1fr' } }}>
            {QUOTAS.map((q) => (
              <TextField
                key={q.key}
                label={q.unit ? `${q.label} (${q.unit})` : q.label}
                value={quotas[q.key]}
                onChange={(e) => setQuotas((cur) => ({ ...cur, [q.key]: e.target.value }))}
                placeholder="unlimited"
                error={Boolean(errors[q.key])}
                helperText={errors[q.key] ?? (platformAdmin ? 'Empty = unlimited' : undefined)}
                disabled={!platformAdmin}
                slotProps={{ htmlInput: { inputMode: 'numeric' }, inputLabel: { shrink: true } }}
              />
            ))}
          </Box>
        </CardContent>
      </Card>
      <Card variant="outlined">
        <CardContent>
          <Typography variant="h2" component="h2" sx={{ mb: 2 }}>
            Network
          </Typography>
          <TextField
            label="Egress allowed to"
            value={egress}
            onChange={(e) => setEgress(e.target.value)}
            multiline
            minRows={2}
            fullWidth
            disabled={!platformAdmin}
            helperText={
              platformAdmin
                ? "Networks (CIDRs) every session of the organization may reach although the platform's deny list covers them, one per line"
                : 'Set by the platform administrators.'
            }
            slotProps={{ inputLabel: { shrink: true } }}
          />
        </CardContent>
      </Card>
      <div>
        <Button type="submit" variant="contained" disabled={update.isPending}>
          {update.isPending ? 'Saving…' : 'Save settings'}
        </Button>
      </div>
    </Stack>
  );
}

export function OrgSettingsPage() {
  const me = useUser();
  const isPlatform = me.role === 'platform_admin';
  const [params, setParams] = useSearchParams();
  const orgId = (isPlatform ? params.get('org') : null) ?? me.org_id;
  const org = useQuery(getOrgQueryOptions(orgId));
  const orgs = useQuery({ ...getOrgsQueryOptions(), enabled: isPlatform });

  return (
    <Box sx={{ maxWidth: 760 }}>
      <PageHeader title="Organization settings" subtitle={org.data?.name} />
      {isPlatform && orgs.data ? (
        <TextField
          select
          label="Organization"
          value={orgs.data.items.some((o) => o.id === orgId) ? orgId : ''}
          onChange={(e) => setParams({ org: e.target.value }, { replace: true })}
          sx={{ minWidth: 260, mb: 2 }}
          size="small"
        >
          {orgs.data.items.map((o) => (
            <MenuItem key={o.id} value={o.id}>
              {o.name}
            </MenuItem>
          ))}
        </TextField>
      ) : null}
      <ErrorAlert error={org.error} onRetry={() => void org.refetch()} />
      {org.data ? (
        <>
          <SettingsForm key={JSON.stringify(org.data)} org={org.data} platformAdmin={isPlatform} />
          <ComplianceSettingsCard orgId={org.data.id} platformAdmin={isPlatform} />
          <Card variant="outlined" sx={{ mt: 3 }}>
            <CardContent>
              <Typography variant="h2" component="h2" sx={{ mb: 1 }}>
                Identity providers
              </Typography>
              <Typography variant="body2" color="text.secondary" sx={{ mb: 2 }}>
                Single sign-on: users sign in through your identity provider, accounts are created on their first sign-in.
              </Typography>
              <IdentityProvidersSection orgId={org.data.id} orgName={org.data.name} platformAdmin={isPlatform} />
            </CardContent>
          </Card>
        </>
      ) : org.isPending ? (
        <Skeleton variant="rounded" height={320} />
      ) : null}
      <Stack spacing={3} sx={{ mt: 3 }}>
        <AllowListCard key={orgId} orgId={orgId} title="IP allow-list" description="Networks the organization's users may sign in, use the API and reach their sessions from." />
        {isPlatform ? (
          <AllowListCard orgId={null} title="Platform IP allow-list" description="Networks everyone, in every organization, must come from." />
        ) : null}
      </Stack>
    </Box>
  );
}
