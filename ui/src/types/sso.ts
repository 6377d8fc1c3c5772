/**
 * Single sign-on wire types, written by hand from the SSO contract until the server's OpenAPI document
 * carries them; then this file becomes aliases of the generated schemas like `api.ts`.
 */
export type SsoKind = 'oidc' | 'oauth2' | 'saml';

export interface OidcSettings {
  issuer: string;
  client_id: string;
  scopes: string[];
  use_userinfo: boolean;
  acr_mfa_values: string[];
}

export interface OAuth2Claims {
  subject: string;
  email: string;
  name: string;
  groups: string;
}

export interface OAuth2Settings {
  authorize_url: string;
  token_url: string;
  userinfo_url: string;
  client_id: string;
  scopes: string[];
  claims: OAuth2Claims;
}

export interface SamlSettings {
  metadata_url: string | null;
  metadata_xml: string | null;
  allow_idp_initiated: boolean;
  attributes: { email: string; name: string; groups: string };
  mfa_context_classes: string[];
}

export interface RoleMapping {
  groups_claim: string;
  org_admin_groups: string[];
  platform_admin_groups: string[];
  default_role: 'member';
}

/** What the API returns: never a secret, and the values the admin copies into the IdP. */
export interface IdentityProvider {
  id: string;
  org_id: string;
  name: string;
  display_name: string;
  kind: SsoKind;
  enabled: boolean;
  domains: string[];
  oidc: OidcSettings | null;
  oauth2: OAuth2Settings | null;
  saml: SamlSettings | null;
  role_mapping: RoleMapping;
  has_client_secret: boolean;
  redirect_uri: string | null;
  sp_entity_id: string | null;
  acs_url: string | null;
  sp_metadata_url: string | null;
  created_at: string;
  updated_at: string;
}

type WithSecret<T> = T & { client_secret?: string };

/** `POST /orgs/{org_id}/identity-providers`; a PATCH takes the same fields, all optional. */
export interface IdentityProviderInput {
  name: string;
  display_name: string;
  kind: SsoKind;
  enabled: boolean;
  domains: string[];
  oidc?: WithSecret<OidcSettings>;
  oauth2?: WithSecret<OAuth2Settings>;
  saml?: SamlSettings;
  /** `platform_admin_groups` only from a platform admin (refused from anyone else). */
  role_mapping: Omit<RoleMapping, 'platform_admin_groups'> & { platform_admin_groups?: string[] };
}

export type IdentityProviderPatch = Partial<Omit<IdentityProviderInput, 'kind'>>;

export interface DiscoveredProvider {
  id: string;
  name: string;
  display_name: string;
  kind: SsoKind;
  start_url: string;
}

/** `GET /auth/sso/discover`: an unknown email or org is an empty list, not an error. */
export interface SsoDiscovery {
  org: string | null;
  providers: DiscoveredProvider[];
}

export type SsoMfaRequest = { ticket: string } & ({ totp_code: string } | { recovery_code: string });

export interface LinkedIdentity {
  id: string;
  provider_id: string;
  provider_name: string;
  provider_display_name: string;
  kind: SsoKind;
  subject: string;
  email: string | null;
  created_at: string;
}

export interface LinkStart {
  redirect_url: string;
}

export interface LogoutResponse {
  end_session_url?: string | null;
}
