import { Code } from "@connectrpc/connect";
import { useQuery } from "@connectrpc/connect-query";
import { lazy, Suspense } from "react";
import { Redirect, Route, Switch } from "wouter";
import { Layout } from "./components/Layout";
import { ErrorView, Loading } from "./components/State";
import { SessionService } from "./gen/governor/v1/session_pb";
import { errorCode } from "./lib/api";
import { IdentityContext } from "./lib/session";
import { SignIn } from "./pages/SignIn";

// Every page is its own chunk: the first load carries the shell and the page it opens. The
// page's chunk is fetched at once, while the session is being checked, not after.
const pages = {
  "/overview": () => import("./pages/Overview"),
  "/activity": () => import("./pages/Activity"),
  "/incidents": () => import("./pages/Incidents"),
  "/policies": () => import("./pages/Policies"),
  "/logs": () => import("./pages/Logs"),
  "/analytics": () => import("./pages/Analytics"),
  "/connectivity": () => import("./pages/Connectivity"),
  "/alerts": () => import("./pages/Alerts"),
  "/accounts": () => import("./pages/Accounts"),
};
const landing = window.location.pathname === "/" ? "/activity" : window.location.pathname;
if (landing in pages) void pages[landing as keyof typeof pages]();
const Overview = lazy(pages["/overview"]);
const Activity = lazy(pages["/activity"]);
const Incidents = lazy(pages["/incidents"]);
const Policies = lazy(pages["/policies"]);
const Logs = lazy(pages["/logs"]);
const Analytics = lazy(pages["/analytics"]);
const Connectivity = lazy(pages["/connectivity"]);
const Alerts = lazy(pages["/alerts"]);
const Accounts = lazy(pages["/accounts"]);

export function App() {
  const me = useQuery(SessionService.method.whoAmI, {}, { retry: false, staleTime: 60_000 });
  if (me.isPending) return <Loading what="your session" />;
  if (me.error) {
    if (errorCode(me.error) === Code.Unauthenticated) return <SignIn />;
    return (
      <main className="signin">
        <ErrorView error={me.error} what="your session" retry={() => void me.refetch()} />
      </main>
    );
  }
  return (
    <IdentityContext.Provider value={me.data.identity ?? null}>
      <Layout>
        <Suspense fallback={<Loading what="the page" />}>
          <Switch>
            <Route path="/">
              <Redirect to="/activity" replace />
            </Route>
            <Route path="/overview" component={Overview} />
            <Route path="/activity" component={Activity} />
            <Route path="/incidents" component={Incidents} />
            <Route path="/policies" component={Policies} />
            <Route path="/logs" component={Logs} />
            <Route path="/analytics" component={Analytics} />
            <Route path="/connectivity" component={Connectivity} />
            <Route path="/alerts" component={Alerts} />
            <Route path="/accounts" component={Accounts} />
            <Route>
              <main className="page">
                <h1>Page not found</h1>
                <p>Nothing lives at {window.location.pathname}. Pick a section from the menu.</p>
              </main>
            </Route>
          </Switch>
        </Suspense>
      </Layout>
    </IdentityContext.Provider>
  );
}
