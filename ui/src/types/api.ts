/** Wire types of the StreamSpace REST API (`/api/v1`). Keep in sync with the control plane. */

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

export interface AuthResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  user: AuthUser;
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

export interface CreatedApiKey extends Omit<ApiKey, 'last_used_at'> {
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

export type TemplateInput = Omit<Template, 'id' | 'created_at' | 'updated_at'>;

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
  version: string;
  capacity: { max_sessions: number; cpu_millis: number; memory_mb: number };
  session_count: number;
  last_heartbeat_at: string | null;
  created_at: string;
}

export interface CreatedAgent extends Partial<Agent> {
  id: string;
  token: string;
}

export interface AuditEvent {
  id: string;
  seq: number;
  time: string;
  actor_id: string | null;
  actor_name: string | null;
  org_id: string | null;
  action: string;
  target: string | null;
  result: string;
  client_ip: string | null;
  user_agent: string | null;
  trace_id: string | null;
  details: unknown;
}

/**
 * `GET /api/v1/stats` is optional (the UI degrades gracefully on 404). Every field is optional so an
 * older or newer server shape does not break the dashboard.
 */
export interface Stats {
  sessions_by_state?: Partial<Record<SessionState, number>>;
  agents_online?: number;
  session_start_latency?: { time: string; p50_ms?: number; p95_ms?: number; count?: number }[];
}
