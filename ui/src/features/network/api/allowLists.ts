import { queryOptions, useMutation, useQueryClient } from '@tanstack/react-query';
import { api } from '@/lib/api';
import type { AllowListRequest, AllowListView } from '@/types/api';

/** The platform's list (`null`) or one org's. */
export type AllowListOwner = { orgId: string | null };

export const allowListPath = ({ orgId }: AllowListOwner): string =>
  orgId === null ? '/network/allow-list' : `/orgs/${encodeURIComponent(orgId)}/allow-list`;

export const allowListKeys = {
  detail: (owner: AllowListOwner) => ['allow-list', owner.orgId ?? 'platform'] as const,
};

export const getAllowListQueryOptions = (owner: AllowListOwner) =>
  queryOptions({
    queryKey: allowListKeys.detail(owner),
    queryFn: ({ signal }) => api.get<AllowListView>(allowListPath(owner), undefined, signal),
  });

export function useSaveAllowList(owner: AllowListOwner) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: AllowListRequest) => api.put<AllowListView>(allowListPath(owner), body),
    onSuccess: (saved) => qc.setQueryData(allowListKeys.detail(owner), saved),
  });
}
