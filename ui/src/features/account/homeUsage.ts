import type { Home } from '@/types/api';

const UNITS = ['KiB', 'MiB', 'GiB', 'TiB'];

/** 3145728 reads as "3 MiB"; below a KiB the bytes are counted. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${Number(value.toFixed(1))} ${UNITS[unit]}`;
}

/**
 * A home's used space, with the share of its size limit it takes. `null` is a home its agent has not measured (yet, or
 * ever: a Kubernetes claim's usage cannot be read).
 */
export function formatHomeUsage(home: Pick<Home, 'used_bytes' | 'size_mb'>): string {
  if (home.used_bytes === null || home.used_bytes === undefined) return 'not measured';
  const used = formatBytes(home.used_bytes);
  if (!home.size_mb) return used;
  const percent = Math.round((home.used_bytes / (home.size_mb * 1024 * 1024)) * 100);
  return `${used} (${percent}% of the limit)`;
}
