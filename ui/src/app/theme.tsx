import { createContext, useContext, useMemo, useState, type ReactNode } from 'react';
import { CssBaseline, ThemeProvider, createTheme, useMediaQuery } from '@mui/material';

export type ThemePreference = 'system' | 'light' | 'dark';

interface ThemeModeValue {
  preference: ThemePreference;
  mode: 'light' | 'dark';
  setPreference: (p: ThemePreference) => void;
  toggle: () => void;
}

const ThemeModeContext = createContext<ThemeModeValue | null>(null);

const STORAGE_KEY = 'streamspace.theme';

// Only the colour-scheme preference is persisted; credentials never touch Web Storage.
function loadPreference(): ThemePreference {
  try {
    const v = window.localStorage.getItem(STORAGE_KEY);
    return v === 'light' || v === 'dark' ? v : 'system';
  } catch {
    return 'system';
  }
}

function savePreference(p: ThemePreference): void {
  try {
    if (p === 'system') window.localStorage.removeItem(STORAGE_KEY);
    else window.localStorage.setItem(STORAGE_KEY, p);
  } catch {
    // storage disabled: the preference lasts for this page only
  }
}

export function buildTheme(mode: 'light' | 'dark') {
  return createTheme({
    palette: {
      mode,
      primary: { main: mode === 'dark' ? '#7fb4ff' : '#1f5fbf' },
      secondary: { main: mode === 'dark' ? '#f5a97f' : '#b5471b' },
      background: mode === 'dark' ? { default: '#0f1318', paper: '#161b22' } : { default: '#f6f7f9', paper: '#ffffff' },
    },
    shape: { borderRadius: 8 },
    typography: {
      // System fonts only: the UI is served offline-capable from the binary, no web fonts.
      fontFamily:
        'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "Noto Sans", "Liberation Sans", Arial, sans-serif',
      h1: { fontSize: '1.75rem', fontWeight: 600 },
      h2: { fontSize: '1.35rem', fontWeight: 600 },
      h3: { fontSize: '1.1rem', fontWeight: 600 },
    },
    components: {
      MuiButtonBase: { defaultProps: { disableRipple: false } },
      MuiTableCell: { styleOverrides: { head: { fontWeight: 600 } } },
    },
  });
}

export function ThemeModeProvider({ children, initial }: { children: ReactNode; initial?: ThemePreference }) {
  const prefersDark = useMediaQuery('(prefers-color-scheme: dark)', { noSsr: true });
  const [preference, setPref] = useState<ThemePreference>(() => initial ?? loadPreference());
  const mode: 'light' | 'dark' = preference === 'system' ? (prefersDark ? 'dark' : 'light') : preference;
  const theme = useMemo(() => buildTheme(mode), [mode]);
  const value = useMemo<ThemeModeValue>(
    () => ({
      preference,
      mode,
      setPreference: (p) => {
        savePreference(p);
        setPref(p);
      },
      toggle: () => {
        const next = mode === 'dark' ? 'light' : 'dark';
        savePreference(next);
        setPref(next);
      },
    }),
    [preference, mode],
  );
  return (
    <ThemeModeContext.Provider value={value}>
      <ThemeProvider theme={theme}>
        <CssBaseline enableColorScheme />
        {children}
      </ThemeProvider>
    </ThemeModeContext.Provider>
  );
}

export function useThemeMode(): ThemeModeValue {
  const ctx = useContext(ThemeModeContext);
  if (!ctx) throw new Error('useThemeMode outside ThemeModeProvider');
  return ctx;
}
