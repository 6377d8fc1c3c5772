import { useSyncExternalStore } from 'react';
import { api, type AuthState } from './api';
import type { AuthUser, Role } from '@/types/api';

export function useAuth(): AuthState {
  return useSyncExternalStore(api.subscribe, api.getAuthState, api.getAuthState);
}

/** The signed-in user; only for components rendered under `RequireAuth`. */
export function useUser(): AuthUser {
  const state = useAuth();
  if (state.status !== 'authenticated') throw new Error('useUser outside an authenticated route');
  return state.user;
}

export function isAdminRole(role: Role): boolean {
  return role === 'platform_admin' || role === 'org_admin';
}

export const ROLE_LABELS: Record<Role, string> = {
  platform_admin: 'Platform admin',
  org_admin: 'Org admin',
  member: 'Member',
};
