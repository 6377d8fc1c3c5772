import type { Agent, AuthResponse, AuthUser, Pool, Session, Template } from '@/types/api';
import type { IdentityProvider } from '@/types/api';
import { OPEN_SESSION_POLICY } from '@/lib/sessionPolicy';

export const member: AuthUser = { id: 'u1', username: 'alice', org_id: 'o1', role: 'member' };
export const admin: AuthUser = { id: 'u0', username: 'root', org_id: 'o1', role: 'platform_admin' };

export function authResponse(user: AuthUser = member, token = 'tok-1', mfaEnrollmentRequired = false): AuthResponse {
  return { access_token: token, token_type: 'Bearer', expires_in: 900, user, mfa_enrollment_required: mfaEnrollmentRequired };
}

export function template(over: Partial<Template> = {}): Template {
  return {
    id: 't-' + (over.name ?? 'firefox'),
    org_id: null,
    name: 'firefox',
    display_name: 'Firefox',
    description: 'A web browser',
    icon: '',
    image: 'streamspace/firefox:1',
    env: {},
    cpu_millis: 1000,
    memory_mb: 2048,
    shm_mb: 256,
    port: 8080,
    tags: ['browser'],
    enabled: true,
    egress_allow: [],
    session_policy: OPEN_SESSION_POLICY,
    home: { scope: 'none', size_mb: null },
    created_at: '2026-01-01T00:00:00Z',
    updated_at: '2026-01-01T00:00:00Z',
    ...over,
  };
}

export function session(over: Partial<Session> = {}): Session {
  return {
    id: 's1',
    org_id: 'o1',
    owner_id: 'u1',
    owner_username: 'alice',
    template_id: 't-firefox',
    template_name: 'firefox',
    template_display_name: 'Firefox',
    state: 'running',
    agent_id: 'a1',
    phase: null,
    progress: null,
    failure_reason: null,
    created_at: '2026-01-01T00:00:00Z',
    updated_at: '2026-01-01T00:00:00Z',
    started_at: '2026-01-01T00:00:05Z',
    stopped_at: null,
    ...over,
  };
}

/** An OIDC provider of org `o1` as the API shows it (a secret set, never its value). */
export function identityProvider(over: Partial<IdentityProvider> = {}): IdentityProvider {
  return {
    id: 'p1',
    org_id: 'o1',
    name: 'keycloak',
    display_name: 'Keycloak',
    kind: 'oidc',
    enabled: true,
    domains: ['acme.example'],
    oidc: { issuer: 'https://kc.example/realms/acme', client_id: 'ss', scopes: ['openid', 'email'], use_userinfo: false, acr_mfa_values: ['mfa'] },
    oauth2: null,
    saml: null,
    role_mapping: { groups_claim: 'groups', org_admin_groups: ['Domain Admins'], platform_admin_groups: ['root'], default_role: 'member' },
    has_client_secret: true,
    redirect_uri: 'http://localhost:3000/api/v1/auth/sso/p1/callback',
    sp_entity_id: null,
    acs_url: null,
    sp_metadata_url: null,
    created_at: '2026-01-01T00:00:00Z',
    updated_at: '2026-01-01T00:00:00Z',
    ...over,
  };
}

/** A Docker agent online with room for a few sessions. */
export function agent(over: Partial<Agent> = {}): Agent {
  return {
    id: 'a1',
    name: 'local',
    platform: 'docker',
    labels: {},
    reported_labels: {},
    status: 'online',
    version: '0.1.0',
    capacity: { max_sessions: 50, cpu_millis: 8000, memory_mb: 16384 },
    capacity_limit: {},
    endpoint_cidrs: [],
    session_count: 0,
    last_heartbeat_at: '2026-01-01T00:00:00Z',
    created_at: '2026-01-01T00:00:00Z',
    ...over,
  };
}

/** The warm pool of the fixture template `firefox`, nothing warm yet. */
export function pool(over: Partial<Pool> = {}): Pool {
  return { template_id: 't-firefox', template_name: 'firefox', size: 2, agents: [], ...over };
}
