/** Patch list caches in place from live events (SSE), whatever the list's shape. */
import type { InfiniteData, QueryClient, QueryKey } from '@tanstack/react-query';
import type { ListResponse } from '@/types/api';

type Identified = { id: string };
type ListShape<T> = ListResponse<T> | InfiniteData<ListResponse<T>>;

function isList<T>(data: unknown): data is ListResponse<T> {
  return typeof data === 'object' && data !== null && Array.isArray((data as ListResponse<T>).items);
}

function isInfinite<T>(data: unknown): data is InfiniteData<ListResponse<T>> {
  return typeof data === 'object' && data !== null && Array.isArray((data as InfiniteData<unknown>).pages);
}

/** Replace `item` (by id) in one list value; returns the same object when the item is not in it. */
export function replaceInList<T extends Identified>(data: ListShape<T>, item: T): ListShape<T> {
  if (isInfinite<T>(data)) {
    let changed = false;
    const pages = data.pages.map((page) => {
      const next = replaceInList(page, item) as ListResponse<T>;
      if (next !== page) changed = true;
      return next;
    });
    return changed ? { ...data, pages } : data;
  }
  const idx = data.items.findIndex((i) => i.id === item.id);
  if (idx < 0) return data;
  const items = data.items.slice();
  items[idx] = item;
  return { ...data, items };
}

/**
 * Upsert a live item into every cached list under `prefix`: replaced where present; lists that do not
 * hold it yet are invalidated (the server knows their filters and ordering). Detail caches under
 * `[...detailPrefix, id]` are set directly.
 */
export function applyLiveItem<T extends Identified>(
  qc: QueryClient,
  item: T,
  keys: { lists: QueryKey; detail: (id: string) => QueryKey },
): void {
  qc.setQueryData<T>(keys.detail(item.id), (old) => (old === undefined ? old : item));
  const missing: QueryKey[] = [];
  for (const [key, data] of qc.getQueriesData<unknown>({ queryKey: keys.lists })) {
    if (!isList<T>(data) && !isInfinite<T>(data)) continue;
    const next = replaceInList(data, item);
    if (next === data) missing.push(key);
    else qc.setQueryData(key, next);
  }
  for (const key of missing) void qc.invalidateQueries({ queryKey: key, exact: true });
}
