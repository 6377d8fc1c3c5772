export { AllowListCard } from './components/AllowListCard';
