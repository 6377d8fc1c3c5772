import { queryOptions, useMutation, useQueryClient } from '@tanstack/react-query';
import { api } from '@/lib/api';
import { formatNetworks, parseNetworks } from '@/lib/networks';
import { OPEN_SESSION_POLICY, withDefaults } from '@/lib/sessionPolicy';
import type { ClipboardPolicy, HomeScope, Template, TemplateInput, TemplatePatch } from '@/types/api';

export const templateKeys = {
  all: ['templates'] as const,
  lists: () => ['templates', 'list'] as const,
  detail: (id: string) => ['templates', 'detail', id] as const,
};

/** Every template in scope. The catalog shows the enabled ones and filters client-side. */
export const getTemplatesQueryOptions = () =>
  queryOptions({
    queryKey: templateKeys.lists(),
    queryFn: ({ signal }) => api.listAll<Template>('/templates', {}, signal),
    staleTime: 60_000,
  });

export const getTemplateQueryOptions = (id: string) =>
  queryOptions({
    queryKey: templateKeys.detail(id),
    queryFn: ({ signal }) => api.get<Template>(`/templates/${encodeURIComponent(id)}`, undefined, signal),
  });

/**
 * What the caller may send: platform administrators set everything; others create in their own
 * organization and leave the egress allow list alone (the API refuses it from them).
 */
export function inputFor(input: TemplateInput, caller: { platformAdmin: boolean; orgId: string }): TemplateInput {
  if (caller.platformAdmin) return input;
  const { egress_allow: _egress, ...own } = input;
  return { ...own, org_id: caller.orgId };
}

/** What `PATCH /templates/{id}` takes: everything but the name and the scope, fixed at creation. */
export function toTemplatePatch(input: TemplateInput): TemplatePatch {
  const { name: _name, org_id: _orgId, ...patch } = input;
  return patch;
}

export function useSaveTemplate() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (v: { id: string; patch: TemplatePatch } | { input: TemplateInput }) =>
      'patch' in v
        ? api.patch<Template>(`/templates/${encodeURIComponent(v.id)}`, v.patch)
        : api.post<Template>('/templates', v.input),
    onSuccess: () => qc.invalidateQueries({ queryKey: templateKeys.all }),
  });
}

export function useDeleteTemplate() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => api.delete(`/templates/${encodeURIComponent(id)}`),
    onSuccess: () => qc.invalidateQueries({ queryKey: templateKeys.all }),
  });
}

// ---- validation (mirrors the server's rules so errors show before the round trip) ----

export const TEMPLATE_NAME_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
const ENV_KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The template form's raw values: numbers and maps are edited as text. */
export type TemplateFormValues = {
  name: string;
  display_name: string;
  description: string;
  icon: string;
  image: string;
  env: string;
  cpu_millis: string;
  memory_mb: string;
  shm_mb: string;
  port: string;
  tags: string;
  enabled: boolean;
  org_id: string;
  egress_allow: string;
  /** The template's session policy, flattened: the clipboard's direction and one switch per channel. */
  clipboard: ClipboardPolicy;
  file_upload: boolean;
  file_download: boolean;
  audio: boolean;
  microphone: boolean;
  home_scope: HomeScope;
  /** MiB, empty for no limit. */
  home_size_mb: string;
};

export const HOME_SCOPE_OPTIONS: { value: HomeScope; label: string }[] = [
  { value: 'none', label: 'None: files go with the session' },
  { value: 'user', label: "The user's home, shared by applications" },
  { value: 'template', label: 'A home of its own for this template' },
];

export type TemplateErrors = Partial<Record<keyof TemplateFormValues, string>>;

export const EMPTY_TEMPLATE_FORM: TemplateFormValues = {
  name: '',
  display_name: '',
  description: '',
  icon: '',
  image: '',
  env: '',
  cpu_millis: '2000',
  memory_mb: '2048',
  shm_mb: '256',
  port: '8080',
  tags: '',
  enabled: true,
  org_id: '',
  egress_allow: '',
  ...OPEN_SESSION_POLICY,
  home_scope: 'none',
  home_size_mb: '',
};

