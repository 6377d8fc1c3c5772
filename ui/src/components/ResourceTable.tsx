import type { ReactNode } from 'react';
import {
  Box,
  Button,
  Paper,
  Skeleton,
  Table,
  TableBody,
  TableCell,
  TableContainer,
  TableHead,
  TableRow,
  Typography,
} from '@mui/material';
import type { ListState } from '@/lib/list';
import { ErrorAlert } from './ErrorAlert';

export interface Column<T> {
  key: string;
  header: string;
  render: (row: T) => ReactNode;
  /** Hide the column on screens narrower than this breakpoint. */
  hideBelow?: 'sm' | 'md' | 'lg';
  align?: 'left' | 'right' | 'center';
  width?: number | string;
}

function display(hideBelow?: Column<unknown>['hideBelow']) {
  return hideBelow ? { display: { xs: 'none', [hideBelow]: 'table-cell' } } : undefined;
}

/** Generic table of resources with loading, empty, error and "load more" states. */
export function ResourceTable<T>({
  label,
  columns,
  list,
  getRowId,
  rowActions,
  emptyMessage = 'Nothing here yet.',
}: {
  /** Accessible name of the table. */
  label: string;
  columns: Column<T>[];
  list: ListState<T>;
  getRowId: (row: T) => string;
  rowActions?: (row: T) => ReactNode;
  emptyMessage?: string;
}) {
  const { items, isLoading, error } = list;
  const colCount = columns.length + (rowActions ? 1 : 0);
  return (
    <>
      <ErrorAlert error={error} onRetry={list.refetch} />
      <TableContainer component={Paper} variant="outlined">
        <Table size="small" aria-label={label} aria-busy={isLoading || undefined}>
          <TableHead>
            <TableRow>
              {columns.map((c) => (
                <TableCell key={c.key} align={c.align} sx={{ width: c.width, ...display(c.hideBelow) }}>
                  {c.header}
                </TableCell>
              ))}
              {rowActions ? (
                <TableCell align="right">
                  <Box component="span" sx={visuallyHidden}>
                    Actions
                  </Box>
                </TableCell>
              ) : null}
            </TableRow>
          </TableHead>
          <TableBody>
            {isLoading && !error
              ? [0, 1, 2].map((i) => (
                  <TableRow key={`skeleton-${i}`}>
                    {Array.from({ length: colCount }, (_, j) => (
                      <TableCell key={j}>
                        <Skeleton />
                      </TableCell>
                    ))}
                  </TableRow>
                ))
              : null}
            {!isLoading && items?.length === 0 ? (
              <TableRow>
                <TableCell colSpan={colCount}>
                  <Typography color="text.secondary" sx={{ py: 2, textAlign: 'center' }}>
                    {emptyMessage}
                  </Typography>
                </TableCell>
              </TableRow>
            ) : null}
            {items?.map((row) => (
              <TableRow key={getRowId(row)} hover>
                {columns.map((c) => (
                  <TableCell key={c.key} align={c.align} sx={display(c.hideBelow)}>
                    {c.render(row)}
                  </TableCell>
                ))}
                {rowActions ? (
                  <TableCell align="right" sx={{ whiteSpace: 'nowrap' }}>
                    {rowActions(row)}
                  </TableCell>
                ) : null}
              </TableRow>
            ))}
          </TableBody>
        </Table>
      </TableContainer>
      {list.hasMore ? (
        <Box sx={{ display: 'flex', justifyContent: 'center', mt: 2 }}>
          <Button onClick={list.loadMore} disabled={list.isLoadingMore}>
            {list.isLoadingMore ? 'Loading…' : 'Load more'}
          </Button>
        </Box>
      ) : null}
    </>
  );
}

export const visuallyHidden = {
  border: 0,
  clip: 'rect(0 0 0 0)',
  height: '1px',
  margin: '-1px',
  overflow: 'hidden',
  padding: 0,
  position: 'absolute',
  whiteSpace: 'nowrap',
  width: '1px',
} as const;
