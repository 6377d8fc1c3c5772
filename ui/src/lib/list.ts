import {
  useInfiniteQuery,
  useQuery,
  type InfiniteData,
  type QueryKey,
  type UseInfiniteQueryOptions,
  type UseQueryOptions,
  type UseQueryResult,
} from '@tanstack/react-query';
import type { ListResponse } from '@/types/api';

/** What the generic list view needs, whichever way the list was fetched. */
export interface ListState<T> {
  items: T[] | undefined;
  isLoading: boolean;
  error: unknown;
  hasMore: boolean;
  isLoadingMore: boolean;
  loadMore: () => void;
  refetch: () => void;
}

/** A list fetched whole (`listAll`). */
export function useListQuery<T, K extends QueryKey>(
  options: UseQueryOptions<ListResponse<T>, Error, ListResponse<T>, K>,
): ListState<T> {
  const q = useQuery(options);
  return wholeList(q, q.data?.items);
}

/** A list the API answers as a plain array, unpaged. */
export function useArrayQuery<T, K extends QueryKey>(options: UseQueryOptions<T[], Error, T[], K>): ListState<T> {
  const q = useQuery(options);
  return wholeList(q, q.data);
}

function wholeList<T>(q: UseQueryResult<unknown>, items: T[] | undefined): ListState<T> {
  return {
    items,
    isLoading: q.isPending,
    error: q.error,
    hasMore: false,
    isLoadingMore: false,
    loadMore: () => undefined,
    refetch: () => void q.refetch(),
  };
}

/** A cursor-paginated list with a "Load more" button. */
export function useCursorList<T, K extends QueryKey>(
  options: UseInfiniteQueryOptions<ListResponse<T>, Error, InfiniteData<ListResponse<T>>, K, string | null>,
): ListState<T> {
  const q = useInfiniteQuery(options);
  return {
    items: q.data?.pages.flatMap((p) => p.items),
    isLoading: q.isPending,
    error: q.error,
    hasMore: q.hasNextPage,
    isLoadingMore: q.isFetchingNextPage,
    loadMore: () => void q.fetchNextPage(),
    refetch: () => void q.refetch(),
  };
}
