import { createContext, useContext, useEffect, useState, type ReactNode } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { api } from '@/lib/api';
import { connectEventStream, type SseMessage, type StreamStatus } from '@/lib/sse';
import { applySessionEvent, sessionKeys } from '@/features/sessions';
import { agentKeys, applyAgentEvent } from '@/features/agents';
import type { Agent, Session } from '@/types/api';

const LiveStatusContext = createContext<StreamStatus>('closed');

export function useLiveStatus(): StreamStatus {
  return useContext(LiveStatusContext);
}

function parse<T>(m: SseMessage): T | null {
  try {
    return JSON.parse(m.data) as T;
  } catch {
    return null;
  }
}

/**
 * Holds `GET /api/v1/events` open while signed in and patches the query caches with what arrives:
 * `event: session` (a session view), `event: agent` (an agent view, platform admins only) and
 * `event: resync` (events were lost: reload).
 */
export function LiveEventsProvider({ children }: { children: ReactNode }) {
  const qc = useQueryClient();
  const [status, setStatus] = useState<StreamStatus>('connecting');
  useEffect(() => {
    const ctrl = new AbortController();
    void connectEventStream({
      client: api,
      signal: ctrl.signal,
      onStatus: setStatus,
      onOpen: (reconnected) => {
        // Events may have been missed while disconnected.
        if (reconnected) {
          void qc.invalidateQueries({ queryKey: sessionKeys.all });
          void qc.invalidateQueries({ queryKey: agentKeys.all });
        }
      },
      onMessage: (m) => {
        if (m.event === 'resync') {
          // The server dropped events for this stream (it fell behind): reload what they would have patched.
          void qc.invalidateQueries({ queryKey: sessionKeys.all });
          void qc.invalidateQueries({ queryKey: agentKeys.all });
        } else if (m.event === 'session') {
          const s = parse<Session>(m);
          if (s?.id) applySessionEvent(qc, s);
        } else if (m.event === 'agent') {
          const a = parse<Agent>(m);
          if (a?.id) applyAgentEvent(qc, a);
        }
      },
    });
    return () => ctrl.abort();
  }, [qc]);
  return <LiveStatusContext.Provider value={status}>{children}</LiveStatusContext.Provider>;
}
