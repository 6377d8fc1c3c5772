export { ShareButton, WatchingChip } from './components/SharePanel';
export { SharedWithMe } from './components/SharedWithMe';
