/**
 * Wire types of the StreamSpace REST API (`/api/v1`), under the names the UI uses. Every shape comes from
 * `openapi.ts`, generated from the control plane's OpenAPI document (`npm run gen:api`): nothing here is
 * written by hand, so a server change that the UI does not follow fails the typecheck.
 */
import type { components } from './openapi';
import { roleValues, sessionPhaseValues, sessionStateValues } from './openapi';

type Schemas = components['schemas'];

export type Role = Schemas['Role'];
export const ROLES: readonly Role[] = roleValues;

export type ApiErrorBody = Schemas['ErrorBody'];

/** An IP allow-list (`/network/allow-list`, `/orgs/{id}/allow-list`). */
export type AllowListView = Schemas['AllowListView'];
export type AllowListRequest = Schemas['AllowListRequest'];

/** A page of `T`s; every list endpoint pages the same way. */
export type ListResponse<T> = Omit<Schemas['List_SessionView'], 'items'> & { items: T[] };

export type AuthUser = Schemas['UserSummary'];
/** `POST /auth/login` and `POST /auth/refresh` (200). */
export type AuthResponse = Schemas['TokenResponse'];
export type LoginRequest = Schemas['LoginRequest'];

export type Me = Schemas['Me'];
export type MfaEnrollment = Schemas['MfaEnrollment'];
export type ApiKey = Schemas['ApiKeyView'];
/** `POST /me/api-keys` (201): the key's view plus the key itself, shown only once. */
export type CreatedApiKey = Schemas['CreatedApiKey'];
export type NewApiKeyRequest = Schemas['NewApiKeyRequest'];

export type Organization = Schemas['Org'];
export type OrgPatch = Schemas['OrgPatchRequest'];
export type SsoMfaPolicy = Schemas['SsoMfaPolicy'];

export type User = Schemas['UserView'];
export type CreateUserRequest = Schemas['NewUserRequest'];
export type PatchUserRequest = Schemas['UserPatchRequest'];

export type Template = Schemas['Template'];
/** `POST /templates`. `org_id` is honoured for platform admins only (null: a global template). */
export type TemplateInput = Schemas['NewTemplateRequest'];
/** `PATCH /templates/{id}`: name and scope are fixed at creation. */
export type TemplatePatch = Schemas['TemplatePatch'];
/** A template's warm pool (`GET /pools`, `PUT /templates/{id}/pool`): its size and what is warm per agent. */
export type Pool = Schemas['PoolView'];
export type PoolAgent = Schemas['PoolAgentView'];
export type PoolRequest = Schemas['PoolRequest'];

/** A persistent home (`/me/homes`, `/homes`); `template_id` null is the user's own, shared home. */
export type Home = Schemas['Home'];
export type TemplateHome = Schemas['TemplateHome'];
export type HomeScope = Schemas['HomeScope'];

/** What sessions may exchange with the viewer's browser, set per org and per template. */
export type SessionPolicy = Schemas['SessionPolicy'];
export type ClipboardPolicy = Schemas['ClipboardPolicy'];
/** `POST /sessions/{id}/connect`: the single-use URL and the session's effective policy. */
export type ConnectUrl = Schemas['ConnectUrl'];

export type SessionState = Schemas['SessionState'];
export const SESSION_STATES: readonly SessionState[] = sessionStateValues;
export type SessionPhase = Schemas['SessionPhase'];
export const SESSION_PHASES: readonly SessionPhase[] = sessionPhaseValues;
export type Session = Schemas['SessionView'];

/** Sharing a session (ADR 0033). */
export type ShareRole = Schemas['ShareRole'];
export type SessionRole = Schemas['SessionRole'];
export type ShareView = Schemas['ShareView'];
export type SessionShares = Schemas['SessionShares'];
export type NewShareRequest = Schemas['NewShareRequest'];
/** `POST /sessions/{id}/shares` (201): a link's URL is shown only once. */
export type CreatedShare = Schemas['CreatedShare'];
export type JoinedShare = Schemas['JoinedShare'];
export type SharedSession = Schemas['SharedSession'];

export type Agent = Schemas['AgentView'];
/** `POST /agents` (201) and `POST /agents/{id}/token` (200): the agent plus its token, shown only once. */
export type AgentWithToken = Schemas['AgentWithToken'];

export type AuditEvent = Schemas['AuditEvent'];
/** The audit log's outcomes, for its filter (the document types `result` as a plain string). */
export const AUDIT_RESULTS = ['success', 'failure', 'denied'] as const;

export type Stats = Schemas['Stats'];

export type ComplianceReport = Schemas['ComplianceReport'];
export type ActionEntry = Schemas['ActionEntry'];
export type SessionVisit = Schemas['SessionVisit'];
export type ComplianceSettings = Schemas['ComplianceSettingsView'];
export type ComplianceSettingsUpdate = Schemas['ComplianceSettingsUpdate'];
export type ReportSchedule = Schemas['Schedule'];
export type ReportDestination = Schemas['Destination'];
export type SsoKind = Schemas['ProviderKind'];
/** What the API shows of a provider: never a secret, plus the values the admin copies into the IdP. */
export type IdentityProvider = Schemas['IdentityProviderView'];
/** `client_secret` in `oidc`/`oauth2` is write-only: absent keeps the current one. */
export type IdentityProviderInput = Schemas['NewIdentityProviderRequest'];
export type IdentityProviderPatch = Schemas['IdentityProviderPatchRequest'];
/** `GET /auth/sso/discover`: an unknown email or org is an empty list, not an error. */
export type SsoDiscovery = Schemas['Discovery'];
export type SsoMfaRequest = Schemas['SsoMfaRequest'];
export type LinkedIdentity = Schemas['IdentityView'];
export type LinkStart = Schemas['LinkStarted'];
export type LogoutResponse = Schemas['LogoutResponse'];
