import { describe, expect, it } from 'vitest';
import type { ListResponse, Session } from '@/types/api';
import { testQueryClient } from '@/testing/render';
import { session } from '@/testing/fixtures';
import { applySessionEvent, sessionKeys } from './sessions';

describe('live session events', () => {
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
