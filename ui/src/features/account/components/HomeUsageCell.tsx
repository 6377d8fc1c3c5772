import { Tooltip, Typography } from '@mui/material';
import { formatDateTime } from '@/lib/format';
import type { Home } from '@/types/api';
import { formatHomeUsage } from '../homeUsage';

/** A home's used space beside its limit; when it was measured shows on hover. */
export function HomeUsageCell({ home }: { home: Home }) {
  const text = formatHomeUsage(home);
  if (!home.usage_measured_at) {
    return (
      <Typography variant="body2" color="text.secondary" component="span">
        {text}
      </Typography>
    );
  }
  return (
    <Tooltip title={`Measured ${formatDateTime(home.usage_measured_at)}`}>
      <span>{text}</span>
    </Tooltip>
  );
}
