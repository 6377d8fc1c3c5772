import { queryOptions } from '@tanstack/react-query';
import { api, isApiError } from '@/lib/api';
import type { Stats } from '@/types/api';

/** `null` when the server has no `/stats` endpoint (404): the dashboard then hides the chart. */
export const getStatsQueryOptions = () =>
  queryOptions({
    queryKey: ['stats'] as const,
    queryFn: async ({ signal }): Promise<Stats | null> => {
      try {
        return await api.get<Stats>('/stats', undefined, signal);
      } catch (e) {
        if (isApiError(e) && (e.status === 404 || e.status === 501)) return null;
        throw e;
      }
    },
    // No endpoint: no point asking every 30 s.
    refetchInterval: (q) => (q.state.data === null ? false : 30_000),
  });
