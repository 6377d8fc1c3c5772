import { describe, expect, it } from 'vitest';
import { template } from '@/testing/fixtures';
import type { Pool } from '@/types/api';
import { MAX_POOL_SIZE, describePoolSize, keepsHome, poolSizeOf, validatePoolSize } from './pools';

describe('validatePoolSize', () => {
  it.each(['0', '1', ' 7 ', String(MAX_POOL_SIZE)])('accepts %j', (size) => {
    expect(validatePoolSize({ size })).toEqual({});
  });
  it.each(['', '-1', '1.5', 'abc', String(MAX_POOL_SIZE + 1), '1e1'])('rejects %j', (size) => {
    expect(validatePoolSize({ size }).size).toBe(`A whole number from 0 to ${MAX_POOL_SIZE}`);
  });
});

describe('poolSizeOf', () => {
  const pools: Pool[] = [{ template_id: 't-firefox', template_name: 'firefox', size: 3, agents: [] }];
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
