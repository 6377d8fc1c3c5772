/** What other features may use of the single sign-on feature. */
export { LinkedIdentitiesSection } from './components/LinkedIdentitiesSection';
export { IdentityProvidersSection } from './components/IdentityProvidersSection';
export { OrgSsoButtons, SsoDiscoveryForm } from './components/SsoSignIn';
