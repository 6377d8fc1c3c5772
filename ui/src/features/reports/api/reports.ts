import { queryOptions, useMutation, useQueryClient } from '@tanstack/react-query';
import { api } from '@/lib/api';
import { downloadWithAuth } from '@/lib/download';
import type { ComplianceReport, ComplianceSettings, ComplianceSettingsUpdate } from '@/types/api';

/** A report period: RFC 3339 instants, `to` exclusive. */
export interface Period {
  from: string;
  to: string;
}

export type PeriodPreset = 'last7' | 'last30' | 'previousMonth' | 'custom';

function utcMidnight(d: Date): Date {
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
}

const DAY_MS = 86_400_000;

/** The period a preset names at `now`: whole UTC days up to today's midnight, or the previous calendar month. */
export function presetPeriod(preset: Exclude<PeriodPreset, 'custom'>, now: Date): Period {
  const today = utcMidnight(now);
  if (preset === 'previousMonth') {
    const from = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth() - 1, 1));
    const to = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), 1));
    return { from: from.toISOString(), to: to.toISOString() };
  }
  const days = preset === 'last7' ? 7 : 30;
  return { from: new Date(today.getTime() - days * DAY_MS).toISOString(), to: today.toISOString() };
}

/** `from`/`to` date inputs (`YYYY-MM-DD`, UTC days, both included) as a period; null when incomplete or backwards. */
export function datesPeriod(fromDate: string, toDate: string): Period | null {
  const from = Date.parse(`${fromDate}T00:00:00Z`);
  const to = Date.parse(`${toDate}T00:00:00Z`);
  if (Number.isNaN(from) || Number.isNaN(to) || to < from) return null;
  return { from: new Date(from).toISOString(), to: new Date(to + DAY_MS).toISOString() };
}

/** The share of users enrolled in MFA, in whole percent (100 for an org without users). */
export function mfaPercent(users: number, enrolled: number): number {
  return users === 0 ? 100 : Math.floor((enrolled * 100) / users);
}

const reportPath = (orgId: string) => `/orgs/${encodeURIComponent(orgId)}/reports/compliance`;
const settingsPath = (orgId: string) => `/orgs/${encodeURIComponent(orgId)}/reports/settings`;

export const reportKeys = {
  report: (orgId: string, period: Period) => ['reports', 'compliance', orgId, period.from, period.to] as const,
  settings: (orgId: string) => ['reports', 'settings', orgId] as const,
};

export const getComplianceReportQueryOptions = (orgId: string, period: Period) =>
  queryOptions({
    queryKey: reportKeys.report(orgId, period),
    queryFn: ({ signal }) => api.get<ComplianceReport>(reportPath(orgId), { ...period, format: 'json' }, signal),
  });

export function downloadReportCsv(orgId: string, period: Period): Promise<void> {
  return downloadWithAuth(reportPath(orgId), { ...period, format: 'csv' }, 'compliance-report.csv');
}

/** The JSON the page already holds, saved as a file. */
export function downloadReportJson(report: ComplianceReport): void {
  const blob = new Blob([JSON.stringify(report, null, 2)], { type: 'application/json' });
  const url = URL.createObjectURL(blob);
  try {
    const a = document.createElement('a');
    a.href = url;
    a.download = `compliance-${report.org_name}-${report.from.slice(0, 10)}-${report.to.slice(0, 10)}.json`;
    document.body.appendChild(a);
    a.click();
    a.remove();
  } finally {
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }
}

export const getComplianceSettingsQueryOptions = (orgId: string) =>
  queryOptions({
    queryKey: reportKeys.settings(orgId),
    queryFn: ({ signal }) => api.get<ComplianceSettings>(settingsPath(orgId), undefined, signal),
  });

export function useUpdateComplianceSettings(orgId: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: ComplianceSettingsUpdate) => api.put<ComplianceSettings>(settingsPath(orgId), body),
    onSuccess: (view) => qc.setQueryData(reportKeys.settings(orgId), view),
  });
}

/** What the settings form holds, as text. */
export interface SettingsForm {
  retentionDays: string;
  schedule: '' | 'daily' | 'weekly' | 'monthly';
  destination: '' | 'directory' | 'webhook';
  webhookUrl: string;
  /** Empty keeps the stored secret. */
  webhookSecret: string;
}

export function settingsForm(view: ComplianceSettings): SettingsForm {
  return {
    retentionDays: view.retention_days?.toString() ?? '',
    schedule: view.schedule ?? '',
    destination: view.destination ?? '',
    webhookUrl: view.webhook_url ?? '',
    webhookSecret: '',
  };
}

/**
 * The PUT body for the form, or an error for the person. The retention is sent as stored unless a platform
 * admin changed it (the API refuses anyone else's change); an empty secret is left out so the stored one stays.
 */
export function settingsUpdate(
  form: SettingsForm,
  view: ComplianceSettings,
  platformAdmin: boolean,
): { body?: ComplianceSettingsUpdate; error?: string } {
  let retention = view.retention_days ?? null;
  if (platformAdmin) {
    const raw = form.retentionDays.trim();
    if (raw && (!/^\d+$/.test(raw) || Number(raw) < 1)) return { error: 'Retention: a whole number of days, or empty to keep events forever' };
    retention = raw ? Number(raw) : null;
  }
  const webhook = form.destination === 'webhook';
  const body: ComplianceSettingsUpdate = {
    retention_days: retention,
    schedule: form.schedule || null,
    destination: form.schedule ? form.destination || null : null,
    webhook_url: webhook ? form.webhookUrl.trim() || null : null,
  };
  if (webhook && form.webhookSecret) body.webhook_secret = form.webhookSecret;
  return { body };
}
