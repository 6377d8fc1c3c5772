import { safeRedirect } from '@/lib/redirect';
import type { DiscoveryQuery } from './api/sso';

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const ORG_NAME = /^[a-z0-9][a-z0-9-]*$/;

/**
 * What the sign-in box holds: a work email (its domain leads to the provider) or an organization's name.
 * Anything else is refused here, before asking the server.
 */
export function parseDiscoveryInput(raw: string): { query: DiscoveryQuery } | { error: string } {
  const value = raw.trim();
  if (!value) return { error: 'Enter your work email or your organization' };
  if (value.includes('@')) {
    return EMAIL.test(value) ? { query: { email: value } } : { error: 'That is not an email address' };
  }
  const org = value.toLowerCase();
  return ORG_NAME.test(org) ? { query: { org } } : { error: 'Organization names have only letters, digits and dashes' };
}

/**
 * The provider's start URL with where to land once signed in; the server checks `return_to` again (it is
 * only ever a path of this app).
 */
export function startUrlFor(startUrl: string, returnTo: string, origin: string = window.location.origin): string {
  const url = new URL(startUrl, origin);
  const target = safeRedirect(returnTo);
  if (target !== '/') url.searchParams.set('return_to', target);
  return url.origin === origin ? url.pathname + url.search : url.href;
}

const SSO_ERRORS: Record<string, string> = {
  sso_failed: 'The identity provider did not confirm who you are. Try again, or ask your administrator.',
  account_disabled: 'Your account is disabled. Ask your administrator.',
  link_required:
    'An account with your email already exists here. Sign in with your password, then link this provider from your account page.',
  provider_disabled: 'This sign-in option is turned off. Ask your administrator.',
  identity_taken: 'That identity is already linked to another account.',
  already_linked: 'Your account is already linked to an identity at this provider: unlink it first.',
};

/** A sentence for the stable error code an SSO flow ends with (`/login/sso?error=` and `/account?link_error=`). */
export function ssoErrorMessage(code: string): string {
  return SSO_ERRORS[code] ?? `Single sign-on failed (${code}). Try again, or ask your administrator.`;
}

export const SSO_KIND_LABELS = { oidc: 'OpenID Connect', oauth2: 'OAuth 2.0', saml: 'SAML 2.0' } as const;
