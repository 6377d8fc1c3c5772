import { queryOptions, useMutation, useQueryClient, type QueryClient } from '@tanstack/react-query';
import { api } from '@/lib/api';
import { applyLiveItem } from '@/lib/cache';
import type { ConnectUrl, ListResponse, Session, SessionState } from '@/types/api';

export interface SessionFilters {
  state?: SessionState | '';
  owner_id?: string;
}

export const sessionKeys = {
  all: ['sessions'] as const,
  lists: () => ['sessions', 'list'] as const,
  list: (filters: SessionFilters) => ['sessions', 'list', filters] as const,
  detail: (id: string) => ['sessions', 'detail', id] as const,
  connect: (id: string, generation: string) => ['sessions', 'connect', id, generation] as const,
};

export const ACTIVE_STATES: readonly SessionState[] = [
  'pending',
  'scheduled',
  'starting',
  'running',
  'hibernating',
  'hibernated',
  'stopping',
];
export const STARTING_STATES: readonly SessionState[] = ['pending', 'scheduled', 'starting'];

export const getSessionsQueryOptions = (filters: SessionFilters = {}) =>
  queryOptions({
    queryKey: sessionKeys.list(filters),
    queryFn: ({ signal }) =>
      api.listAll<Session>('/sessions', { state: filters.state, owner_id: filters.owner_id }, signal),
  });

export const getSessionQueryOptions = (id: string) =>
  queryOptions({
    queryKey: sessionKeys.detail(id),
    queryFn: ({ signal }) => api.get<Session>(`/sessions/${encodeURIComponent(id)}`, undefined, signal),
    // Live updates arrive over SSE; poll slowly as a safety net while the session is changing.
    refetchInterval: (q) => {
      const s = q.state.data?.state;
      return s && s !== 'running' && s !== 'hibernated' && s !== 'stopped' && s !== 'failed' ? 5000 : false;
    },
  });

/**
 * The viewer's connect ticket is single-use: one query per (session, start generation), never
 * refetched in the background and dropped from the cache as soon as the viewer unmounts.
 */
export const getConnectQueryOptions = (id: string, generation: string) =>
  queryOptions({
    queryKey: sessionKeys.connect(id, generation),
    queryFn: () => connectSession(id),
    staleTime: Infinity,
    gcTime: 0,
    refetchOnWindowFocus: false,
    refetchOnReconnect: false,
    retry: false,
  });

export function connectSession(id: string): Promise<ConnectUrl> {
  return api.post<ConnectUrl>(`/sessions/${encodeURIComponent(id)}/connect`);
}

export function applySessionEvent(qc: QueryClient, session: Session): void {
  applyLiveItem(qc, session, { lists: sessionKeys.lists(), detail: sessionKeys.detail });
}

function useSessionMutation<V>(fn: (v: V) => Promise<Session | undefined>) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: fn,
    onSuccess: (session) => {
      if (session && typeof session === 'object' && 'id' in session) {
        qc.setQueryData(sessionKeys.detail(session.id), session);
        applySessionEvent(qc, session);
      } else {
        void qc.invalidateQueries({ queryKey: sessionKeys.all });
      }
    },
  });
}

export function useCreateSession() {
  return useSessionMutation((template: string) => api.post<Session>('/sessions', { template }));
}

export function useHibernateSession() {
  return useSessionMutation((id: string) => api.post<Session>(`/sessions/${encodeURIComponent(id)}/hibernate`));
}

export function useWakeSession() {
  return useSessionMutation((id: string) => api.post<Session>(`/sessions/${encodeURIComponent(id)}/wake`));
}

/** DELETE answers 202 (the session is stopped, then removed). The body may be the session or empty. */
export function useStopSession() {
  return useSessionMutation((id: string) => api.delete<Session | undefined>(`/sessions/${encodeURIComponent(id)}`));
}

export function sessionsByState(list: ListResponse<Session> | undefined): Record<SessionState, number> {
  const counts = {
    pending: 0,
    scheduled: 0,
    starting: 0,
    running: 0,
    hibernating: 0,
    hibernated: 0,
    stopping: 0,
    stopped: 0,
    failed: 0,
  } satisfies Record<SessionState, number>;
  for (const s of list?.items ?? []) counts[s.state] += 1;
  return counts;
}
