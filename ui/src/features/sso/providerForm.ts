import type { FieldSpec, FormErrors } from '@/components/ResourceFormDialog';
import type { IdentityProvider, IdentityProviderInput, IdentityProviderPatch, SsoKind } from '@/types/api';

/** The provider dialog's values: one flat record for every kind; each kind shows and sends its own part. */
export interface ProviderFormValues {
  [key: string]: string | boolean;
  name: string;
  display_name: string;
  enabled: boolean;
  domains: string;
  client_id: string;
  client_secret: string;
  scopes: string;
  issuer: string;
  use_userinfo: boolean;
  acr_mfa_values: string;
  authorize_url: string;
  token_url: string;
  userinfo_url: string;
  claim_subject: string;
  claim_email: string;
  claim_name: string;
  claim_groups: string;
  metadata_url: string;
  metadata_xml: string;
  allow_idp_initiated: boolean;
  attr_email: string;
  attr_name: string;
  attr_groups: string;
  mfa_context_classes: string;
  groups_claim: string;
  org_admin_groups: string;
  platform_admin_groups: string;
}

/** Values that never hold a space (domains, scopes, URIs): commas, spaces or lines separate them. */
export function splitWords(raw: string): string[] {
  return raw.split(/[\s,]+/).filter(Boolean);
}

/** Group names may hold spaces ("Domain Admins"): only commas and lines separate them. */
export function splitGroups(raw: string): string[] {
  return raw
    .split(/[,\n]/)
    .map((g) => g.trim())
    .filter(Boolean);
}

const DEFAULTS: ProviderFormValues = {
  name: '',
  display_name: '',
  enabled: true,
  domains: '',
  client_id: '',
  client_secret: '',
  scopes: '',
  issuer: '',
  use_userinfo: false,
  acr_mfa_values: '',
  authorize_url: '',
  token_url: '',
  userinfo_url: '',
  claim_subject: 'id',
  claim_email: 'email',
  claim_name: 'name',
  claim_groups: '',
  metadata_url: '',
  metadata_xml: '',
  allow_idp_initiated: false,
  attr_email: 'email',
  attr_name: 'name',
  attr_groups: '',
  mfa_context_classes: '',
  groups_claim: 'groups',
  org_admin_groups: '',
  platform_admin_groups: '',
};

const DEFAULT_SCOPES: Record<SsoKind, string> = { oidc: 'email profile', oauth2: 'read:user user:email', saml: '' };

export function newProviderValues(kind: SsoKind): ProviderFormValues {
  return { ...DEFAULTS, scopes: DEFAULT_SCOPES[kind] };
}

const words = (list: string[] | undefined) => (list ?? []).join(' ');
const groups = (list: string[] | undefined) => (list ?? []).join(', ');

/** The dialog's values for an existing provider; the secret field starts empty (it is write-only). */
export function providerValues(p: IdentityProvider): ProviderFormValues {
  const v: ProviderFormValues = {
    ...DEFAULTS,
    name: p.name,
    display_name: p.display_name,
    enabled: p.enabled,
    domains: p.domains.join(', '),
    groups_claim: p.role_mapping.groups_claim ?? '',
    org_admin_groups: groups(p.role_mapping.org_admin_groups),
    platform_admin_groups: groups(p.role_mapping.platform_admin_groups),
  };
  if (p.oidc) {
    Object.assign(v, {
      issuer: p.oidc.issuer,
      client_id: p.oidc.client_id,
      scopes: words(p.oidc.scopes),
      use_userinfo: p.oidc.use_userinfo ?? false,
      acr_mfa_values: words(p.oidc.acr_mfa_values),
    });
  }
  if (p.oauth2) {
    const claims = p.oauth2.claims ?? {};
    Object.assign(v, {
      authorize_url: p.oauth2.authorize_url,
      token_url: p.oauth2.token_url,
      userinfo_url: p.oauth2.userinfo_url,
      client_id: p.oauth2.client_id,
      scopes: words(p.oauth2.scopes),
      claim_subject: claims.subject ?? '',
      claim_email: claims.email ?? '',
      claim_name: claims.name ?? '',
      claim_groups: claims.groups ?? '',
    });
  }
  if (p.saml) {
    const attributes = p.saml.attributes ?? {};
    Object.assign(v, {
      metadata_url: p.saml.metadata_url ?? '',
      metadata_xml: p.saml.metadata_xml ?? '',
      allow_idp_initiated: p.saml.allow_idp_initiated ?? false,
      attr_email: attributes.email ?? '',
      attr_name: attributes.name ?? '',
      attr_groups: attributes.groups ?? '',
      mfa_context_classes: words(p.saml.mfa_context_classes),
    });
  }
  return v;
}

