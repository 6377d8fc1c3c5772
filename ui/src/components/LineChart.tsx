import { Box, Typography, useTheme } from '@mui/material';

export interface Series {
  label: string;
  color: string;
  points: { x: number; y: number }[];
}

/** A dependency-free SVG line chart (time on x). Enough for a dashboard trend. */
export function LineChart({
  series,
  label,
  unit = '',
  format,
  height = 200,
}: {
  series: Series[];
  label: string;
  unit?: string;
  format?: (v: number) => string;
  height?: number;
}) {
  const theme = useTheme();
  const width = 640;
  const pad = { l: 64, r: 12, t: 12, b: 28 };
  const pts = series.flatMap((s) => s.points);
  if (pts.length === 0) {
    return <Typography color="text.secondary">No data yet.</Typography>;
  }
  const minX = Math.min(...pts.map((p) => p.x));
  const maxX = Math.max(...pts.map((p) => p.x));
  const maxY = Math.max(1, ...pts.map((p) => p.y));
  const sx = (x: number) => pad.l + (maxX === minX ? 0.5 : (x - minX) / (maxX - minX)) * (width - pad.l - pad.r);
  const sy = (y: number) => pad.t + (1 - y / maxY) * (height - pad.t - pad.b);
  const fmtTime = (x: number) => new Date(x).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const axis = theme.palette.text.secondary;
  const formatValue = format ?? ((v: number) => `${Math.round(v)}${unit}`);
  return (
    <Box component="figure" sx={{ m: 0 }}>
      <svg viewBox={`0 0 ${width} ${height}`} width="100%" role="img" aria-label={label}>
        <line x1={pad.l} y1={sy(0)} x2={width - pad.r} y2={sy(0)} stroke={axis} strokeOpacity={0.4} />
        <line x1={pad.l} y1={sy(maxY)} x2={width - pad.r} y2={sy(maxY)} stroke={axis} strokeOpacity={0.15} />
        <text x={pad.l - 6} y={sy(maxY) + 4} textAnchor="end" fontSize={11} fill={axis}>
          {formatValue(maxY)}
        </text>
        <text x={pad.l - 6} y={sy(0) + 4} textAnchor="end" fontSize={11} fill={axis}>
          0
        </text>
        <text x={pad.l} y={height - 8} fontSize={11} fill={axis}>
          {fmtTime(minX)}
        </text>
        <text x={width - pad.r} y={height - 8} textAnchor="end" fontSize={11} fill={axis}>
          {fmtTime(maxX)}
        </text>
        {series.map((s) => (
          <polyline
            key={s.label}
            fill="none"
            stroke={s.color}
            strokeWidth={2}
            points={s.points.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(' ')}
          />
        ))}
      </svg>
      <Box component="figcaption" sx={{ display: 'flex', gap: 2, flexWrap: 'wrap', mt: 1 }}>
        {series.map((s) => {
          const last = s.points.at(-1);
          return (
            <Typography key={s.label} variant="body2" sx={{ display: 'flex', alignItems: 'center', gap: 0.75 }}>
              <Box component="span" sx={{ width: 12, height: 3, bgcolor: s.color, display: 'inline-block' }} />
              {s.label}
              {last ? `: ${formatValue(last.y)} latest` : ''}
            </Typography>
          );
        })}
      </Box>
    </Box>
  );
}
