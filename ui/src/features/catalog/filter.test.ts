import { describe, expect, it } from 'vitest';
import { template } from '@/testing/fixtures';
import { collectTags, filterTemplates } from './filter';

const all = [
  template({ id: '1', name: 'firefox', display_name: 'Firefox', description: 'Web browser', tags: ['browser', 'web'] }),
  template({ id: '2', name: 'chromium', display_name: 'Chromium', description: 'Open-source browser', tags: ['browser'] }),
  template({ id: '3', name: 'xfce', display_name: 'Ubuntu desktop', description: 'Full Linux desktop', tags: ['desktop'] }),
  template({ id: '4', name: 'hidden', display_name: 'Hidden', tags: ['browser'], enabled: false }),
];

describe('catalog filter', () => {
  it('hides disabled templates', () => {
    expect(filterTemplates(all, '', []).map((t) => t.id)).toEqual(['1', '2', '3']);
  });
  it('searches name, display name, description and tags, case-insensitively, all words', () => {
    expect(filterTemplates(all, 'BROWSER', []).map((t) => t.id)).toEqual(['1', '2']);
    expect(filterTemplates(all, 'linux desk', []).map((t) => t.id)).toEqual(['3']);
    expect(filterTemplates(all, 'web chrom', []).map((t) => t.id)).toEqual([]);
  });
  it('requires every selected tag', () => {
    expect(filterTemplates(all, '', ['browser']).map((t) => t.id)).toEqual(['1', '2']);
    expect(filterTemplates(all, '', ['browser', 'web']).map((t) => t.id)).toEqual(['1']);
  });
  it('collects tags by popularity', () => {
    expect(collectTags(all)).toEqual(['browser', 'desktop', 'web']);
  });
});
