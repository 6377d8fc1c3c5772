import { queryOptions, useMutation, useQueryClient } from '@tanstack/react-query';
import { api } from '@/lib/api';
import { leaveAppFor } from '@/lib/navigation';
import type { ListResponse } from '@/types/api';
import type {
  IdentityProvider,
  IdentityProviderInput,
  IdentityProviderPatch,
  LinkStart,
  LinkedIdentity,
  SsoDiscovery,
} from '@/types/api';

export const ssoKeys = {
  providers: (orgId: string) => ['identity-providers', orgId] as const,
  identities: ['me', 'identities'] as const,
  discovery: (query: DiscoveryQuery) => ['sso', 'discover', query] as const,
};

const providersPath = (orgId: string) => `/orgs/${encodeURIComponent(orgId)}/identity-providers`;

export const getIdentityProvidersQueryOptions = (orgId: string) =>
  queryOptions({
    queryKey: ssoKeys.providers(orgId),
    queryFn: ({ signal }) => api.listAll<IdentityProvider>(providersPath(orgId), {}, signal),
  });

export function useCreateIdentityProvider(orgId: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: IdentityProviderInput) => api.post<IdentityProvider>(providersPath(orgId), body),
    onSuccess: () => qc.invalidateQueries({ queryKey: ssoKeys.providers(orgId) }),
  });
}

export function useUpdateIdentityProvider(orgId: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ id, patch }: { id: string; patch: IdentityProviderPatch }) =>
      api.patch<IdentityProvider>(`${providersPath(orgId)}/${encodeURIComponent(id)}`, patch),
    onSuccess: () => qc.invalidateQueries({ queryKey: ssoKeys.providers(orgId) }),
  });
}

export function useDeleteIdentityProvider(orgId: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => api.delete(`${providersPath(orgId)}/${encodeURIComponent(id)}`),
    onSuccess: () => qc.invalidateQueries({ queryKey: ssoKeys.providers(orgId) }),
  });
}

/** What the sign-in page asks the server: the providers of an email's domain or of a named organization. */
export type DiscoveryQuery = { email: string } | { org: string };

export const getSsoDiscoveryQueryOptions = (query: DiscoveryQuery) =>
  queryOptions({
    queryKey: ssoKeys.discovery(query),
    queryFn: ({ signal }) => api.request<SsoDiscovery>('/auth/sso/discover', { query, signal, anonymous: true }),
    staleTime: 60_000,
  });

export const getLinkedIdentitiesQueryOptions = () =>
  queryOptions({
    queryKey: ssoKeys.identities,
    queryFn: ({ signal }) => api.listAll<LinkedIdentity>('/me/identities', {}, signal),
  });

/** Starts the provider's flow; the browser leaves for the IdP and comes back to `/account?linked=`. */
export function useStartLink() {
  return useMutation({
    mutationFn: (providerId: string) => api.post<LinkStart>('/me/identities', { provider_id: providerId }),
    onSuccess: ({ redirect_url }) => leaveAppFor(redirect_url),
  });
}

export function useUnlinkIdentity() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => api.delete(`/me/identities/${encodeURIComponent(id)}`),
    onSuccess: (_v, id) =>
      qc.setQueryData<ListResponse<LinkedIdentity>>(ssoKeys.identities, (old) =>
        old ? { ...old, items: old.items.filter((i) => i.id !== id) } : old,
      ),
  });
}
