/** Leave the app for another site (an identity provider): a full navigation, not a route change. */
export function leaveAppFor(url: string): void {
  window.location.assign(url);
}
