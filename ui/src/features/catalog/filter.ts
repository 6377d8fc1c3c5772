import type { Template } from '@/types/api';

/** Case-insensitive search over name, display name, description and tags; every selected tag must match. */
export function filterTemplates(templates: readonly Template[], search: string, tags: readonly string[]): Template[] {
  const words = search.toLowerCase().split(/\s+/).filter(Boolean);
  return templates.filter((t) => {
    if (!t.enabled) return false;
    if (tags.some((tag) => !t.tags.includes(tag))) return false;
    if (words.length === 0) return true;
    const hay = [t.name, t.display_name, t.description, ...t.tags].join(' ').toLowerCase();
    return words.every((w) => hay.includes(w));
  });
}

/** All tags of the enabled templates, most used first, then alphabetical. */
export function collectTags(templates: readonly Template[]): string[] {
  const counts = new Map<string, number>();
  for (const t of templates) {
    if (!t.enabled) continue;
    for (const tag of t.tags) counts.set(tag, (counts.get(tag) ?? 0) + 1);
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([tag]) => tag);
}
