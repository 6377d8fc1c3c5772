import { useQuery } from '@tanstack/react-query';
import { Link as RouterLink } from 'react-router';
import { Box, Card, CardActionArea, CardContent, Skeleton, Typography, useTheme } from '@mui/material';
import { PageHeader } from '@/components/PageHeader';
import { ErrorAlert } from '@/components/ErrorAlert';
import { LineChart } from '@/components/LineChart';
import { SESSION_STATES, type SessionState } from '@/types/api';
import { getSessionsQueryOptions, sessionsByState } from '@/features/sessions';
import { getAgentsQueryOptions } from '@/features/agents';
import { getStatsQueryOptions } from '../api/stats';

function StatCard({ label, value, to }: { label: string; value: number | string; to?: string }) {
  const content = (
    <CardContent>
      <Typography variant="body2" color="text.secondary">
        {label}
      </Typography>
      <Typography variant="h4" component="p" sx={{ fontWeight: 600 }}>
        {value}
      </Typography>
    </CardContent>
  );
  return (
    <Card variant="outlined">
      {to ? (
        <CardActionArea component={RouterLink} to={to} aria-label={`${label}: ${String(value)}`}>
          {content}
        </CardActionArea>
      ) : (
        content
      )}
    </Card>
  );
}

export function DashboardPage() {
  const theme = useTheme();
  const sessions = useQuery(getSessionsQueryOptions({}));
  const agents = useQuery(getAgentsQueryOptions());
  const stats = useQuery(getStatsQueryOptions());

  const counts: Record<SessionState, number> = stats.data?.sessions_by_state
    ? { ...sessionsByState(undefined), ...stats.data.sessions_by_state }
    : sessionsByState(sessions.data);
  const online = agents.data?.items.filter((a) => a.status === 'online').length;
  const latency = stats.data?.session_start_latency ?? [];

  return (
    <Box>
      <PageHeader title="Dashboard" />
      <ErrorAlert error={sessions.error ?? agents.error} />
      <Typography variant="h2" component="h2" sx={{ mb: 1 }}>
        Agents
      </Typography>
      <Box sx={{ display: 'grid', gap: 2, gridTemplateColumns: 'repeat(auto-fill, minmax(160px, 1fr))', mb: 3 }}>
        {agents.isPending ? (
          <Skeleton variant="rounded" height={88} />
        ) : (
          <>
            <StatCard label="Agents online" value={online ?? 0} to="/admin/agents" />
            <StatCard label="Agents total" value={agents.data?.items.length ?? 0} to="/admin/agents" />
          </>
        )}
      </Box>
      <Typography variant="h2" component="h2" sx={{ mb: 1 }}>
        Sessions by state
      </Typography>
      <Box
        role="list"
        aria-label="Sessions by state"
        sx={{ display: 'grid', gap: 2, gridTemplateColumns: 'repeat(auto-fill, minmax(140px, 1fr))', mb: 3 }}
      >
        {SESSION_STATES.map((s) => (
          <Box role="listitem" key={s}>
            {sessions.isPending && !stats.data?.sessions_by_state ? (
              <Skeleton variant="rounded" height={88} />
            ) : (
              <StatCard label={s} value={counts[s]} to={`/admin/sessions?state=${s}`} />
            )}
          </Box>
        ))}
      </Box>
      {/* Servers without GET /stats (404): no latency section at all. */}
      {stats.data === null ? null : (
        <>
          <Typography variant="h2" component="h2" sx={{ mb: 1 }}>
            Session start latency
          </Typography>
          <Card variant="outlined">
            <CardContent>
              {stats.isPending ? (
                <Skeleton variant="rounded" height={200} />
              ) : stats.isError ? (
                <ErrorAlert error={stats.error} />
              ) : (
                <LineChart
                  label="Session start latency over time"
                  format={(ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`)}
                  series={[
                    {
                      label: 'p50',
                      color: theme.palette.primary.main,
                      points: latency.filter((p) => p.p50_ms != null).map((p) => ({ x: Date.parse(p.time), y: p.p50_ms ?? 0 })),
                    },
                    {
                      label: 'p95',
                      color: theme.palette.secondary.main,
                      points: latency.filter((p) => p.p95_ms != null).map((p) => ({ x: Date.parse(p.time), y: p.p95_ms ?? 0 })),
                    },
                  ]}
                />
              )}
            </CardContent>
          </Card>
        </>
      )}
    </Box>
  );
}