/** Optional names (claim paths, attributes): an empty field is "none". */
const optional = (raw: string) => raw.trim() || null;

/** An empty secret field keeps the stored secret: the key is left out rather than sent blank. */
function secret(v: ProviderFormValues): { client_secret?: string } {
  return v.client_secret ? { client_secret: v.client_secret } : {};
}

function protocolSettings(kind: SsoKind, v: ProviderFormValues): Pick<IdentityProviderInput, 'oidc' | 'oauth2' | 'saml'> {
  switch (kind) {
    case 'oidc':
      return {
        oidc: {
          issuer: v.issuer.trim(),
          client_id: v.client_id.trim(),
          ...secret(v),
          scopes: splitWords(v.scopes),
          use_userinfo: v.use_userinfo,
          acr_mfa_values: splitWords(v.acr_mfa_values),
        },
      };
    case 'oauth2':
      return {
        oauth2: {
          authorize_url: v.authorize_url.trim(),
          token_url: v.token_url.trim(),
          userinfo_url: v.userinfo_url.trim(),
          client_id: v.client_id.trim(),
          ...secret(v),
          scopes: splitWords(v.scopes),
          claims: {
            subject: v.claim_subject.trim(),
            email: optional(v.claim_email),
            name: optional(v.claim_name),
            groups: optional(v.claim_groups),
          },
        },
      };
    case 'saml':
      return {
        saml: {
          metadata_url: optional(v.metadata_url),
          metadata_xml: optional(v.metadata_xml),
          allow_idp_initiated: v.allow_idp_initiated,
          attributes: { email: optional(v.attr_email), name: optional(v.attr_name), groups: optional(v.attr_groups) },
          mfa_context_classes: splitWords(v.mfa_context_classes),
        },
      };
  }
}

/** OAuth2 and SAML name where the groups are with the other claims; the role mapping reads the same place. */
function groupsSource(kind: SsoKind, v: ProviderFormValues): string | null {
  return optional({ oidc: v.groups_claim, oauth2: v.claim_groups, saml: v.attr_groups }[kind]);
}

/**
 * The request body. Platform-admin groups always go along as the dialog holds them: only platform admins
 * see that field, so for anyone else they are the provider's current ones (which the API accepts
 * unchanged), and an org admin's edit never clears what a platform admin set.
 */
export function providerInput(kind: SsoKind, v: ProviderFormValues): IdentityProviderInput {
  return {
    name: v.name.trim(),
    display_name: v.display_name.trim(),
    kind,
    enabled: v.enabled,
    domains: splitWords(v.domains.toLowerCase()),
    ...protocolSettings(kind, v),
    role_mapping: {
      groups_claim: groupsSource(kind, v),
      org_admin_groups: splitGroups(v.org_admin_groups),
      platform_admin_groups: splitGroups(v.platform_admin_groups),
      default_role: 'member',
    },
  };
}

export function providerPatch(kind: SsoKind, v: ProviderFormValues): IdentityProviderPatch {
  const { kind: _fixed, ...patch } = providerInput(kind, v);
  return patch;
}

const SLUG = /^[a-z0-9][a-z0-9-]{0,62}$/;
const HTTP_URL = /^https?:\/\/\S+$/;

const URL_FIELDS: Record<SsoKind, (keyof ProviderFormValues & string)[]> = {
  oidc: ['issuer'],
  oauth2: ['authorize_url', 'token_url', 'userinfo_url'],
  saml: [],
};

export function validateProvider(kind: SsoKind, v: ProviderFormValues): FormErrors<ProviderFormValues> {
  const errors: FormErrors<ProviderFormValues> = {};
  if (!SLUG.test(v.name.trim())) errors.name = 'Lower-case letters, digits and dashes, starting with a letter or digit';
  for (const f of URL_FIELDS[kind]) {
    const value = v[f];
    if (typeof value === 'string' && !HTTP_URL.test(value.trim())) errors[f] = 'An http(s) URL';
  }
  if (kind === 'saml') {
    const [url, xml] = [v.metadata_url.trim(), v.metadata_xml.trim()];
    if (url && xml) errors.metadata_xml = 'Either the metadata URL or the metadata XML, not both';
    else if (!url && !xml) errors.metadata_url = 'The metadata URL or the metadata XML';
    else if (v.metadata_url.trim() && !HTTP_URL.test(v.metadata_url.trim())) errors.metadata_url = 'An http(s) URL';
  }
  return errors;
}

