import { describe, expect, it } from 'vitest';
import { parseDiscoveryInput, ssoErrorMessage, startUrlFor } from './discover';

describe('parseDiscoveryInput', () => {
  it('reads an email (its domain picks the provider) or an organization name', () => {
    expect(parseDiscoveryInput('  alice@example.com ')).toEqual({ query: { email: 'alice@example.com' } });
    expect(parseDiscoveryInput('Acme-Corp')).toEqual({ query: { org: 'acme-corp' } });
  });

  it('refuses what is neither, before asking the server', () => {
    expect(parseDiscoveryInput('   ')).toEqual({ error: 'Enter your work email or your organization' });
    expect(parseDiscoveryInput('alice@')).toEqual({ error: 'That is not an email address' });
    expect(parseDiscoveryInput('a@b@c.com')).toEqual({ error: 'That is not an email address' });
    expect(parseDiscoveryInput('acme corp')).toHaveProperty('error');
    expect(parseDiscoveryInput('../admin')).toHaveProperty('error');
  });
});

describe('startUrlFor', () => {
  const origin = 'https://ss.example';

  it('adds where to land to the start URL, keeping it relative when it is ours', () => {
    expect(startUrlFor('/api/v1/auth/sso/p1/start', '/sessions', origin)).toBe('/api/v1/auth/sso/p1/start?return_to=%2Fsessions');
    expect(startUrlFor('https://ss.example/api/v1/auth/sso/p1/start', '/', origin)).toBe('/api/v1/auth/sso/p1/start');
  });

  it('never passes on a return_to outside the app', () => {
    expect(startUrlFor('/api/v1/auth/sso/p1/start', '//evil.example/x', origin)).toBe('/api/v1/auth/sso/p1/start');
    expect(startUrlFor('/api/v1/auth/sso/p1/start', 'https://evil.example', origin)).toBe('/api/v1/auth/sso/p1/start');
  });
});

describe('ssoErrorMessage', () => {
  it('explains the known codes and names an unknown one', () => {
    expect(ssoErrorMessage('link_required')).toMatch(/link this provider from your account page/);
    expect(ssoErrorMessage('account_disabled')).toMatch(/disabled/);
    expect(ssoErrorMessage('something_new')).toMatch(/\(something_new\)/);
  });
});
