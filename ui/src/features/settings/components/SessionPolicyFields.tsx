import { FormControlLabel, MenuItem, Stack, Switch, TextField } from '@mui/material';
import { CLIPBOARD_OPTIONS, POLICY_SWITCHES, type FullSessionPolicy } from '@/lib/sessionPolicy';
import type { ClipboardPolicy } from '@/types/api';

/** The controls of one session policy: the clipboard's direction and a switch per channel. */
export function SessionPolicyFields({ value, onChange }: { value: FullSessionPolicy; onChange: (next: FullSessionPolicy) => void }) {
  return (
    <Stack spacing={1}>
      <TextField
        select
        label="Clipboard"
        value={value.clipboard}
        onChange={(e) => onChange({ ...value, clipboard: e.target.value as ClipboardPolicy })}
        helperText="Between the viewer's computer and the session; the streamer refuses the closed directions"
      >
        {CLIPBOARD_OPTIONS.map((o) => (
          <MenuItem key={o.value} value={o.value}>
            {o.label}
          </MenuItem>
        ))}
      </TextField>
      {POLICY_SWITCHES.map((s) => (
        <FormControlLabel
          key={s.key}
          control={<Switch checked={value[s.key]} onChange={(e) => onChange({ ...value, [s.key]: e.target.checked })} />}
          label={s.label}
        />
      ))}
    </Stack>
  );
}
