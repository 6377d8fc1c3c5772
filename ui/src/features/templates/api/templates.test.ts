import { describe, expect, it } from 'vitest';
import { template } from '@/testing/fixtures';
import {
  EMPTY_TEMPLATE_FORM,
  TEMPLATE_NAME_RE,
  formToTemplateInput,
  inputFor,
  parseEnv,
  parseTags,
  templateToForm,
  toTemplatePatch,
  validateTemplate,
  type TemplateFormValues,
} from './templates';

const valid: TemplateFormValues = { ...EMPTY_TEMPLATE_FORM, name: 'firefox', display_name: 'Firefox', image: 'ghcr.io/x/firefox:1' };

describe('template name rule ^[a-z0-9][a-z0-9-]{0,62}$', () => {
  it.each(['a', '0', 'firefox', 'ubuntu-xfce', 'a-', '9lives', 'a'.repeat(63)])('accepts %s', (n) => {
    expect(TEMPLATE_NAME_RE.test(n)).toBe(true);
    expect(validateTemplate({ ...valid, name: n }).name).toBeUndefined();
  });
  it.each(['', '-a', 'Firefox', 'fire_fox', 'fire fox', 'a'.repeat(64), 'é', 'a.b'])('rejects %j', (n) => {
    expect(validateTemplate({ ...valid, name: n }).name).toBeDefined();
  });
});

describe('validateTemplate', () => {
  it('accepts a complete template', () => {
    expect(validateTemplate(valid)).toEqual({});
  });

  it('requires an image and a display name', () => {
    const e = validateTemplate({ ...valid, image: '  ', display_name: '' });
    expect(e.image).toMatch(/required/);
    expect(e.display_name).toMatch(/required/);
  });

  it('requires positive whole-number limits', () => {
    const e = validateTemplate({ ...valid, cpu_millis: '0', memory_mb: '-5', shm_mb: '1.5', port: 'abc' });
    expect(e.cpu_millis).toMatch(/positive/);
    expect(e.memory_mb).toMatch(/positive/);
    expect(e.shm_mb).toMatch(/positive/);
    expect(e.port).toMatch(/positive/);
    expect(validateTemplate({ ...valid, port: '70000' }).port).toMatch(/65535/);
  });

  it('checks icon URLs and env lines', () => {
    expect(validateTemplate({ ...valid, icon: 'javascript:alert(1)' }).icon).toBeDefined();
    expect(validateTemplate({ ...valid, icon: 'data:image/png;base64,AAAA' }).icon).toBeUndefined();
    expect(validateTemplate({ ...valid, icon: 'https://example.org/i.png' }).icon).toBeUndefined();
    expect(validateTemplate({ ...valid, env: 'GOOD=1\nnot a pair' }).env).toMatch(/Line 2/);
  });
});

describe('form conversion', () => {
  it('parses env and tags', () => {
    expect(parseEnv('# comment\nA=1\n\nB= two = three ').env).toEqual({ A: '1', B: ' two = three' });
    expect(parseTags('Browser, web, ,browser')).toEqual(['browser', 'web']);
  });

  it('round-trips a template through the form', () => {
    const t = template({
      env: { LANG: 'en_US.UTF-8' },
      tags: ['browser', 'web'],
      org_id: 'o1',
      egress_allow: ['10.1.0.0/16', '192.168.5.0/24'],
      session_policy: { clipboard: 'out', file_upload: false, file_download: true, audio: true, microphone: false },
      home: { scope: 'template', size_mb: 2048 },
    });
    const input = formToTemplateInput(templateToForm(t));
    expect(input).toEqual({
      org_id: 'o1',
      name: t.name,
      display_name: t.display_name,
      description: t.description,
      icon: t.icon,
      image: t.image,
      env: t.env,
      cpu_millis: t.cpu_millis,
      memory_mb: t.memory_mb,
      shm_mb: t.shm_mb,
      port: t.port,
      tags: t.tags,
      enabled: t.enabled,
      egress_allow: t.egress_allow,
      session_policy: t.session_policy,
      home: t.home,
    });
    expect(formToTemplateInput({ ...valid, org_id: '' }).org_id).toBeNull();
  });
});

describe('what a caller sends', () => {
  const input = formToTemplateInput({ ...valid, org_id: '', egress_allow: '10.1.0.0/16, 10.2.0.0/16\n10.1.0.0/16' });

  it('platform administrators send the scope and the egress allow list as given', () => {
    expect(inputFor(input, { platformAdmin: true, orgId: 'o1' })).toMatchObject({ org_id: null, egress_allow: ['10.1.0.0/16', '10.2.0.0/16'] });
  });

  it('others create in their own organization and never send an egress allow list', () => {
    const own = inputFor(input, { platformAdmin: false, orgId: 'o1' });
    expect(own.org_id).toBe('o1');
    expect(own).not.toHaveProperty('egress_allow');
    expect(toTemplatePatch(own)).not.toHaveProperty('egress_allow');
  });
});

describe('PATCH body', () => {
  it('leaves out the name and the scope (fixed at creation; PATCH /templates/{id} does not take them)', () => {
    const patch = toTemplatePatch(formToTemplateInput(templateToForm(template({ org_id: 'o1' }))));
    expect(patch).not.toHaveProperty('name');
    expect(patch).not.toHaveProperty('org_id');
    expect(patch).toMatchObject({ display_name: 'Firefox', image: 'streamspace/firefox:1', enabled: true });
  });

  it('checks tags like the API: at most 20 of at most 40 characters', () => {
    expect(validateTemplate({ ...valid, tags: Array.from({ length: 21 }, (_, i) => `t${i}`).join(',') }).tags).toBeDefined();
    expect(validateTemplate({ ...valid, tags: 'x'.repeat(41) }).tags).toBeDefined();
    expect(validateTemplate({ ...valid, tags: 'browser, web' }).tags).toBeUndefined();
  });
});
