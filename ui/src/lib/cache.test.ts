import { describe, expect, it } from 'vitest';
import type { InfiniteData } from '@tanstack/react-query';
import type { ListResponse } from '@/types/api';
import { replaceInList } from './cache';

describe('live cache patching', () => {
  it('replaces an item in plain and paged lists and keeps identity when absent', () => {
    const list: ListResponse<{ id: string; v: number }> = { items: [{ id: 'a', v: 1 }], next_cursor: null };
    expect(replaceInList(list, { id: 'a', v: 2 })).toEqual({ items: [{ id: 'a', v: 2 }], next_cursor: null });
    expect(replaceInList(list, { id: 'b', v: 2 })).toBe(list);
    const paged: InfiniteData<ListResponse<{ id: string; v: number }>, string | null> = {
      pages: [list, { items: [{ id: 'c', v: 1 }], next_cursor: null }],
      pageParams: [null, 'x'],
    };
    const next = replaceInList(paged, { id: 'c', v: 9 }) as typeof paged;
    expect(next.pages[1]!.items[0]!.v).toBe(9);
    expect(next.pages[0]).toBe(list);
  });
});
