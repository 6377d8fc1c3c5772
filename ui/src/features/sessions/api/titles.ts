import { useMemo } from 'react';
import { useQuery } from '@tanstack/react-query';
import { getTemplatesQueryOptions } from '@/features/templates/api/templates';
import type { Session } from '@/types/api';

/**
 * Sessions carry their template's `name` (a slug such as `firefox`); people know templates by their
 * display name. This resolves it from the templates list (cached for the catalog anyway), falling back
 * to the slug for templates the caller cannot list (e.g. disabled ones, for members).
 */
export function useSessionTitle(): (s: Pick<Session, 'template_id' | 'template_name'>) => string {
  const templates = useQuery(getTemplatesQueryOptions());
  return useMemo(() => {
    const names = new Map(templates.data?.items.map((t) => [t.id, t.display_name]));
    return (s) => names.get(s.template_id) ?? s.template_name;
  }, [templates.data]);
}
