import type { ReactNode } from 'react';
import { Box, Card, CardContent, Stack, Typography } from '@mui/material';

/** The centred card of the pages shown before the app itself (sign-in, MFA steps and setup). */
export function AuthCard({
  title = 'StreamSpace',
  subtitle,
  maxWidth = 400,
  children,
}: {
  title?: string;
  subtitle: ReactNode;
  maxWidth?: number;
  children: ReactNode;
}) {
  return (
    <Box
      component="main"
      sx={{ minHeight: '100vh', display: 'flex', alignItems: 'center', justifyContent: 'center', p: 2, bgcolor: 'background.default' }}
    >
      <Card sx={{ width: '100%', maxWidth }} variant="outlined">
        <CardContent>
          <Stack spacing={2}>
            <Box>
              <Typography variant="h1" component="h1">
                {title}
              </Typography>
              <Typography color="text.secondary">{subtitle}</Typography>
            </Box>
            {children}
          </Stack>
        </CardContent>
      </Card>
    </Box>
  );
}
