import { useMutation } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { ActionError } from "../components/Action";
import { SessionService } from "../gen/governor/v1/session_pb";

/** Sign-in: the key is sent once, exchanged for an HttpOnly session cookie, and forgotten. */
export function SignIn() {
  const qc = useQueryClient();
  const [key, setKey] = useState("");
  const signIn = useMutation(SessionService.method.signIn, {
    onSuccess: async () => {
      setKey("");
      await qc.resetQueries();
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    signIn.mutate({ apiKey: key.trim() });
  };
  return (
    <main className="signin">
      <form className="card signin-card" onSubmit={submit}>
        <h1>Sign in to Governor</h1>
        <p>
          Paste your API key. The console exchanges it for a session (12 hours, this browser only) and does not keep the
          key.
        </p>
        <div className="field">
          <label htmlFor="api-key">API key</label>
          <input
            id="api-key"
            type="password"
            autoComplete="off"
            spellCheck={false}
            placeholder="gvk_…"
            value={key}
            onChange={(e) => setKey(e.target.value)}
            required
          />
        </div>
        <button type="submit" className="primary" disabled={signIn.isPending || key.trim() === ""}>
          {signIn.isPending ? "Signing in…" : "Sign in"}
        </button>
        <ActionError error={signIn.error} />
        <p className="muted small">
          No key yet? An administrator creates one under Connectivity, or run <code>governor admin bootstrap</code>.
        </p>
      </form>
    </main>
  );
}
