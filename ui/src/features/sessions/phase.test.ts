import { describe, expect, it } from 'vitest';
import { SESSION_PHASES } from '@/types/api';
import { PHASE_LABELS, phaseLabel } from './phase';

describe('session phase labels', () => {
  it('label exactly the phases the server sends', () => {
    expect(Object.keys(PHASE_LABELS).sort()).toEqual([...SESSION_PHASES].sort());
  });

  it('name the phase, or the state before the agent has reported one', () => {
    expect(phaseLabel({ state: 'starting', phase: 'pulling' })).toBe('Pulling image');
    expect(phaseLabel({ state: 'scheduled', phase: 'scheduling' })).toBe('Finding a host');
    expect(phaseLabel({ state: 'pending', phase: null })).toBe('Queued');
    expect(phaseLabel({ state: 'starting' })).toBe('Starting');
  });
});
