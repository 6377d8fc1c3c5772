/**
 * Wire types of the StreamSpace REST API (`/api/v1`), as the control plane serves them (see
 * `streamspace openapi` / `GET /api/v1/openapi.json`). Keep in sync with `crates/server/src/api/*.rs`.
 */

export type Role = 'platform_admin' | 'org_admin' | 'member';

export const ROLES: readonly Role[] = ['platform_admin', 'org_admin', 'member'];

export interface ApiErrorBody {
  error: { code: string; message: string };
}

export interface ListResponse<T> {
  items: T[];
  next_cursor: string | null;
}

export interface AuthUser {
  id: string;
  username: string;
  org_id: string;
  role: Role;
}

/** `POST /auth/login` and `POST /auth/refresh` (200). */
export interface AuthResponse {
  access_token: string;
  token_type: 'Bearer';
  /** Seconds until the access token expires. */
  expires_in: number;
  user: AuthUser;
  /**
   * The user's organization requires MFA and this sign-in has no second factor: until the user enrolls
   * (and signs in again with a code), only `/me`, `/me/password`, `/me/mfa/*` and `/auth/*` answer; every
   * other route answers 403 `mfa_enrollment_required`.
   */
  mfa_enrollment_required: boolean;
}

export interface LoginRequest {
  username: string;
  password: string;
  totp_code?: string;
  recovery_code?: string;
}

export interface Me {
  id: string;
  username: string;
  org_id: string;
  org_name: string;
  role: Role;
  mfa_enabled: boolean;
  /** Unused recovery codes (0 without MFA). */
  recovery_codes_left: number;
  created_at: string;
}

export interface MfaEnrollment {
  secret: string;
  otpauth_uri: string;
  qr_png_base64: string;
}

export interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  created_at: string;
  last_used_at: string | null;
}

/** `POST /me/api-keys` (201): the key's view plus the key itself, shown only once. */
export interface CreatedApiKey extends ApiKey {
  key: string;
}

export interface Organization {
  id: string;
  name: string;
  mfa_required: boolean;
  max_sessions: number | null;
  max_sessions_per_user: number | null;
  max_cpu_millis: number | null;
  max_memory_mb: number | null;
  created_at: string;
}

export interface User {
  id: string;
  username: string;
  org_id: string;
  role: Role;
  mfa_enabled: boolean;
  disabled: boolean;
  created_at: string;
}

export interface CreateUserRequest {
  username: string;
  password: string;
  role: Role;
  org_id?: string;
}

export interface PatchUserRequest {
  role?: Role;
  disabled?: boolean;
  password?: string;
}

export interface Template {
  id: string;
  org_id: string | null;
  name: string;
  display_name: string;
  description: string;
  icon: string;
  image: string;
  env: Record<string, string>;
  cpu_millis: number;
  memory_mb: number;
  shm_mb: number;
  port: number;
  tags: string[];
  enabled: boolean;
  created_at: string;
  updated_at: string;
}

/** `POST /templates`. `org_id` is honoured for platform admins only (null: a global template). */
export type TemplateInput = Omit<Template, 'id' | 'created_at' | 'updated_at'>;

/** `PATCH /templates/{id}`: name and scope are fixed at creation. */
export type TemplatePatch = Partial<Omit<TemplateInput, 'name' | 'org_id'>>;

export const SESSION_STATES = [
  'pending',
  'scheduled',
  'starting',
  'running',
  'hibernating',
  'hibernated',
  'stopping',
  'stopped',
  'failed',
] as const;

export type SessionState = (typeof SESSION_STATES)[number];

export interface Session {
  id: string;
  org_id: string;
  owner_id: string;
  owner_username: string;
  template_id: string;
  /** The template's `name` (slug), not its display name. */
  template_name: string;
  state: SessionState;
  agent_id: string | null;
  phase: string | null;
  progress: number | null;
  failure_reason: string | null;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  stopped_at: string | null;
}

export interface Agent {
  id: string;
  name: string;
  platform: 'docker' | 'kubernetes';
  labels: Record<string, string>;
  status: 'online' | 'offline';
  /** Reported by the agent when it connects; null until it has. */
  version: string | null;
  capacity: { max_sessions: number; cpu_millis: number; memory_mb: number };
  session_count: number;
  last_heartbeat_at: string | null;
  created_at: string;
}

/** `POST /agents` (201) and `POST /agents/{id}/token` (200): the agent plus its token, shown only once. */
export interface AgentWithToken extends Agent {
  token: string;
}

export const AUDIT_RESULTS = ['success', 'failure', 'denied'] as const;

export interface AuditEvent {
  id: string;
  /** Position in the hash chain, from 1; `next_cursor` of the audit list is a seq. */
  seq: number;
  time: string;
  actor_id: string | null;
  /** A user name, `system`, or the name tried in a failed sign-in. */
  actor_name: string;
  org_id: string | null;
  action: string;
  /** e.g. `user:<id>`, `session:<id>`. */
  target: string;
  result: string;
  client_ip: string | null;
  user_agent: string | null;
  trace_id: string | null;
  details: unknown;
  prev_hash: string;
  hash: string;
}

/**
 * `GET /api/v1/stats` is optional (the control plane does not serve it yet) (the UI degrades gracefully on 404). Every field is optional so an
 * older or newer server shape does not break the dashboard.
 */
export interface Stats {
  sessions_by_state?: Partial<Record<SessionState, number>>;
  agents_online?: number;
  session_start_latency?: { time: string; p50_ms?: number; p95_ms?: number; count?: number }[];
}
