import { queryOptions, useMutation, useQueryClient } from '@tanstack/react-query';
import { api } from '@/lib/api';
import type { CreatedShare, JoinedShare, NewShareRequest, SessionShares, SharedSession } from '@/types/api';

export const shareKeys = {
  all: ['shares'] as const,
  session: (id: string) => ['shares', 'session', id] as const,
  sharedWithMe: () => ['shares', 'shared-with-me'] as const,
};

const sharesPath = (id: string) => `/sessions/${encodeURIComponent(id)}/shares`;

/** The session's shares and who watches it now; polled, since guests come and go. */
export const getSharesQueryOptions = (id: string) =>
  queryOptions({
    queryKey: shareKeys.session(id),
    queryFn: ({ signal }) => api.get<SessionShares>(sharesPath(id), undefined, signal),
    refetchInterval: 5000,
  });

export const getSharedSessionsQueryOptions = () =>
  queryOptions({
    queryKey: shareKeys.sharedWithMe(),
    queryFn: ({ signal }) => api.get<SharedSession[]>('/shared-sessions', undefined, signal),
  });

function useShareMutation<V, R>(id: string, fn: (v: V) => Promise<R>) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: fn,
    onSuccess: () => qc.invalidateQueries({ queryKey: shareKeys.session(id) }),
  });
}

export function useCreateShare(id: string) {
  return useShareMutation(id, (body: NewShareRequest) => api.post<CreatedShare>(sharesPath(id), body));
}

export function useRevokeShare(id: string) {
  return useShareMutation(id, (shareId: string) => api.delete(`${sharesPath(id)}/${encodeURIComponent(shareId)}`));
}

export function joinShare(token: string): Promise<JoinedShare> {
  return api.post<JoinedShare>('/shares/join', { token });
}
