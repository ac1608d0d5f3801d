import type { ReactNode } from "react";
import { errorMessage } from "../lib/api";

export function Loading({ what }: { what: string }) {
  return (
    <p className="state loading" role="status" aria-live="polite">
      Loading {what}…
    </p>
  );
}

/** A failed call, in the API's words, with a way to try again. */
export function ErrorView({ error, what, retry }: { error: unknown; what?: string; retry?: () => void }) {
  return (
    <div className="state error" role="alert">
      <p>
        {what ? <>Could not load {what}: </> : null}
        <span className="error-text">{errorMessage(error)}</span>
      </p>
      {retry ? (
        <button type="button" onClick={retry}>
          Try again
        </button>
      ) : null}
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="state empty">
      <p className="empty-title">{title}</p>
      {children ? <div className="empty-body">{children}</div> : null}
    </div>
  );
}

type QueryLike<T> = { data: T | undefined; error: unknown; isPending: boolean; refetch: () => unknown };

/** Loading, error or the data: never a blank panel. */
export function QueryView<T>({ query, what, children }: { query: QueryLike<T>; what: string; children: (data: T) => ReactNode }) {
  if (query.error) return <ErrorView error={query.error} what={what} retry={() => void query.refetch()} />;
  if (query.isPending || query.data === undefined) return <Loading what={what} />;
  return <>{children(query.data)}</>;
}
