import type { DescMessage, DescMethodUnary, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { useMutation } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { useState, type ReactNode } from "react";
import { errorMessage } from "../lib/api";

/** A mutating call; on success every cached read is refreshed (they are cheap and few). */
export function useAction<I extends DescMessage, O extends DescMessage>(method: DescMethodUnary<I, O>, onDone?: (res: MessageShape<O>) => void) {
  const qc = useQueryClient();
  return useMutation(method, {
    onSuccess: async (res) => {
      await qc.invalidateQueries({ queryKey: ["connect-query"] });
      onDone?.(res);
    },
  });
}

export function ActionError({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p className="action-error" role="alert">
      {errorMessage(error)}
    </p>
  );
}

/**
 * A button that makes one call, optionally after a confirmation step, and shows the API's
 * error next to it when the call fails.
 */
export function ActionButton<I extends DescMessage, O extends DescMessage>({
  method,
  input,
  label,
  confirm,
  danger,
  onDone,
  children,
}: {
  method: DescMethodUnary<I, O>;
  input: MessageInitShape<I>;
  label: string;
  confirm?: string;
  danger?: boolean;
  onDone?: (res: MessageShape<O>) => void;
  children?: ReactNode;
}) {
  const m = useAction(method, onDone);
  const [asking, setAsking] = useState(false);
  const run = () => {
    setAsking(false);
    m.mutate(input);
  };
  return (
    <span className="action">
      {asking ? (
        <span className="confirm" role="group" aria-label={confirm}>
          <span>{confirm}</span>
          <button type="button" className={danger ? "danger" : "primary"} onClick={run}>
            Yes, {label.toLowerCase()}
          </button>
          <button type="button" className="ghost" onClick={() => setAsking(false)}>
            Cancel
          </button>
        </span>
      ) : (
        <button type="button" className={danger ? "danger" : undefined} disabled={m.isPending} onClick={() => (confirm ? setAsking(true) : run())}>
          {m.isPending ? `${label}…` : (children ?? label)}
        </button>
      )}
      <ActionError error={m.error} />
    </span>
  );
}
