/** What other features may use of the sign-in feature. */
export { AuthCard } from './components/AuthCard';
export { MfaCodeStep } from './components/MfaCodeStep';
