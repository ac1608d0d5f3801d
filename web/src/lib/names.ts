import { useQuery } from "@connectrpc/connect-query";
import { useMemo } from "react";
import { AccountService } from "../gen/governor/v1/account_pb";
import { ApiKeyService } from "../gen/governor/v1/apikey_pb";

/**
 * Names for the ids every list carries (agents, keys, projects, users), from one read of
 * each list (up to 500, the API's page limit), cached across pages.
 */
export function useNames() {
  const agents = useQuery(AccountService.method.listAgents, { pageSize: 500 });
  const keys = useQuery(ApiKeyService.method.listApiKeys, { pageSize: 500 });
  const projects = useQuery(AccountService.method.listProjects, { pageSize: 500 });
  const users = useQuery(AccountService.method.listUsers, { pageSize: 500 });
  return useMemo(() => {
    const m = new Map<string, string>();
    agents.data?.agents.forEach((a) => m.set(a.id, a.name));
    keys.data?.apiKeys.forEach((k) => m.set(k.id, k.name));
    projects.data?.projects.forEach((p) => m.set(p.id, p.name));
    users.data?.users.forEach((u) => m.set(u.id, u.displayName || u.email));
    return {
      name: (id: string) => (id ? (m.get(id) ?? id) : "—"),
      agents: agents.data?.agents ?? [],
      keys: keys.data?.apiKeys ?? [],
      projects: projects.data?.projects ?? [],
      users: users.data?.users ?? [],
    };
  }, [agents.data, keys.data, projects.data, users.data]);
}
