import { useCallback, useMemo } from "react";
import { useLocation, useSearch } from "wouter";

export type Patch = Record<string, string | string[] | null | undefined>;

/** Applies a patch to search parameters: null/undefined/"" removes, an array repeats. */
export function applyPatch(current: string, patch: Patch): string {
  const p = new URLSearchParams(current);
  for (const [k, v] of Object.entries(patch)) {
    p.delete(k);
    if (Array.isArray(v)) v.filter(Boolean).forEach((x) => p.append(k, x));
    else if (v) p.set(k, v);
  }
  p.sort();
  const s = p.toString();
  return s ? `?${s}` : "";
}

/**
 * The view's state lives in the URL (filters, range, tab, selected item): a link reproduces
 * the view and a reload keeps it. Changing a filter replaces the history entry; opening an
 * item pushes one, so Back closes it.
 */
export function useUrlState(): [URLSearchParams, (patch: Patch, opts?: { push?: boolean }) => void] {
  const search = useSearch();
  const [path, navigate] = useLocation();
  const params = useMemo(() => new URLSearchParams(search), [search]);
  const set = useCallback(
    (patch: Patch, opts?: { push?: boolean }) => {
      navigate(path + applyPatch(window.location.search, patch), { replace: !opts?.push });
    },
    [navigate, path],
  );
  return [params, set];
}

/** A page of a paged list: the tokens of the pages before it live in the URL too. */
export function usePager(key = "page") {
  const [params, set] = useUrlState();
  const stack = params.getAll(key);
  return {
    token: stack[stack.length - 1] ?? "",
    number: stack.length + 1,
    next: (token: string) => set({ [key]: [...stack, token] }, { push: true }),
    prev: () => set({ [key]: stack.slice(0, -1) }, { push: true }),
    reset: { [key]: null } as Patch,
  };
}
