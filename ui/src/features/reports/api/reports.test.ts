import { describe, expect, it } from 'vitest';
import type { ComplianceSettings } from '@/types/api';
import { datesPeriod, mfaPercent, presetPeriod, settingsForm, settingsUpdate } from './reports';

const view: ComplianceSettings = {
  retention_days: 90,
  schedule: 'weekly',
  destination: 'webhook',
  webhook_url: 'http://hooks.example.test/r',
  has_webhook_secret: true,
  directory_available: false,
  delivered_until: null,
  next_attempt_at: null,
  last_error: null,
};

describe('report periods', () => {
  const now = new Date('2026-12-09T15:30:00Z');
  it.each([
    ['last7', '2026-12-02T00:00:00.000Z', '2026-12-09T00:00:00.000Z'],
    ['last30', '2026-11-09T00:00:00.000Z', '2026-12-09T00:00:00.000Z'],
    ['previousMonth', '2026-11-01T00:00:00.000Z', '2026-12-01T00:00:00.000Z'],
  ] as const)('%s covers whole UTC days', (preset, from, to) => {
    expect(presetPeriod(preset, now)).toEqual({ from, to });
  });

  it('the previous month of January is December of the year before', () => {
    expect(presetPeriod('previousMonth', new Date('2027-01-15T00:00:00Z'))).toEqual({
      from: '2026-12-01T00:00:00.000Z',
      to: '2027-01-01T00:00:00.000Z',
    });
  });

  it('custom dates include the last day and refuse a backwards or incomplete range', () => {
    expect(datesPeriod('2026-12-01', '2026-12-01')).toEqual({ from: '2026-12-01T00:00:00.000Z', to: '2026-12-02T00:00:00.000Z' });
    expect(datesPeriod('2026-12-02', '2026-12-01')).toBeNull();
    expect(datesPeriod('', '2026-12-01')).toBeNull();
  });

  it('MFA coverage rounds down, and an org without users is covered', () => {
    expect([mfaPercent(3, 2), mfaPercent(0, 0), mfaPercent(4, 4)]).toEqual([66, 100, 100]);
  });
});

describe('report settings', () => {
  it('org admins send the stored retention whatever the field says, and an empty secret is left out', () => {
    const form = { ...settingsForm(view), retentionDays: '1', schedule: 'daily' as const };
    expect(settingsUpdate(form, view, false)).toEqual({
      body: { retention_days: 90, schedule: 'daily', destination: 'webhook', webhook_url: 'http://hooks.example.test/r' },
    });
  });

  it('platform admins set or clear the retention; a bad number is refused before sending', () => {
    const form = settingsForm(view);
    expect(settingsUpdate({ ...form, retentionDays: '' }, view, true).body?.retention_days).toBeNull();
    expect(settingsUpdate({ ...form, retentionDays: '30' }, view, true).body?.retention_days).toBe(30);
    expect(settingsUpdate({ ...form, retentionDays: '0' }, view, true).error).toMatch(/whole number/);
    expect(settingsUpdate({ ...form, retentionDays: 'ten' }, view, true).body).toBeUndefined();
  });

  it('a new secret is sent for a webhook; no schedule sends no destination', () => {
    const form = { ...settingsForm(view), webhookSecret: 'a-new-secret-0123456789' };
    expect(settingsUpdate(form, view, false).body?.webhook_secret).toBe('a-new-secret-0123456789');
    const off = settingsUpdate({ ...form, schedule: '' }, view, false).body;
    expect(off).toEqual({ retention_days: 90, schedule: null, destination: null, webhook_url: 'http://hooks.example.test/r', webhook_secret: 'a-new-secret-0123456789' });
  });
});
