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
import type { AuditEvent } from '@/types/api';
import { EMPTY_AUDIT_FILTERS, type AuditFilters, exportAuditCsv, getAuditInfiniteQueryOptions } from '../api/audit';

const RESULTS = ['success', 'failure', 'denied', 'error'];

function ResultChip({ result }: { result: string }) {
  const color = result === 'success' ? 'success' : result === 'denied' || result === 'failure' || result === 'error' ? 'error' : 'default';
  return <Chip size="small" label={result} color={color} variant="outlined" />;
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
      await exportAuditCsv(debounced);
    } catch (e) {
      notify(`Export failed: ${errorMessage(e)}`, 'error');
    } finally {
      setExporting(false);
    }
  };

  const columns: Column<AuditEvent>[] = [
    { key: 'time', header: 'Time', render: (e) => formatDateTime(e.time) },
    { key: 'actor', header: 'Actor', render: (e) => e.actor_name ?? e.actor_id ?? '—' },
    { key: 'action', header: 'Action', render: (e) => <code>{e.action}</code> },
    { key: 'target', header: 'Target', hideBelow: 'md', render: (e) => e.target ?? '—' },
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
          <TextField {...small} label="Actor" value={filters.actor} onChange={set('actor')} />
          <TextField {...small} label="Action" value={filters.action} onChange={set('action')} placeholder="e.g. session.create" />
          <TextField {...small} label="Target" value={filters.target} onChange={set('target')} />
          <TextField
            {...small}
            select
            label="Result"
            value={filters.result}
            onChange={set('result')}
            slotProps={{ inputLabel: { shrink: true }, select: { displayEmpty: true } }}
          >
            <MenuItem value="">Any result</MenuItem>
            {RESULTS.map((r) => (
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
                { label: 'Actor', value: detail.actor_name ?? detail.actor_id ?? '—' },
                { label: 'Action', value: <code>{detail.action}</code> },
                { label: 'Target', value: detail.target ?? '—' },
                { label: 'Result', value: <ResultChip result={detail.result} /> },
                { label: 'Client IP', value: detail.client_ip ?? '—' },
                { label: 'User agent', value: detail.user_agent ?? '—' },
                { label: 'Trace ID', value: detail.trace_id ? <code>{detail.trace_id}</code> : '—' },
                { label: 'Org', value: detail.org_id ?? '—' },
              ]
            : []
        }
      >
        {detail?.details !== undefined && detail.details !== null ? <JsonBlock label="Event details" value={detail.details} /> : null}
      </DetailDrawer>
    </ResourceListView>
  );
}
