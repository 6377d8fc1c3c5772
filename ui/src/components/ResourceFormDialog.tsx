import { useId, useState, type FormEvent, type ReactNode } from 'react';
import {
  Alert,
  Box,
  Button,
  Dialog,
  DialogActions,
  DialogContent,
  DialogTitle,
  FormControlLabel,
  MenuItem,
  Switch,
  TextField,
} from '@mui/material';
import { errorMessage } from '@/lib/api';

export type FormValues = Record<string, string | boolean>;

export interface FieldSpec<V extends FormValues> {
  name: keyof V & string;
  label: string;
  kind?: 'text' | 'password' | 'number' | 'select' | 'switch' | 'multiline' | 'url';
  options?: { value: string; label: string }[];
  required?: boolean;
  helperText?: ReactNode;
  placeholder?: string;
  autoComplete?: string;
  disabled?: boolean;
  /** Half width on wide screens. */
  half?: boolean;
  rows?: number;
}

export type FormErrors<V> = Partial<Record<keyof V, string>>;

export interface ResourceFormDialogProps<V extends FormValues> {
  open: boolean;
  title: string;
  submitLabel?: string;
  description?: ReactNode;
  fields: FieldSpec<V>[];
  initialValues: V;
  validate?: (values: V) => FormErrors<V>;
  onSubmit: (values: V) => Promise<unknown>;
  onClose: () => void;
}

/** Generic create/edit dialog driven by field specs; used by every admin resource. */
export function ResourceFormDialog<V extends FormValues>(props: ResourceFormDialogProps<V>) {
  const titleId = useId();
  return (
    <Dialog open={props.open} onClose={props.onClose} aria-labelledby={titleId} maxWidth="sm" fullWidth>
      {props.open ? <FormBody {...props} titleId={titleId} /> : null}
    </Dialog>
  );
}

function FormBody<V extends FormValues>({
  title,
  titleId,
  submitLabel = 'Save',
  description,
  fields,
  initialValues,
  validate,
  onSubmit,
  onClose,
}: ResourceFormDialogProps<V> & { titleId: string }) {
  const [values, setValues] = useState<V>(initialValues);
  const [errors, setErrors] = useState<FormErrors<V>>({});
  const [submitError, setSubmitError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const set = (name: keyof V, value: string | boolean) => {
    setValues((v) => ({ ...v, [name]: value }));
    if (errors[name]) setErrors((e) => ({ ...e, [name]: undefined }));
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const errs: FormErrors<V> = validate ? { ...validate(values) } : {};
    for (const f of fields) {
      const v = values[f.name];
      if (f.required && typeof v === 'string' && !v.trim() && !errs[f.name]) errs[f.name] = `${f.label} is required`;
    }
    if (Object.values(errs).some(Boolean)) {
      setErrors(errs);
      return;
    }
    setBusy(true);
    setSubmitError(null);
    try {
      await onSubmit(values);
      onClose();
    } catch (err) {
      setSubmitError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form onSubmit={submit} noValidate>
      <DialogTitle id={titleId}>{title}</DialogTitle>
      <DialogContent>
        {description ? <Box sx={{ mb: 2 }}>{description}</Box> : null}
        {submitError ? (
          <Alert severity="error" sx={{ mb: 2 }}>
            {errorMessage(submitError)}
          </Alert>
        ) : null}
        <Box sx={{ display: 'grid', gridTemplateColumns: { xs: '1fr', sm: '1fr 1fr' }, gap: 2, pt: 1 }}>
          {fields.map((f, i) => {
            const value = values[f.name];
            const error = errors[f.name];
            const span = f.half ? undefined : { gridColumn: '1 / -1' };
            if (f.kind === 'switch') {
              return (
                <Box key={f.name} sx={span}>
                  <FormControlLabel
                    control={
                      <Switch
                        checked={value === true}
                        onChange={(e) => set(f.name, e.target.checked)}
                        disabled={f.disabled}
                      />
                    }
                    label={f.label}
                  />
                </Box>
              );
            }
            return (
              <TextField
                key={f.name}
                sx={span}
                label={f.label}
                name={f.name}
                value={typeof value === 'string' ? value : ''}
                onChange={(e) => set(f.name, e.target.value)}
                type={f.kind === 'password' ? 'password' : f.kind === 'number' ? 'number' : f.kind === 'url' ? 'url' : 'text'}
                select={f.kind === 'select'}
                multiline={f.kind === 'multiline'}
                minRows={f.kind === 'multiline' ? (f.rows ?? 3) : undefined}
                required={f.required}
                disabled={f.disabled}
                placeholder={f.placeholder}
                autoComplete={f.autoComplete ?? (f.kind === 'password' ? 'new-password' : 'off')}
                autoFocus={i === 0}
                error={Boolean(error)}
                helperText={error ?? f.helperText}
                fullWidth
              >
                {f.kind === 'select'
                  ? (f.options ?? []).map((o) => (
                      <MenuItem key={o.value} value={o.value}>
                        {o.label}
                      </MenuItem>
                    ))
                  : undefined}
              </TextField>
            );
          })}
        </Box>
      </DialogContent>
      <DialogActions>
        <Button onClick={onClose} disabled={busy}>
          Cancel
        </Button>
        <Button type="submit" variant="contained" disabled={busy}>
          {busy ? 'Saving…' : submitLabel}
        </Button>
      </DialogActions>
    </form>
  );
}