type Field = FieldSpec<ProviderFormValues>;

function secretField(hasSecret: boolean): Field {
  return {
    name: 'client_secret',
    label: hasSecret ? 'Replace client secret' : 'Client secret',
    kind: 'password',
    half: true,
    helperText: hasSecret ? 'A secret is set. Leave empty to keep it.' : 'Not set. Stored sealed, never shown again.',
  };
}

const SCOPES: Field = { name: 'scopes', label: 'Scopes', helperText: 'Separated by spaces (OIDC always asks for openid too)' };

function kindFields(kind: SsoKind, hasSecret: boolean): Field[] {
  const client: Field[] = [{ name: 'client_id', label: 'Client ID', required: true, half: true }, secretField(hasSecret)];
  switch (kind) {
    case 'oidc':
      return [
        { name: 'issuer', label: 'Issuer URL', kind: 'url', required: true, helperText: 'Its /.well-known/openid-configuration is read' },
        ...client,
        SCOPES,
        { name: 'use_userinfo', label: 'Also read the user-info endpoint', kind: 'switch' },
        { name: 'acr_mfa_values', label: 'acr values that mean MFA was done', helperText: 'Separated by spaces; an amr with mfa always counts' },
      ];
    case 'oauth2':
      return [
        { name: 'authorize_url', label: 'Authorization URL', kind: 'url', required: true },
        { name: 'token_url', label: 'Token URL', kind: 'url', required: true, half: true },
        { name: 'userinfo_url', label: 'User-info URL', kind: 'url', required: true, half: true },
        ...client,
        SCOPES,
        { name: 'claim_subject', label: 'Subject path', required: true, half: true, helperText: 'In the user-info JSON, e.g. id' },
        { name: 'claim_email', label: 'Email path', required: true, half: true },
        { name: 'claim_name', label: 'Name path', half: true, helperText: 'e.g. login or name' },
        { name: 'claim_groups', label: 'Groups path', half: true },
      ];
    case 'saml':
      return [
        { name: 'metadata_url', label: 'IdP metadata URL', kind: 'url' },
        { name: 'metadata_xml', label: 'or IdP metadata XML', kind: 'multiline', rows: 3 },
        { name: 'attr_email', label: 'Email attribute', required: true, half: true, helperText: 'Name of the SAML attribute' },
        { name: 'attr_name', label: 'Name attribute', half: true },
        { name: 'attr_groups', label: 'Groups attribute', half: true },
        { name: 'mfa_context_classes', label: 'AuthnContextClassRefs that mean MFA', helperText: 'Separated by spaces' },
        { name: 'allow_idp_initiated', label: 'Allow IdP-initiated sign-in (from the IdP’s app portal)', kind: 'switch' },
      ];
  }
}

/** The dialog's fields for a kind; platform-admin groups are offered to platform admins only. */
export function providerFields(kind: SsoKind, opts: { hasSecret: boolean; platformAdmin: boolean }): Field[] {
  return [
    { name: 'display_name', label: 'Button label', required: true, half: true, helperText: 'Shown as “Sign in with …”' },
    { name: 'name', label: 'Name', required: true, half: true, helperText: 'Lower-case letters, digits, dashes' },
    ...kindFields(kind, opts.hasSecret),
    { name: 'domains', label: 'Email domains', helperText: 'Users typing an email of these domains see this provider, e.g. example.com' },
    ...(kind === 'oidc' ? [{ name: 'groups_claim', label: 'Groups claim', half: true, helperText: 'In the ID token or user info' } satisfies Field] : []),
    { name: 'org_admin_groups', label: 'Groups made org admins', half: true, helperText: 'Comma-separated; others are members' },
    ...(opts.platformAdmin
      ? [{ name: 'platform_admin_groups', label: 'Groups made platform admins', helperText: 'Comma-separated; leave empty unless this IdP is trusted with the whole platform' } satisfies Field]
      : []),
    { name: 'enabled', label: 'Enabled (shown on the sign-in page)', kind: 'switch' },
  ];
}
