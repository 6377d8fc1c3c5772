/** Network lists (CIDRs such as egress allow lists) <-> the text people edit: one per line or comma-separated. */
export function parseNetworks(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split(/[\s,]+/)) {
    if (raw && !out.includes(raw)) out.push(raw);
  }
  return out;
}

export function formatNetworks(networks: readonly string[]): string {
  return networks.join('\n');
}
