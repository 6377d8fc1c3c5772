import { describe, expect, it } from 'vitest';
import { identityProvider } from '@/testing/fixtures';
import { newProviderValues, providerFields, providerInput, providerPatch, providerValues, validateProvider } from './providerForm';

describe('provider form', () => {
  it('builds an OAuth2 provider (GitHub style) with its claim paths and lists split the right way', () => {
    const v = {
      ...newProviderValues('oauth2'),
      name: 'github',
      display_name: 'GitHub',
      domains: 'Example.com, example.org',
      authorize_url: 'https://github.com/login/oauth/authorize',
      token_url: 'https://github.com/login/oauth/access_token',
      userinfo_url: 'https://api.github.com/user',
      client_id: 'cid',
      client_secret: 's3cret',
      claim_name: 'login',
      org_admin_groups: 'Domain Admins, ops',
    };
    expect(validateProvider('oauth2', v)).toEqual({});
    expect(providerInput('oauth2', v)).toEqual({
      name: 'github',
      display_name: 'GitHub',
      kind: 'oauth2',
      enabled: true,
      domains: ['example.com', 'example.org'],
      oauth2: {
        authorize_url: 'https://github.com/login/oauth/authorize',
        token_url: 'https://github.com/login/oauth/access_token',
        userinfo_url: 'https://api.github.com/user',
        client_id: 'cid',
        client_secret: 's3cret',
        scopes: ['read:user', 'user:email'],
        claims: { subject: 'id', email: 'email', name: 'login', groups: null },
      },
      role_mapping: { groups_claim: null, org_admin_groups: ['Domain Admins', 'ops'], platform_admin_groups: [], default_role: 'member' },
    });
  });

  it('keeps the stored secret when the field is left empty, and the platform-admin groups a platform admin set', () => {
    const values = providerValues(identityProvider());
    expect(values.client_secret).toBe('');
    const unchanged = providerPatch('oidc', values);
    expect(unchanged.oidc).not.toHaveProperty('client_secret');
    expect(unchanged).not.toHaveProperty('kind');
    expect(providerPatch('oidc', { ...values, client_secret: 'new' })).toMatchObject({
      oidc: { issuer: 'https://kc.example/realms/acme', client_secret: 'new', scopes: ['openid', 'email'], acr_mfa_values: ['mfa'] },
      role_mapping: { groups_claim: 'groups', org_admin_groups: ['Domain Admins'], platform_admin_groups: ['root'] },
    });
    const names = (platformAdmin: boolean) => providerFields('oidc', { hasSecret: true, platformAdmin }).map((f) => f.name);
    expect(names(false)).not.toContain('platform_admin_groups');
    expect(names(true)).toContain('platform_admin_groups');
  });

  it('needs SAML metadata by URL or XML, and refuses bad names and URLs', () => {
    const saml = { ...newProviderValues('saml'), name: 'okta', display_name: 'Okta' };
    expect(validateProvider('saml', saml)).toEqual({ metadata_url: 'The metadata URL or the metadata XML' });
    const byXml = { ...saml, metadata_xml: '<EntityDescriptor/>', attr_groups: 'memberOf' };
    expect(validateProvider('saml', byXml)).toEqual({});
    expect(providerInput('saml', byXml)).toMatchObject({
      saml: { metadata_url: null, metadata_xml: '<EntityDescriptor/>', allow_idp_initiated: false, attributes: { groups: 'memberOf' } },
      role_mapping: { groups_claim: 'memberOf' },
    });
    expect(validateProvider('oidc', { ...newProviderValues('oidc'), name: 'Bad Name', issuer: 'javascript:x' })).toEqual({
      name: 'Lower-case letters, digits and dashes, starting with a letter or digit',
      issuer: 'An http(s) URL',
    });
  });
});
