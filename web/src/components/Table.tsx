import { flexRender, getCoreRowModel, useReactTable, type ColumnDef } from "@tanstack/react-table";
import type { ReactNode } from "react";
import { Empty } from "./State";

/**
 * A table of one page of a list. The server pages and filters; TanStack Table renders the
 * columns (headless, so the markup stays a plain, accessible <table>).
 */
export function DataTable<T>({
  caption,
  columns,
  rows,
  rowId,
  empty,
  selected,
}: {
  caption: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  columns: ColumnDef<T, any>[];
  rows: T[];
  rowId: (row: T) => string;
  empty: ReactNode;
  selected?: string;
}) {
  const table = useReactTable({ data: rows, columns, getCoreRowModel: getCoreRowModel(), getRowId: (r) => rowId(r) });
  if (rows.length === 0) return <>{typeof empty === "string" ? <Empty title={empty} /> : empty}</>;
  return (
    <div className="table-wrap">
      <table>
        <caption className="visually-hidden">{caption}</caption>
        <thead>
          {table.getHeaderGroups().map((hg) => (
            <tr key={hg.id}>
              {hg.headers.map((h) => (
                <th key={h.id} scope="col" className={(h.column.columnDef.meta as { className?: string })?.className}>
                  {flexRender(h.column.columnDef.header, h.getContext())}
                </th>
              ))}
            </tr>
          ))}
        </thead>
        <tbody>
          {table.getRowModel().rows.map((r) => (
            <tr key={r.id} aria-selected={selected === r.id ? true : undefined} className={selected === r.id ? "selected" : undefined}>
              {r.getVisibleCells().map((c) => (
                <td key={c.id} className={(c.column.columnDef.meta as { className?: string })?.className}>
                  {flexRender(c.column.columnDef.cell, c.getContext())}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function Pager({ number, hasNext, onNext, onPrev, label }: { number: number; hasNext: boolean; onNext: () => void; onPrev: () => void; label: string }) {
  if (number <= 1 && !hasNext) return null;
  return (
    <nav className="pager" aria-label={`${label} pages`}>
      <button type="button" onClick={onPrev} disabled={number <= 1}>
        Previous page
      </button>
      <span>Page {number}</span>
      <button type="button" onClick={onNext} disabled={!hasNext}>
        Next page
      </button>
    </nav>
  );
}
