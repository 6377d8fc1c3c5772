import { queryOptions, useMutation, useQueryClient } from '@tanstack/react-query';
import { api } from '@/lib/api';
import type { Home } from '@/types/api';

export const homeKeys = {
  all: ['homes'] as const,
};

/** Every home in the administrator's scope, with its used space as its agent last measured it. */
export const getAllHomesQueryOptions = () =>
  queryOptions({
    queryKey: homeKeys.all,
    queryFn: ({ signal }) => api.listAll<Home>('/homes', {}, signal),
    // Agents measure about once a minute; refetching more often would show nothing new.
    refetchInterval: 60_000,
  });

export function useDeleteHome() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => api.delete(`/homes/${encodeURIComponent(id)}`),
    onSuccess: () => qc.invalidateQueries({ queryKey: homeKeys.all }),
  });
}
