import type { ReactNode } from 'react';
import { Box } from '@mui/material';
import type { ListState } from '@/lib/list';
import { PageHeader } from './PageHeader';
import { ResourceTable, type Column } from './ResourceTable';

/** Generic admin list page: header with actions, optional filters, the resource table. */
export function ResourceListView<T>({
  title,
  subtitle,
  actions,
  filters,
  columns,
  list,
  getRowId,
  rowActions,
  emptyMessage,
  children,
}: {
  title: string;
  subtitle?: ReactNode;
  actions?: ReactNode;
  filters?: ReactNode;
  columns: Column<T>[];
  list: ListState<T>;
  getRowId: (row: T) => string;
  rowActions?: (row: T) => ReactNode;
  emptyMessage?: string;
  /** Dialogs and drawers that belong to the page. */
  children?: ReactNode;
}) {
  return (
    <Box>
      <PageHeader title={title} subtitle={subtitle} actions={actions} />
      {filters ? (
        <Box role="search" aria-label={`Filter ${title.toLowerCase()}`} sx={{ display: 'flex', flexWrap: 'wrap', gap: 2, mb: 2 }}>
          {filters}
        </Box>
      ) : null}
      <ResourceTable
        label={title}
        columns={columns}
        list={list}
        getRowId={getRowId}
        rowActions={rowActions}
        emptyMessage={emptyMessage}
      />
      {children}
    </Box>
  );
}
