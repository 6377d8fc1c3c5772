import { queryOptions, useMutation, useQueryClient, type QueryClient } from '@tanstack/react-query';
import { api } from '@/lib/api';
import { applyLiveItem } from '@/lib/cache';
import type { Agent, AgentWithToken, ListResponse } from '@/types/api';

export const agentKeys = {
  all: ['agents'] as const,
  lists: () => ['agents', 'list'] as const,
  detail: (id: string) => ['agents', 'detail', id] as const,
};

export const getAgentsQueryOptions = () =>
  queryOptions({
    queryKey: agentKeys.lists(),
    queryFn: ({ signal }) => api.listAll<Agent>('/agents', {}, signal),
  });

export function applyAgentEvent(qc: QueryClient, agent: Agent): void {
  applyLiveItem(qc, agent, { lists: agentKeys.lists(), detail: agentKeys.detail });
}

export function useCreateAgent() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: { name: string; platform: Agent['platform']; labels?: Record<string, string> }) =>
      api.post<AgentWithToken>('/agents', body),
    onSuccess: () => qc.invalidateQueries({ queryKey: agentKeys.all }),
  });
}

export function useDeleteAgent() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => api.delete(`/agents/${encodeURIComponent(id)}`),
    onSuccess: (_v, id) =>
      qc.setQueryData<ListResponse<Agent>>(agentKeys.lists(), (old) =>
        old ? { ...old, items: old.items.filter((a) => a.id !== id) } : old,
      ),
  });
}

/** `POST /agents/{id}/token`: a new token; the old one is revoked and the agent's connection closed. */
export function useRotateAgentToken() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => api.post<AgentWithToken>(`/agents/${encodeURIComponent(id)}/token`),
    onSuccess: ({ token: _token, ...agent }) => applyAgentEvent(qc, agent),
  });
}
