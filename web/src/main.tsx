import { TransportProvider } from "@connectrpc/connect-query";
import { QueryCache, QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { errorCode, isFinal, transport } from "./lib/api";
import { Code } from "@connectrpc/connect";
import "./styles.css";

const queryClient: QueryClient = new QueryClient({
  queryCache: new QueryCache({
    // A session that ended (expired, signed out elsewhere, key revoked) shows the sign-in
    // page instead of an error on every panel.
    onError: (err, query) => {
      const key = query.queryKey[1] as { methodName?: string } | undefined;
      if (errorCode(err) === Code.Unauthenticated && key?.methodName !== "WhoAmI") {
        void queryClient.invalidateQueries({ queryKey: ["connect-query", { methodName: "WhoAmI" }] });
      }
    },
  }),
  defaultOptions: {
    queries: {
      retry: (n, err) => !isFinal(err) && n < 2,
      staleTime: 10_000,
      refetchOnWindowFocus: false,
    },
  },
});

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <TransportProvider transport={transport}>
      <QueryClientProvider client={queryClient}>
        <App />
      </QueryClientProvider>
    </TransportProvider>
  </StrictMode>,
);
