import { queryOptions, useMutation, useQueryClient } from '@tanstack/react-query';
import { api } from '@/lib/api';
import type { ApiKey, CreatedApiKey, Home, ListResponse, Me, MfaEnrollment } from '@/types/api';

export const accountKeys = {
  me: ['me'] as const,
  apiKeys: ['me', 'api-keys'] as const,
  homes: ['me', 'homes'] as const,
};

export const getHomesQueryOptions = () =>
  queryOptions({
    queryKey: accountKeys.homes,
    queryFn: ({ signal }) => api.listAll<Home>('/me/homes', {}, signal),
  });

/** Deletes the home with everything in it; the next session that needs it starts with an empty one. */
export function useResetHome() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => api.post<void>(`/me/homes/${encodeURIComponent(id)}/reset`),
    onSuccess: () => qc.invalidateQueries({ queryKey: accountKeys.homes }),
  });
}

export const getMeQueryOptions = () =>
  queryOptions({
    queryKey: accountKeys.me,
    queryFn: ({ signal }) => api.get<Me>('/me', undefined, signal),
    staleTime: 60_000,
  });

export const getApiKeysQueryOptions = () =>
  queryOptions({
    queryKey: accountKeys.apiKeys,
    queryFn: ({ signal }) => api.listAll<ApiKey>('/me/api-keys', {}, signal),
  });

export function useChangePassword() {
  return useMutation({
    mutationFn: (body: { current_password: string; new_password: string }) => api.post<void>('/me/password', body),
  });
}

export function useEnrollMfa() {
  return useMutation({ mutationFn: () => api.post<MfaEnrollment>('/me/mfa/enroll') });
}

export function useConfirmMfa() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (code: string) => api.post<{ recovery_codes: string[] }>('/me/mfa/confirm', { code }),
    onSuccess: () => qc.invalidateQueries({ queryKey: accountKeys.me, exact: true }),
  });
}

export function useDisableMfa() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (code: string) => api.post<void>('/me/mfa/disable', { code }),
    onSuccess: () => qc.invalidateQueries({ queryKey: accountKeys.me, exact: true }),
  });
}

export function useCreateApiKey() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (name: string) => api.post<CreatedApiKey>('/me/api-keys', { name }),
    onSuccess: () => qc.invalidateQueries({ queryKey: accountKeys.apiKeys }),
  });
}

export function useRevokeApiKey() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => api.delete(`/me/api-keys/${encodeURIComponent(id)}`),
    onSuccess: (_v, id) =>
      qc.setQueryData<ListResponse<ApiKey>>(accountKeys.apiKeys, (old) =>
        old ? { ...old, items: old.items.filter((k) => k.id !== id) } : old,
      ),
  });
}
