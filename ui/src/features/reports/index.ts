/** What other features may use of the compliance reports feature. */
export { ComplianceSettingsCard } from './components/ComplianceSettingsCard';
