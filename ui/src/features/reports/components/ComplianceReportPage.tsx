import { useState, type ReactNode } from 'react';
import { useSearchParams } from 'react-router';
import { useQuery } from '@tanstack/react-query';
import {
  Alert,
  Box,
  Button,
  Card,
  CardContent,
  Chip,
  GlobalStyles,
  MenuItem,
  Skeleton,
  Stack,
  Table,
  TableBody,
  TableCell,
  TableHead,
  TableRow,
  TextField,
  Typography,
} from '@mui/material';
import DownloadIcon from '@mui/icons-material/Download';
import PrintIcon from '@mui/icons-material/Print';
import { PageHeader } from '@/components/PageHeader';
import { ErrorAlert } from '@/components/ErrorAlert';
import { useFeedback } from '@/components/feedback';
import { errorMessage } from '@/lib/api';
import { useUser } from '@/lib/auth';
import { formatDateTime, formatDuration } from '@/lib/format';
import type { ActionEntry, ComplianceReport } from '@/types/api';
import { getOrgsQueryOptions } from '@/features/orgs';
import {
  type Period,
  type PeriodPreset,
  datesPeriod,
  downloadReportCsv,
  downloadReportJson,
  getComplianceReportQueryOptions,
  mfaPercent,
  presetPeriod,
} from '../api/reports';

/** On paper: no navigation, no controls, the sections one after the other without shadows. */
const printStyles = (
  <GlobalStyles
    styles={{
      '@media print': {
        'header, nav, .MuiDrawer-root, .no-print': { display: 'none !important' },
        main: { margin: '0 !important', padding: '0 !important', width: '100% !important' },
        '.report-section': { breakInside: 'avoid', boxShadow: 'none !important', border: '1px solid #999 !important' },
        body: { background: '#fff !important' },
      },
    }}
  />
);

const PRESETS: { value: PeriodPreset; label: string }[] = [
  { value: 'last7', label: 'Last 7 days' },
  { value: 'last30', label: 'Last 30 days' },
  { value: 'previousMonth', label: 'Previous month' },
  { value: 'custom', label: 'Custom dates' },
];

function Section({ title, children }: { title: string; children: ReactNode }) {
  return (
    <Card variant="outlined" className="report-section">
      <CardContent>
        <Typography variant="h2" component="h2" sx={{ mb: 1.5 }}>
          {title}
        </Typography>
        {children}
      </CardContent>
    </Card>
  );
}

function Figures({ items }: { items: [string, ReactNode][] }) {
  return (
    <Box sx={{ display: 'grid', gridTemplateColumns: { xs: '1fr 1fr', sm: 'repeat(4, 1fr)' }, gap: 2 }}>
      {items.map(([label, value]) => (
        <div key={label}>
          <Typography variant="body2" color="text.secondary">
            {label}
          </Typography>
          <Typography variant="h3" component="p">
            {value}
          </Typography>
        </div>
      ))}
    </Box>
  );
}

function ActionTable({ entries, empty }: { entries: ActionEntry[]; empty: string }) {
  if (entries.length === 0) return <Typography color="text.secondary">{empty}</Typography>;
  return (
    <Table size="small">
      <TableHead>
        <TableRow>
          <TableCell>Time</TableCell>
          <TableCell>Actor</TableCell>
          <TableCell>Action</TableCell>
          <TableCell>Target</TableCell>
          <TableCell>Result</TableCell>
        </TableRow>
      </TableHead>
      <TableBody>
        {entries.map((e) => (
          <TableRow key={e.seq}>
            <TableCell>{formatDateTime(e.time)}</TableCell>
            <TableCell>{e.actor}</TableCell>
            <TableCell>{e.action}</TableCell>
            <TableCell sx={{ wordBreak: 'break-all' }}>{e.target}</TableCell>
            <TableCell>{e.result}</TableCell>
          </TableRow>
        ))}
      </TableBody>
    </Table>
  );
}

