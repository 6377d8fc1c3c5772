import { api, type Query } from './api';

/**
 * Download an authenticated resource (the bearer header cannot ride on a plain link): fetch it,
 * then save the blob through a temporary object URL.
 */
export async function downloadWithAuth(path: string, query: Query, fallbackName: string): Promise<void> {
  const res = await api.fetch(path, { query, headers: { Accept: 'text/csv, */*' } });
  const blob = await res.blob();
  const disposition = res.headers.get('Content-Disposition') ?? '';
  const match = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition);
  const name = match?.[1] ? decodeURIComponent(match[1]) : fallbackName;
  const url = URL.createObjectURL(blob);
  try {
    const a = document.createElement('a');
    a.href = url;
    a.download = name;
    a.rel = 'noopener';
    document.body.appendChild(a);
    a.click();
    a.remove();
  } finally {
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }
}