export function templateToForm(t: Template): TemplateFormValues {
  return {
    name: t.name,
    display_name: t.display_name,
    description: t.description,
    icon: t.icon,
    image: t.image,
    env: Object.entries(t.env)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n'),
    cpu_millis: String(t.cpu_millis),
    memory_mb: String(t.memory_mb),
    shm_mb: String(t.shm_mb),
    port: String(t.port),
    tags: t.tags.join(', '),
    enabled: t.enabled,
    org_id: t.org_id ?? '',
    egress_allow: formatNetworks(t.egress_allow),
    ...withDefaults(t.session_policy),
    home_scope: t.home.scope ?? 'none',
    home_size_mb: t.home.size_mb?.toString() ?? '',
  };
}

export function parseEnv(text: string): { env: Record<string, string>; error?: string } {
  const env: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]?.trim() ?? '';
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    const key = eq < 0 ? line : line.slice(0, eq).trim();
    if (eq < 0 || !ENV_KEY_RE.test(key)) return { env, error: `Line ${n + 1}: use KEY=value` };
    env[key] = line.slice(eq + 1);
  }
  return { env };
}

export function parseTags(text: string): string[] {
  const out: string[] = [];
  for (const t of text.split(',')) {
    const tag = t.trim().toLowerCase();
    if (tag && !out.includes(tag)) out.push(tag);
  }
  return out;
}

function positiveInt(raw: string, label: string, max = Number.MAX_SAFE_INTEGER): string | undefined {
  const v = raw.trim();
  if (!/^\d+$/.test(v)) return `${label} must be a positive whole number`;
  const n = Number(v);
  if (n <= 0) return `${label} must be positive`;
  if (n > max) return `${label} must be at most ${max}`;
  return undefined;
}

export function validateTemplate(v: TemplateFormValues): TemplateErrors {
  const errors: TemplateErrors = {};
  if (!TEMPLATE_NAME_RE.test(v.name)) {
    errors.name =
      'Lowercase letters, digits and dashes; starts with a letter or digit; at most 63 characters';
  }
  if (!v.display_name.trim()) errors.display_name = 'Display name is required';
  else if ([...v.display_name.trim()].length > 100) errors.display_name = 'At most 100 characters';
  if (!v.image.trim()) errors.image = 'Image is required';
  else if (/\s/.test(v.image.trim())) errors.image = 'Image must not contain spaces';
  else if (v.image.trim().length > 255) errors.image = 'At most 255 characters';
  const icon = v.icon.trim();
  if (icon && !/^(https?:\/\/|data:image\/|\/)/.test(icon)) errors.icon = 'Icon must be an http(s) URL, a path or a data:image URL';
  const cpu = positiveInt(v.cpu_millis, 'CPU (millicores)');
  if (cpu) errors.cpu_millis = cpu;
  const mem = positiveInt(v.memory_mb, 'Memory (MiB)');
  if (mem) errors.memory_mb = mem;
  const shm = positiveInt(v.shm_mb, 'Shared memory (MiB)');
  if (shm) errors.shm_mb = shm;
  const port = positiveInt(v.port, 'Port', 65535);
  if (port) errors.port = port;
  const homeSize = v.home_size_mb.trim() ? positiveInt(v.home_size_mb, 'Home size (MiB)') : undefined;
  if (homeSize) errors.home_size_mb = homeSize;
  const env = parseEnv(v.env);
  if (env.error) errors.env = env.error;
  const tags = parseTags(v.tags);
  if (tags.length > 20 || tags.some((t) => [...t].length > 40)) errors.tags = 'At most 20 tags of at most 40 characters';
  return errors;
}

export function formToTemplateInput(v: TemplateFormValues): TemplateInput {
  return {
    org_id: v.org_id || null,
    name: v.name.trim(),
    display_name: v.display_name.trim(),
    description: v.description.trim(),
    icon: v.icon.trim(),
    image: v.image.trim(),
    env: parseEnv(v.env).env,
    cpu_millis: Number(v.cpu_millis),
    memory_mb: Number(v.memory_mb),
    shm_mb: Number(v.shm_mb),
    port: Number(v.port),
    tags: parseTags(v.tags),
    enabled: v.enabled,
    egress_allow: parseNetworks(v.egress_allow),
    session_policy: {
      clipboard: v.clipboard,
      file_upload: v.file_upload,
      file_download: v.file_download,
      audio: v.audio,
      microphone: v.microphone,
    },
    home: { scope: v.home_scope, size_mb: v.home_size_mb.trim() ? Number(v.home_size_mb) : null },
  };
}
