/** What other features may use of the account feature. */
export { MfaEnrollForm, RecoveryCodesDialog } from './components/MfaEnrollForm';
export { MIN_PASSWORD_LENGTH } from './components/PasswordForm';
export { HomeUsageCell } from './components/HomeUsageCell';
