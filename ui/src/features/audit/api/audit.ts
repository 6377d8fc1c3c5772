import { infiniteQueryOptions } from '@tanstack/react-query';
import { api, type Query } from '@/lib/api';
import { downloadWithAuth } from '@/lib/download';
import type { AuditEvent, ListResponse } from '@/types/api';

export interface AuditFilters {
  actor: string;
  action: string;
  target: string;
  result: string;
  /** `datetime-local` input values (local time), converted to RFC 3339 for the API. */
  since: string;
  until: string;
  q: string;
}

export const EMPTY_AUDIT_FILTERS: AuditFilters = {
  actor: '',
  action: '',
  target: '',
  result: '',
  since: '',
  until: '',
  q: '',
};

function localToIso(v: string): string | undefined {
  if (!v) return undefined;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

export function auditQuery(f: AuditFilters): Query {
  return {
    actor: f.actor.trim(),
    action: f.action.trim(),
    target: f.target.trim(),
    result: f.result,
    since: localToIso(f.since),
    until: localToIso(f.until),
    q: f.q.trim(),
  };
}

export const auditKeys = {
  all: ['audit'] as const,
  list: (f: AuditFilters) => ['audit', 'list', f] as const,
};

export const getAuditInfiniteQueryOptions = (f: AuditFilters) =>
  infiniteQueryOptions({
    queryKey: auditKeys.list(f),
    queryFn: ({ pageParam, signal }) =>
      api.list<AuditEvent>('/audit', { ...auditQuery(f), format: 'json', limit: 100, cursor: pageParam }, signal),
    initialPageParam: null as string | null,
    getNextPageParam: (last: ListResponse<AuditEvent>) => last.next_cursor,
  });

export function exportAuditCsv(f: AuditFilters): Promise<void> {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return downloadWithAuth('/audit', { ...auditQuery(f), format: 'csv' }, `streamspace-audit-${stamp}.csv`);
}