function ReportView({ report }: { report: ComplianceReport }) {
  const { sign_ins: signIns, mfa, chain } = report;
  const reasons = Object.entries(signIns.failures_by_reason);
  return (
    <Stack spacing={2}>
      <Typography variant="body2" color="text.secondary">
        {report.org_name}: {formatDateTime(report.from)} to {formatDateTime(report.to)}, generated {formatDateTime(report.generated_at)}
      </Typography>
      <Section title="Sign-ins">
        <Figures
          items={[
            ['Successful', signIns.successes],
            ['Failed', signIns.failures],
            ['Lockouts', signIns.lockouts],
          ]}
        />
        {reasons.length ? (
          <Table size="small" sx={{ mt: 2 }} aria-label="Failures by reason">
            <TableHead>
              <TableRow>
                <TableCell>Failure reason</TableCell>
                <TableCell align="right">Count</TableCell>
              </TableRow>
            </TableHead>
            <TableBody>
              {reasons.map(([reason, count]) => (
                <TableRow key={reason}>
                  <TableCell>{reason}</TableCell>
                  <TableCell align="right">{count}</TableCell>
                </TableRow>
              ))}
            </TableBody>
          </Table>
        ) : null}
      </Section>
      <Section title="MFA coverage">
        <Figures
          items={[
            ['Required by the organization', mfa.required ? 'Yes' : 'No'],
            ['Active users', mfa.users],
            ['Enrolled', `${mfa.enrolled} (${mfaPercent(mfa.users, mfa.enrolled)}%)`],
            ['Not enrolled', mfa.not_enrolled.length],
          ]}
        />
        {mfa.not_enrolled.length ? (
          <Typography sx={{ mt: 2 }}>
            Without a second factor: {mfa.not_enrolled.map((u) => `${u.username} (${u.role})`).join(', ')}
          </Typography>
        ) : null}
      </Section>
      <Section title="Privileged actions">
        <ActionTable entries={report.privileged_actions} empty="No privileged actions in this period." />
      </Section>
      <Section title="Policy changes">
        <ActionTable entries={report.policy_changes} empty="No policy changes in this period." />
      </Section>
      <Section title="Session access">
        {report.session_access.length === 0 ? (
          <Typography color="text.secondary">Nobody opened a session in this period.</Typography>
        ) : (
          <Table size="small">
            <TableHead>
              <TableRow>
                <TableCell>User</TableCell>
                <TableCell>Session</TableCell>
                <TableCell>Opened</TableCell>
                <TableCell>Closed</TableCell>
                <TableCell>Duration</TableCell>
                <TableCell>Address</TableCell>
              </TableRow>
            </TableHead>
            <TableBody>
              {report.session_access.map((v) => (
                <TableRow key={`${v.session_id}-${v.user}-${v.opened_at}`}>
                  <TableCell>{v.user}</TableCell>
                  <TableCell sx={{ wordBreak: 'break-all' }}>{v.session_id}</TableCell>
                  <TableCell>{formatDateTime(v.opened_at)}</TableCell>
                  <TableCell>{v.closed_at ? formatDateTime(v.closed_at) : 'still open'}</TableCell>
                  <TableCell>{formatDuration(v.duration_secs ?? null)}</TableCell>
                  <TableCell>{v.client_ip ?? '—'}</TableCell>
                </TableRow>
              ))}
            </TableBody>
          </Table>
        )}
      </Section>
      <Section title="Audit chain">
        <Stack direction="row" spacing={1} sx={{ mb: 1.5, alignItems: 'center' }}>
          <Chip color={chain.intact ? 'success' : 'error'} label={chain.intact ? 'Verified intact' : 'Verification failed'} />
        </Stack>
        {chain.fault ? <Alert severity="error">{chain.fault}</Alert> : null}
        <Figures
          items={[
            ['Events verified', chain.events_verified],
            ['Events in the period', chain.events_in_period],
          ]}
        />
        <Typography variant="body2" sx={{ mt: 1.5, wordBreak: 'break-all' }}>
          Chain head (record it elsewhere): <code>{chain.head}</code>
        </Typography>
      </Section>
    </Stack>
  );
}

export function ComplianceReportPage() {
  const me = useUser();
  const isPlatform = me.role === 'platform_admin';
  const [params, setParams] = useSearchParams();
  const orgId = (isPlatform ? params.get('org') : null) ?? me.org_id;
  const orgs = useQuery({ ...getOrgsQueryOptions(), enabled: isPlatform });
  const [preset, setPreset] = useState<PeriodPreset>('last7');
  const [fromDate, setFromDate] = useState('');
  const [toDate, setToDate] = useState('');
  const period: Period | null = preset === 'custom' ? datesPeriod(fromDate, toDate) : presetPeriod(preset, new Date());
  const report = useQuery({
    ...getComplianceReportQueryOptions(orgId, period ?? { from: '', to: '' }),
    enabled: period !== null,
  });
  const { notify } = useFeedback();

  const downloadCsv = async () => {
    if (!period) return;
    try {
      await downloadReportCsv(orgId, period);
    } catch (e) {
      notify(`Download failed: ${errorMessage(e)}`, 'error');
    }
  };

  return (
    <Box sx={{ maxWidth: 1000 }}>
      {printStyles}
      <PageHeader title="Compliance report" />
      <Stack direction={{ xs: 'column', sm: 'row' }} spacing={2} sx={{ mb: 2, flexWrap: 'wrap' }} className="no-print">
        {isPlatform && orgs.data ? (
          <TextField
            select
            size="small"
            label="Organization"
            value={orgs.data.items.some((o) => o.id === orgId) ? orgId : ''}
            onChange={(e) => setParams({ org: e.target.value }, { replace: true })}
            sx={{ minWidth: 200 }}
          >
            {orgs.data.items.map((o) => (
              <MenuItem key={o.id} value={o.id}>
                {o.name}
              </MenuItem>
            ))}
          </TextField>
        ) : null}
        <TextField select size="small" label="Period" value={preset} onChange={(e) => setPreset(e.target.value as PeriodPreset)} sx={{ minWidth: 180 }}>
          {PRESETS.map((p) => (
            <MenuItem key={p.value} value={p.value}>
              {p.label}
            </MenuItem>
          ))}
        </TextField>
        {preset === 'custom' ? (
          <>
            <TextField size="small" type="date" label="From (UTC)" value={fromDate} onChange={(e) => setFromDate(e.target.value)} slotProps={{ inputLabel: { shrink: true } }} />
            <TextField size="small" type="date" label="To (UTC, included)" value={toDate} onChange={(e) => setToDate(e.target.value)} slotProps={{ inputLabel: { shrink: true } }} />
          </>
        ) : null}
        <Button startIcon={<PrintIcon />} onClick={() => window.print()} disabled={!report.data}>
          Print
        </Button>
        <Button startIcon={<DownloadIcon />} onClick={() => void downloadCsv()} disabled={!report.data}>
          CSV
        </Button>
        <Button startIcon={<DownloadIcon />} onClick={() => report.data && downloadReportJson(report.data)} disabled={!report.data}>
          JSON
        </Button>
      </Stack>
      {period === null ? <Alert severity="info">Pick the first and the last day of the period.</Alert> : null}
      <ErrorAlert error={report.error} onRetry={() => void report.refetch()} />
      {report.data ? <ReportView report={report.data} /> : report.isFetching ? <Skeleton variant="rounded" height={400} /> : null}
    </Box>
  );
}
