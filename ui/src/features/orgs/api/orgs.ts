import { queryOptions, useMutation, useQueryClient } from '@tanstack/react-query';
import { api } from '@/lib/api';
import type { Organization, OrgPatch } from '@/types/api';

export const orgKeys = {
  all: ['orgs'] as const,
  lists: () => ['orgs', 'list'] as const,
  detail: (id: string) => ['orgs', 'detail', id] as const,
};

export const getOrgsQueryOptions = () =>
  queryOptions({
    queryKey: orgKeys.lists(),
    queryFn: ({ signal }) => api.listAll<Organization>('/orgs', {}, signal),
  });

export const getOrgQueryOptions = (id: string) =>
  queryOptions({
    queryKey: orgKeys.detail(id),
    queryFn: ({ signal }) => api.get<Organization>(`/orgs/${encodeURIComponent(id)}`, undefined, signal),
  });

export function useCreateOrg() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: { name: string }) => api.post<Organization>('/orgs', body),
    onSuccess: () => qc.invalidateQueries({ queryKey: orgKeys.all }),
  });
}

export function useUpdateOrg() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ id, patch }: { id: string; patch: OrgPatch }) =>
      api.patch<Organization>(`/orgs/${encodeURIComponent(id)}`, patch),
    onSuccess: (org) => {
      qc.setQueryData(orgKeys.detail(org.id), org);
      void qc.invalidateQueries({ queryKey: orgKeys.lists() });
    },
  });
}

export function useDeleteOrg() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => api.delete(`/orgs/${encodeURIComponent(id)}`),
    onSuccess: () => qc.invalidateQueries({ queryKey: orgKeys.all }),
  });
}
