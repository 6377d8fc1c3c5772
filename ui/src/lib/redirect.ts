/**
 * A path of this app to go to after signing in, or `/`: never a protocol-relative or absolute URL (an
 * attacker's link could otherwise send a freshly signed-in user anywhere), never back to a sign-in page.
 */
export function safeRedirect(target: unknown): string {
  if (typeof target !== 'string' || !target.startsWith('/') || target.startsWith('//') || target.startsWith('/\\')) return '/';
  return target === '/login' || target.startsWith('/login/') || target.startsWith('/login?') ? '/' : target;
}
