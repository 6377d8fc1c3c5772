import { describe, expect, it } from 'vitest';
import { OPEN_SESSION_POLICY, sessionIframeAllow, sessionIframeSandbox } from './sessionPolicy';

describe('session frame permissions', () => {
  it('grants the frame everything an open policy allows', () => {
    expect(sessionIframeAllow(OPEN_SESSION_POLICY)).toBe('autoplay; fullscreen; clipboard-read; clipboard-write; microphone');
    expect(sessionIframeSandbox(OPEN_SESSION_POLICY)).toBe('allow-scripts allow-same-origin allow-pointer-lock allow-downloads');
  });

  it('grants one clipboard direction, no microphone without sound and no downloads when closed', () => {
    const closed = { ...OPEN_SESSION_POLICY, clipboard: 'out' as const, audio: false, file_download: false };
    expect(sessionIframeAllow(closed)).toBe('autoplay; fullscreen; clipboard-write');
    expect(sessionIframeAllow({ ...closed, clipboard: 'in' })).toBe('autoplay; fullscreen; clipboard-read');
    expect(sessionIframeAllow({ ...closed, clipboard: 'off' })).toBe('autoplay; fullscreen');
    expect(sessionIframeSandbox(closed)).toBe('allow-scripts allow-same-origin allow-pointer-lock');
  });
});
