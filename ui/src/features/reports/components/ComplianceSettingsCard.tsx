import { useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import { Alert, Box, Button, Card, CardContent, MenuItem, Skeleton, Stack, TextField, Typography } from '@mui/material';
import { ErrorAlert } from '@/components/ErrorAlert';
import { useFeedback } from '@/components/feedback';
import { errorMessage } from '@/lib/api';
import { formatDateTime } from '@/lib/format';
import type { ComplianceSettings } from '@/types/api';
import {
  type SettingsForm,
  getComplianceSettingsQueryOptions,
  settingsForm,
  settingsUpdate,
  useUpdateComplianceSettings,
} from '../api/reports';

function DeliveryStatus({ view }: { view: ComplianceSettings }) {
  if (view.last_error) {
    const retry = view.next_attempt_at ? ` Next attempt ${formatDateTime(view.next_attempt_at)}.` : '';
    return <Alert severity="warning">Last delivery failed: {view.last_error}.{retry}</Alert>;
  }
  if (view.delivered_until) {
    return (
      <Typography variant="body2" color="text.secondary">
        Delivered up to {formatDateTime(view.delivered_until)}.
      </Typography>
    );
  }
  return null;
}

function Form({ orgId, view, platformAdmin }: { orgId: string; view: ComplianceSettings; platformAdmin: boolean }) {
  const update = useUpdateComplianceSettings(orgId);
  const { notify } = useFeedback();
  const [form, setForm] = useState<SettingsForm>(settingsForm(view));
  const [error, setError] = useState<string | null>(null);
  const set = (key: keyof SettingsForm) => (e: { target: { value: string } }) => setForm((f) => ({ ...f, [key]: e.target.value }));

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const { body, error: invalid } = settingsUpdate(form, view, platformAdmin);
    if (!body) {
      setError(invalid ?? null);
      return;
    }
    setError(null);
    update.mutate(body, {
      onSuccess: () => {
        setForm((f) => ({ ...f, webhookSecret: '' }));
        notify('Report settings saved');
      },
      onError: (err) => setError(errorMessage(err)),
    });
  };

  return (
    <Stack component="form" spacing={2} onSubmit={submit} noValidate aria-label="Audit retention and reports">
      {error ? <Alert severity="error">{error}</Alert> : null}
      <TextField
        label="Keep audit events (days)"
        value={form.retentionDays}
        onChange={set('retentionDays')}
        placeholder="forever"
        disabled={!platformAdmin}
        helperText={
          platformAdmin
            ? 'Empty keeps them forever. Older events are removed behind a signed checkpoint, so the chain still verifies.'
            : 'Set by the platform administrators.'
        }
        slotProps={{ htmlInput: { inputMode: 'numeric' }, inputLabel: { shrink: true } }}
      />
      <Box sx={{ display: 'grid', gap: 2, gridTemplateColumns: { xs: '1fr', sm: '1fr 1fr' } }}>
        <TextField select label="Deliver the compliance report" value={form.schedule} onChange={set('schedule')}>
          <MenuItem value="">Never</MenuItem>
          <MenuItem value="daily">Daily</MenuItem>
          <MenuItem value="weekly">Weekly (Monday to Sunday)</MenuItem>
          <MenuItem value="monthly">Monthly</MenuItem>
        </TextField>
        <TextField select label="To" value={form.destination} onChange={set('destination')} disabled={!form.schedule}>
          <MenuItem value="directory" disabled={!view.directory_available}>
            The platform&apos;s report directory{view.directory_available ? '' : ' (not configured)'}
          </MenuItem>
          <MenuItem value="webhook">A webhook</MenuItem>
        </TextField>
      </Box>
      {form.schedule && form.destination === 'webhook' ? (
        <>
          <TextField label="Webhook URL" value={form.webhookUrl} onChange={set('webhookUrl')} placeholder="http://" fullWidth />
          <TextField
            label="Webhook secret"
            type="password"
            autoComplete="new-password"
            value={form.webhookSecret}
            onChange={set('webhookSecret')}
            placeholder={view.has_webhook_secret ? 'unchanged' : ''}
            helperText="Signs each delivery (X-StreamSpace-Signature); at least 16 characters. It is never shown again."
            slotProps={{ inputLabel: { shrink: true } }}
          />
        </>
      ) : null}
      <DeliveryStatus view={view} />
      <div>
        <Button type="submit" variant="contained" disabled={update.isPending}>
          {update.isPending ? 'Saving…' : 'Save report settings'}
        </Button>
      </div>
    </Stack>
  );
}

/** Retention and scheduled delivery of the org's compliance report; a form of its own beside the org's settings. */
export function ComplianceSettingsCard({ orgId, platformAdmin }: { orgId: string; platformAdmin: boolean }) {
  const settings = useQuery(getComplianceSettingsQueryOptions(orgId));
  return (
    <Card variant="outlined" sx={{ mt: 3 }}>
      <CardContent>
        <Typography variant="h2" component="h2" sx={{ mb: 2 }}>
          Audit retention and reports
        </Typography>
        <ErrorAlert error={settings.error} onRetry={() => void settings.refetch()} />
        {settings.data ? (
          <Form key={JSON.stringify(settings.data)} orgId={orgId} view={settings.data} platformAdmin={platformAdmin} />
        ) : settings.isPending ? (
          <Skeleton variant="rounded" height={160} />
        ) : null}
      </CardContent>
    </Card>
  );
}
