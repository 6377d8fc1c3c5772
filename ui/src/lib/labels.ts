/** `key=value` lines <-> label maps (agent labels, template env). */
export function parseLabels(text: string): { labels: Record<string, string>; error?: string } {
  const labels: Record<string, string> = {};
  const lines = text.split(/\r?\n|,/);
  for (const raw of lines) {
    const line = raw.trim();
    if (!line) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) return { labels, error: `“${line}” is not key=value` };
    labels[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  return { labels };
}
