import type { ReactNode } from 'react';
import { IconButton, Tooltip } from '@mui/material';
import DeleteIcon from '@mui/icons-material/Delete';
import { errorMessage } from '@/lib/api';
import { useFeedback, type ConfirmOptions } from './feedback';

export interface ConfirmActionButtonProps {
  /** The button's accessible name, e.g. `Delete user alice`. */
  label: string;
  /** Shown on hover; also says why the button is disabled. */
  tooltip: string;
  icon?: ReactNode;
  disabled?: boolean;
  /** What the dialog asks; the action is always shown as destructive. */
  confirm: Omit<ConfirmOptions, 'destructive'>;
  /** Runs once confirmed (usually a mutation's `mutateAsync`). */
  action: () => Promise<unknown>;
  /** A toast once the action succeeded; none when omitted. */
  success?: string;
  /** Put before the server's message in the error toast, e.g. `Could not stop Firefox`. */
  failure?: string;
}

/**
 * An icon button for what cannot be undone (delete, stop, revoke): it asks first, runs the action, then
 * reports the outcome in a toast.
 */
export function ConfirmActionButton({
  label,
  tooltip,
  icon = <DeleteIcon />,
  disabled = false,
  confirm: question,
  action,
  success,
  failure,
}: ConfirmActionButtonProps) {
  const { confirm, notify } = useFeedback();

  const run = async () => {
    if (!(await confirm({ ...question, destructive: true }))) return;
    try {
      await action();
      if (success) notify(success);
    } catch (e) {
      notify(failure ? `${failure}: ${errorMessage(e)}` : errorMessage(e), 'error');
    }
  };

  return (
    <Tooltip title={tooltip}>
      {/* A disabled button fires no events: the span keeps the tooltip working. */}
      <span>
        <IconButton aria-label={label} color="error" disabled={disabled} onClick={() => void run()}>
          {icon}
        </IconButton>
      </span>
    </Tooltip>
  );
}
