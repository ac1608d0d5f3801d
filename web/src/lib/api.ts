import { Code, ConnectError } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";

// Same origin as the page: the session cookie travels with every call, and the Connect
// protocol's own Connect-Protocol-Version header is what the server's cross-site check
// wants to see. JSON, so a request is readable in the browser's tools.
export const transport = createConnectTransport({
  baseUrl: window.location.origin,
  useBinaryFormat: false,
});

/** The API's own words for a failed call: "permission denied: role viewer may not …". */
export function errorMessage(err: unknown): string {
  const ce = ConnectError.from(err);
  return `${codeName(ce.code)}: ${ce.rawMessage}`;
}

export function errorCode(err: unknown): Code | undefined {
  return err == null ? undefined : ConnectError.from(err).code;
}

function codeName(code: Code): string {
  return (Code[code] ?? "unknown").replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase();
}

/** Errors that another attempt will not fix. */
export function isFinal(err: unknown): boolean {
  const code = errorCode(err);
  return (
    code === Code.Unauthenticated ||
    code === Code.PermissionDenied ||
    code === Code.InvalidArgument ||
    code === Code.NotFound ||
    code === Code.FailedPrecondition ||
    code === Code.ResourceExhausted
  );
}
