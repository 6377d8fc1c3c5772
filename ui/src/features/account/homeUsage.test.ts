import { describe, expect, it } from 'vitest';
import { formatBytes, formatHomeUsage } from './homeUsage';

describe('home usage', () => {
  it('counts bytes in binary units', () => {
    expect(formatBytes(0)).toBe('0 bytes');
    expect(formatBytes(1023)).toBe('1023 bytes');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(3 * 1024 * 1024)).toBe('3 MiB');
    expect(formatBytes(5 * 1024 ** 5)).toBe('5120 TiB');
  });

  it('shows the used space with its share of the limit, and an unmeasured home as such', () => {
    expect(formatHomeUsage({ used_bytes: 128 * 1024 * 1024, size_mb: 512 })).toBe('128 MiB (25% of the limit)');
    expect(formatHomeUsage({ used_bytes: 4096, size_mb: null })).toBe('4 KiB');
    expect(formatHomeUsage({ used_bytes: null, size_mb: 512 })).toBe('not measured');
  });
});
