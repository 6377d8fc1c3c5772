import { createContext, useCallback, useContext, useMemo, useRef, useState, type ReactNode } from 'react';
import {
  Alert,
  Button,
  Dialog,
  DialogActions,
  DialogContent,
  DialogContentText,
  DialogTitle,
  Snackbar,
} from '@mui/material';

export interface ConfirmOptions {
  title: string;
  message?: ReactNode;
  confirmLabel?: string;
  destructive?: boolean;
}

type Severity = 'success' | 'info' | 'warning' | 'error';

interface FeedbackValue {
  confirm: (o: ConfirmOptions) => Promise<boolean>;
  notify: (message: string, severity?: Severity) => void;
}

const FeedbackContext = createContext<FeedbackValue | null>(null);

/** Confirmation dialogs and toasts for the whole app. */
export function FeedbackProvider({ children }: { children: ReactNode }) {
  const [pending, setPending] = useState<ConfirmOptions | null>(null);
  const resolver = useRef<((ok: boolean) => void) | null>(null);
  const [toast, setToast] = useState<{ key: number; message: string; severity: Severity } | null>(null);

  const confirm = useCallback((o: ConfirmOptions) => {
    resolver.current?.(false);
    setPending(o);
    return new Promise<boolean>((resolve) => {
      resolver.current = resolve;
    });
  }, []);

  const close = (ok: boolean) => {
    resolver.current?.(ok);
    resolver.current = null;
    setPending(null);
  };

  const notify = useCallback((message: string, severity: Severity = 'success') => {
    setToast({ key: Date.now(), message, severity });
  }, []);

  const value = useMemo(() => ({ confirm, notify }), [confirm, notify]);

  return (
    <FeedbackContext.Provider value={value}>
      {children}
      <Dialog open={pending !== null} onClose={() => close(false)} aria-labelledby="confirm-title" maxWidth="xs" fullWidth>
        <DialogTitle id="confirm-title">{pending?.title}</DialogTitle>
        {pending?.message ? (
          <DialogContent>
            <DialogContentText component="div">{pending.message}</DialogContentText>
          </DialogContent>
        ) : null}
        <DialogActions>
          <Button onClick={() => close(false)}>Cancel</Button>
          <Button
            variant="contained"
            color={pending?.destructive ? 'error' : 'primary'}
            onClick={() => close(true)}
            autoFocus
          >
            {pending?.confirmLabel ?? 'Confirm'}
          </Button>
        </DialogActions>
      </Dialog>
      <Snackbar
        key={toast?.key}
        open={toast !== null}
        autoHideDuration={5000}
        onClose={(_e, reason) => reason !== 'clickaway' && setToast(null)}
        anchorOrigin={{ vertical: 'bottom', horizontal: 'center' }}
      >
        {toast ? (
          <Alert severity={toast.severity} variant="filled" onClose={() => setToast(null)} sx={{ width: '100%' }}>
            {toast.message}
          </Alert>
        ) : undefined}
      </Snackbar>
    </FeedbackContext.Provider>
  );
}

export function useFeedback(): FeedbackValue {
  const ctx = useContext(FeedbackContext);
  if (!ctx) throw new Error('useFeedback outside FeedbackProvider');
  return ctx;
}
