/// <reference types="vitest/config" />
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// `vite` (the dev server) proxies the API to a running `governor dev`; the proxy presents
// the API's own origin, since the server refuses cookie-authenticated calls from others.
const api = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.GOVERNOR_API ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "../console/dist",
    emptyOutDir: true,
    // No inline polyfill script: the server's Content-Security-Policy allows none.
    modulePreload: { polyfill: false },
    target: "es2022",
    sourcemap: false,
    // .vite/manifest.json: the chunk graph the bundle budget follows (a dotfile, never served).
    manifest: true,
  },
  server: {
    proxy: {
      "^/(governor\\.v1\\.|grpc\\.)": {
        target: api,
        headers: { origin: api },
      },
    },
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
