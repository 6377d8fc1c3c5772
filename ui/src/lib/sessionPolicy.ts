import type { ClipboardPolicy, SessionPolicy } from '@/types/api';

/** The policy of a new org or template: everything allowed, as the server defaults it. */
export const OPEN_SESSION_POLICY: Required<SessionPolicy> = {
  clipboard: 'both',
  file_upload: true,
  file_download: true,
  audio: true,
  microphone: true,
};

/** Every field present: what the server answers, with its defaults (allowed) where a field is left out. */
export type FullSessionPolicy = Required<SessionPolicy>;

export function withDefaults(policy: SessionPolicy): FullSessionPolicy {
  return { ...OPEN_SESSION_POLICY, ...policy };
}

export function samePolicy(a: SessionPolicy, b: SessionPolicy): boolean {
  const [x, y] = [withDefaults(a), withDefaults(b)];
  return (Object.keys(x) as (keyof FullSessionPolicy)[]).every((key) => x[key] === y[key]);
}

export const CLIPBOARD_OPTIONS: { value: ClipboardPolicy; label: string }[] = [
  { value: 'both', label: 'Both ways' },
  { value: 'in', label: 'Into the session only (paste)' },
  { value: 'out', label: 'Out of the session only (copy)' },
  { value: 'off', label: 'Off' },
];

export const POLICY_SWITCHES: { key: 'file_upload' | 'file_download' | 'audio' | 'microphone'; label: string }[] = [
  { key: 'file_upload', label: 'File upload into sessions' },
  { key: 'file_download', label: 'File download from sessions' },
  { key: 'audio', label: 'Sound' },
  { key: 'microphone', label: 'Microphone (needs sound)' },
];

/**
 * Everything inside a session is under its user's control, so the frame gets only what streaming
 * needs: scripts and its own origin (cookies, WebSocket), pointer lock for the remote mouse, and
 * downloads where the policy allows them; no top navigation, popups, forms or modals.
 */
export function sessionIframeSandbox(given: SessionPolicy): string {
  const policy = withDefaults(given);
  const base = 'allow-scripts allow-same-origin allow-pointer-lock';
  return policy.file_download ? `${base} allow-downloads` : base;
}

/**
 * The browser features the session's frame may use. Pasting into the session reads the viewer's
 * clipboard, copying out of it writes there; the streamer enforces the same policy on its side.
 */
export function sessionIframeAllow(given: SessionPolicy): string {
  const policy = withDefaults(given);
  const features = ['autoplay', 'fullscreen'];
  if (policy.clipboard === 'both' || policy.clipboard === 'in') features.push('clipboard-read');
  if (policy.clipboard === 'both' || policy.clipboard === 'out') features.push('clipboard-write');
  if (policy.audio && policy.microphone) features.push('microphone');
  return features.join('; ');
}
