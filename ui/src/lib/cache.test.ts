import { describe, expect, it } from 'vitest';
import type { InfiniteData } from '@tanstack/react-query';
import type { ListResponse, Session } from '@/types/api';
import { applySessionEvent, sessionKeys } from '@/features/sessions/api/sessions';
import { testQueryClient } from '@/testing/render';
import { session } from '@/testing/fixtures';
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

  it('applies a session event to the detail and list caches, invalidating lists that lack it', () => {
    const qc = testQueryClient();
    const s = session({ state: 'starting', progress: 10 });
    qc.setQueryData(sessionKeys.detail('s1'), s);
    qc.setQueryData(sessionKeys.list({ owner_id: 'u1' }), { items: [s], next_cursor: null });
    qc.setQueryData(sessionKeys.list({ state: 'failed' }), { items: [], next_cursor: null });
    applySessionEvent(qc, { ...s, state: 'running', progress: null });
    expect(qc.getQueryData<Session>(sessionKeys.detail('s1'))?.state).toBe('running');
    expect(qc.getQueryData<ListResponse<Session>>(sessionKeys.list({ owner_id: 'u1' }))?.items[0]?.state).toBe('running');
    expect(qc.getQueryState(sessionKeys.list({ state: 'failed' }))?.isInvalidated).toBe(true);
    expect(qc.getQueryState(sessionKeys.list({ owner_id: 'u1' }))?.isInvalidated).toBe(false);
  });
});
