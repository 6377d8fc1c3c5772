import { infiniteQueryOptions, queryOptions, useMutation, useQueryClient } from '@tanstack/react-query';
import { api } from '@/lib/api';
import type { CreateUserRequest, ListResponse, PatchUserRequest, User } from '@/types/api';

export const userKeys = {
  all: ['users'] as const,
  lists: () => ['users', 'list'] as const,
  everyone: () => ['users', 'all'] as const,
  detail: (id: string) => ['users', 'detail', id] as const,
};

export const getUsersInfiniteQueryOptions = () =>
  infiniteQueryOptions({
    queryKey: userKeys.lists(),
    queryFn: ({ pageParam, signal }) => api.list<User>('/users', { limit: 50, cursor: pageParam }, signal),
    initialPageParam: null as string | null,
    getNextPageParam: (last: ListResponse<User>) => last.next_cursor,
  });

/** All users in scope (for pickers such as the sessions' owner filter). */
export const getAllUsersQueryOptions = () =>
  queryOptions({
    queryKey: userKeys.everyone(),
    queryFn: ({ signal }) => api.listAll<User>('/users', {}, signal, 5),
    staleTime: 60_000,
  });

export const getUserQueryOptions = (id: string) =>
  queryOptions({
    queryKey: userKeys.detail(id),
    queryFn: ({ signal }) => api.get<User>(`/users/${encodeURIComponent(id)}`, undefined, signal),
  });

export function useCreateUser() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: CreateUserRequest) => api.post<User>('/users', body),
    onSuccess: () => qc.invalidateQueries({ queryKey: userKeys.all }),
  });
}

export function useUpdateUser() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ id, patch }: { id: string; patch: PatchUserRequest }) =>
      api.patch<User>(`/users/${encodeURIComponent(id)}`, patch),
    onSuccess: () => qc.invalidateQueries({ queryKey: userKeys.all }),
  });
}

export function useDeleteUser() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => api.delete(`/users/${encodeURIComponent(id)}`),
    onSuccess: () => qc.invalidateQueries({ queryKey: userKeys.all }),
  });
}
