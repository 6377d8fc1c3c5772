import { describe, expect, it } from 'vitest';
import { pool, template } from '@/testing/fixtures';
import type { Pool } from '@/types/api';
import { MAX_POOL_SIZE, activePools, describePoolSize, keepsHome, pausedBecause, poolSizeOf, validatePoolSize } from './pools';

describe('validatePoolSize', () => {
  it.each(['0', '1', ' 7 ', String(MAX_POOL_SIZE)])('accepts %j', (size) => {
    expect(validatePoolSize({ size })).toEqual({});
  });
  it.each(['', '-1', '1.5', 'abc', String(MAX_POOL_SIZE + 1), '1e1'])('rejects %j', (size) => {
    expect(validatePoolSize({ size }).size).toBe(`A whole number from 0 to ${MAX_POOL_SIZE}`);
  });
});

describe('poolSizeOf', () => {
  const pools: Pool[] = [pool({ size: 3 })];
  it('is the pool of the template, 0 without one, unknown before the pools are read', () => {
    expect(poolSizeOf(pools, 't-firefox')).toBe(3);
    expect(poolSizeOf(pools, 't-chromium')).toBe(0);
    expect(poolSizeOf(undefined, 't-firefox')).toBeUndefined();
  });
});

describe('keepsHome', () => {
  it('is true for a user or template home, false without one', () => {
    expect(keepsHome(template())).toBe(false);
    expect(keepsHome(template({ home: { scope: 'user', size_mb: null } }))).toBe(true);
    expect(keepsHome(template({ home: { scope: 'template', size_mb: 512 } }))).toBe(true);
  });
});

describe('describePoolSize', () => {
  it('says Off for 0 and counts per agent otherwise', () => {
    expect(describePoolSize(0)).toBe('Off');
    expect(describePoolSize(4)).toBe('4 per agent');
  });
});

describe('pausedBecause', () => {
  it('names what keeps a pool from serving launches', () => {
    expect(pausedBecause(template())).toBeNull();
    expect(pausedBecause(template({ enabled: false }))).toBe('the template is disabled');
    expect(pausedBecause(template({ enabled: false, home: { scope: 'user', size_mb: null } }))).toBe('its sessions keep a home');
  });
});

describe('activePools', () => {
  it('keeps pools with a size or members left, drops removed ones with nothing left', () => {
    const sized = pool({ size: 1 });
    const draining = pool({ template_id: 't-gimp', size: 0, agents: [{ agent_id: 'a1', ready: 0, starting: 1 }] });
    const removed = pool({ template_id: 't-chromium', size: 0 });
    expect(activePools([sized, draining, removed])).toEqual([sized, draining]);
  });
});
