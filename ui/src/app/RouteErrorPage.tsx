import { isRouteErrorResponse, useRouteError } from 'react-router';
import { Box, Button, Typography } from '@mui/material';

/**
 * Browsers word a module that failed to download differently: Chromium "Failed to fetch dynamically
 * imported module", Firefox "error loading dynamically imported module", Safari "Importing a module
 * script failed".
 */
const MODULE_NOT_LOADED = /dynamically imported module|importing a module script failed/i;

/** Whether `error` is a page's code that did not download (the network changed, a proxy cut it). */
export function isModuleLoadFailure(error: unknown): boolean {
  return error instanceof Error && MODULE_NOT_LOADED.test(error.message);
}

/**
 * What a route shows instead of a page that failed: a page whose code did not download (loaded on
 * demand, so the network may have changed since the app started) or one that threw. A reload fixes
 * the first and usually the second; the app around it keeps working.
 */
export function RouteErrorPage() {
  const error = useRouteError();
  const notLoaded = isModuleLoadFailure(error);
  const detail = isRouteErrorResponse(error) ? `${error.status} ${error.statusText}` : error instanceof Error ? error.message : '';
  return (
    <Box role="alert" sx={{ textAlign: 'center', py: 8, px: 2 }}>
      <Typography variant="h1" component="h1" sx={{ mb: 1 }}>
        {notLoaded ? 'This page could not load' : 'Something went wrong'}
      </Typography>
      <Typography color="text.secondary" sx={{ mb: 3 }}>
        {notLoaded
          ? 'Part of the app did not download, perhaps because the network changed. Reloading the page usually fixes it.'
          : `The page stopped with an error${detail ? `: ${detail}` : ''}. Reloading the page may fix it.`}
      </Typography>
      <Button variant="contained" onClick={() => window.location.reload()}>
        Reload
      </Button>
    </Box>
  );
}
