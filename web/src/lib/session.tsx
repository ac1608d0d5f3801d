import { createContext, useContext } from "react";
import { Role } from "../gen/governor/v1/common_pb";
import type { Identity } from "../gen/governor/v1/session_pb";

export const IdentityContext = createContext<Identity | null>(null);

export function useIdentity(): Identity {
  const id = useContext(IdentityContext);
  if (!id) throw new Error("useIdentity outside a signed-in console");
  return id;
}

/** The organization's IANA time zone: every time on screen is shown in it. */
export function useZone(): string {
  return useIdentity().organization?.timeZone || "UTC";
}

/**
 * What the caller's role lets them do, so controls they cannot use are not shown. The server
 * decides anyway: a control shown in error gets the API's refusal, displayed.
 */
export function useCan() {
  const role = useIdentity().role;
  return {
    administer: role === Role.ADMIN,
    approve: role === Role.ADMIN || role === Role.APPROVER,
  };
}
