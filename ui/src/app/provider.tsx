import { useEffect, useState, type ReactNode } from 'react';
import { QueryClientProvider, type QueryClient } from '@tanstack/react-query';
import { api } from '@/lib/api';
import { createQueryClient } from '@/lib/query';
import { FeedbackProvider } from '@/components/feedback';
import { ThemeModeProvider, type ThemePreference } from './theme';
import { AuthRestore } from './guards';

/** Everything every page needs: theme, query cache, dialogs/toasts and the restored session. */
export function AppProvider({
  children,
  queryClient,
  theme,
}: {
  children: ReactNode;
  queryClient?: QueryClient;
  theme?: ThemePreference;
}) {
  const [qc] = useState(() => queryClient ?? createQueryClient());
  useEffect(
    // Nothing of a signed-out user may linger in the cache for the next one.
    () =>
      api.subscribe(() => {
        if (api.getAuthState().status === 'anonymous') qc.clear();
      }),
    [qc],
  );
  return (
    <ThemeModeProvider initial={theme}>
      <QueryClientProvider client={qc}>
        <FeedbackProvider>
          <AuthRestore>{children}</AuthRestore>
        </FeedbackProvider>
      </QueryClientProvider>
    </ThemeModeProvider>
  );
}
