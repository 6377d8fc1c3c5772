import { useState } from 'react';
import { Button, Chip, IconButton, InputAdornment, MenuItem, TextField, Tooltip } from '@mui/material';
import DownloadIcon from '@mui/icons-material/Download';
import InfoOutlinedIcon from '@mui/icons-material/InfoOutlined';
import SearchIcon from '@mui/icons-material/Search';
import { ResourceListView } from '@/components/ResourceListView';
import { DetailDrawer, JsonBlock } from '@/components/DetailDrawer';
import type { Column } from '@/components/ResourceTable';
import { useFeedback } from '@/components/feedback';
import { errorMessage } from '@/lib/api';
import { formatDateTime } from '@/lib/format';
import { useDebounced } from '@/lib/hooks';
import { useCursorList } from '@/lib/list';
import { AUDIT_RESULTS, type AuditEvent } from '@/types/api';
import { EMPTY_AUDIT_FILTERS, type AuditFilters, exportAuditCsv, getAuditInfiniteQueryOptions } from '../api/audit';

function ResultChip({ result }: { result: string }) {
  const color = result === 'success' ? 'success' : result === 'denied' || result === 'failure' ? 'error' : 'default';
  return <Chip size="small" label={result} color={color} variant="outlined" />;
}

/** `kind:<uuid>` targets are long: show the kind and the id's tail, the whole value on hover. */
function TargetText({ target }: { target: string }) {
  const m = /^([a-z_]+):([0-9a-f-]{36})$/.exec(target);
  if (!m) return <>{target || '—'}</>;
  // Ids are UUIDv7: the leading digits are a timestamp shared by neighbours, the tail tells them apart.
  return (
    <Tooltip title={target}>
      <span>
        {m[1]}:<code>…{(m[2] ?? '').slice(-8)}</code>
      </span>
    </Tooltip>
  );
}

export function AuditPage() {
  const [filters, setFilters] = useState<AuditFilters>(EMPTY_AUDIT_FILTERS);
  const debounced = useDebounced(filters, 350);
  const list = useCursorList(getAuditInfiniteQueryOptions(debounced));
  const { notify } = useFeedback();
  const [exporting, setExporting] = useState(false);
  const [detail, setDetail] = useState<AuditEvent | null>(null);

  const set = (k: keyof AuditFilters) => (e: { target: { value: string } }) => setFilters((f) => ({ ...f, [k]: e.target.value }));

  const doExport = async () => {
    setExporting(true);
    try {
      // What the filter fields show now, even if the list has not caught up with the last keystroke.
      await exportAuditCsv(filters);
    } catch (e) {
      notify(`Export failed: ${errorMessage(e)}`, 'error');
    } finally {
      setExporting(false);
    }
  };

  const columns: Column<AuditEvent>[] = [
    { key: 'time', header: 'Time', render: (e) => formatDateTime(e.time) },
    { key: 'actor', header: 'Actor', render: (e) => e.actor_name ? e.actor_name : (e.actor_id ?? '—') },
    { key: 'action', header: 'Action', render: (e) => <code>{e.action}</code> },
    { key: 'target', header: 'Target', hideBelow: 'md', render: (e) => <TargetText target={e.target} /> },
    { key: 'result', header: 'Result', render: (e) => <ResultChip result={e.result} /> },
    { key: 'ip', header: 'Client IP', hideBelow: 'lg', render: (e) => e.client_ip ?? '—' },
  ];

  const small = { size: 'small' as const, sx: { minWidth: 150 } };

  return (
    <ResourceListView
      title="Audit log"
      subtitle="Who did what, when, and from where."
      actions={
        <Button variant="outlined" startIcon={<DownloadIcon />} onClick={() => void doExport()} disabled={exporting}>
          {exporting ? 'Exporting…' : 'Export CSV'}
        </Button>
      }
      filters={
        <>
          <TextField
            {...small}
            label="Search"
            type="search"
            value={filters.q}
            onChange={set('q')}
            slotProps={{
              input: {
                startAdornment: (
                  <InputAdornment position="start">
                    <SearchIcon fontSize="small" aria-hidden />
                  </InputAdornment>
                ),
              },
            }}
          />
          <TextField {...small} label="Actor" value={filters.actor} onChange={set('actor')} placeholder="exact name" />
          <TextField {...small} label="Action" value={filters.action} onChange={set('action')} placeholder="e.g. session.create" />
          <TextField {...small} label="Target" value={filters.target} onChange={set('target')} placeholder="e.g. session:<id>" />
          <TextField
            {...small}
            select
            label="Result"
            value={filters.result}
            onChange={set('result')}
            slotProps={{ inputLabel: { shrink: true }, select: { displayEmpty: true } }}
          >
            <MenuItem value="">Any result</MenuItem>
            {AUDIT_RESULTS.map((r) => (
              <MenuItem key={r} value={r}>
                {r}
              </MenuItem>
            ))}
          </TextField>
          <TextField
            {...small}
            label="From"
            type="datetime-local"
            value={filters.since}
            onChange={set('since')}
            slotProps={{ inputLabel: { shrink: true } }}
          />
          <TextField
            {...small}
            label="Until"
            type="datetime-local"
            value={filters.until}
            onChange={set('until')}
            slotProps={{ inputLabel: { shrink: true } }}
          />
          {JSON.stringify(filters) !== JSON.stringify(EMPTY_AUDIT_FILTERS) ? (
            <Button onClick={() => setFilters(EMPTY_AUDIT_FILTERS)}>Clear filters</Button>
          ) : null}
        </>
      }
      columns={columns}
      list={list}
      getRowId={(e) => e.id}
      emptyMessage="No audit events match."
      rowActions={(e) => (
        <Tooltip title="Details">
          <IconButton aria-label={`Details of audit event ${e.seq}`} onClick={() => setDetail(e)}>
            <InfoOutlinedIcon />
          </IconButton>
        </Tooltip>
      )}
    >
      <DetailDrawer
        open={detail !== null}
        title={detail ? `Audit event #${detail.seq}` : 'Audit event'}
        onClose={() => setDetail(null)}
        fields={
          detail
            ? [
                { label: 'Time', value: formatDateTime(detail.time) },
                { label: 'Actor', value: detail.actor_name ? detail.actor_name : '—' },
                { label: 'Actor ID', value: detail.actor_id ? <code>{detail.actor_id}</code> : '—' },
                { label: 'Action', value: <code>{detail.action}</code> },
                { label: 'Target', value: detail.target ? <code>{detail.target}</code> : '—' },
                { label: 'Result', value: <ResultChip result={detail.result} /> },
                { label: 'Client IP', value: detail.client_ip ?? '—' },
                { label: 'User agent', value: detail.user_agent ?? '—' },
                { label: 'Trace ID', value: detail.trace_id ? <code>{detail.trace_id}</code> : '—' },
                { label: 'Org', value: detail.org_id ? <code>{detail.org_id}</code> : '—' },
                { label: 'Sequence', value: String(detail.seq) },
                { label: 'Hash', value: <code style={{ wordBreak: 'break-all' }}>{detail.hash}</code> },
              ]
            : []
        }
      >
        {detail?.details !== undefined && detail.details !== null ? <JsonBlock label="Event details" value={detail.details} /> : null}
      </DetailDrawer>
    </ResourceListView>
  );
}
