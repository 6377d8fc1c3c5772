import { queryOptions, useMutation, useQueryClient } from '@tanstack/react-query';
import { api, isApiError } from '@/lib/api';
import type { Pool, PoolRequest, Template } from '@/types/api';
import { templateKeys } from './templates';

/** The server's bound (`MAX_POOL_SIZE`): more warm containers per agent is a typo, not a plan. */
export const MAX_POOL_SIZE = 20;
/** How often the pools overview asks again: members start and get claimed all the time. */
export const POOLS_REFRESH_MS = 5000;
/** The 409 of `PUT /templates/{id}/pool` when the template's sessions mount a persistent home. */
export const TEMPLATE_KEEPS_HOME = 'template_keeps_home';

export const poolKeys = {
  all: ['pools'] as const,
  lists: () => ['pools', 'list'] as const,
};

/** The pools of the templates the caller may manage, with what is warm on each agent. */
export const getPoolsQueryOptions = () =>
  queryOptions({
    queryKey: poolKeys.lists(),
    queryFn: ({ signal }) => api.get<Pool[]>('/pools', undefined, signal),
  });

/**
 * A warm container cannot mount the home of a user it does not know yet, so the server refuses a
 * pool to a template that keeps one (ADR 0034).
 */
export function keepsHome(t: Template): boolean {
  return t.home.scope !== 'none';
}

/**
 * Why the control plane keeps no member of the template's pool although its size is kept (ADR 0034),
 * or null when the pool serves launches.
 */
export function pausedBecause(t: Template): string | null {
  if (keepsHome(t)) return 'its sessions keep a home';
  if (!t.enabled) return 'the template is disabled';
  return null;
}

/** The pools worth showing: a size set, or members still there (a removed pool's, being stopped). */
export function activePools(pools: Pool[]): Pool[] {
  return pools.filter((p) => p.size > 0 || p.agents.length > 0);
}

/** The size set for the template: 0 when it has no pool, undefined while the pools are unknown. */
export function poolSizeOf(pools: Pool[] | undefined, templateId: string): number | undefined {
  if (!pools) return undefined;
  return pools.find((p) => p.template_id === templateId)?.size ?? 0;
}

export function describePoolSize(size: number): string {
  return size === 0 ? 'Off' : `${size} per agent`;
}

export function useSetPool() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ templateId, ...body }: PoolRequest & { templateId: string }) =>
      api.put<Pool>(`/templates/${encodeURIComponent(templateId)}/pool`, body),
    onSuccess: () => qc.invalidateQueries({ queryKey: poolKeys.all }),
    // Someone made the template keep a home since the list was loaded: show it as it is now.
    onError: (err) => {
      if (isApiError(err, TEMPLATE_KEEPS_HOME)) void qc.invalidateQueries({ queryKey: templateKeys.all });
    },
  });
}

export type PoolFormValues = { size: string };

export function validatePoolSize(v: PoolFormValues): Partial<Record<keyof PoolFormValues, string>> {
  const raw = v.size.trim();
  if (!/^\d+$/.test(raw) || Number(raw) > MAX_POOL_SIZE) {
    return { size: `A whole number from 0 to ${MAX_POOL_SIZE}` };
  }
  return {};
}
