import { Link } from "wouter";
import { Empty } from "../components/State";
import { PageHeader } from "../components/Bits";

// The eleven panels of GetOverview (live through WatchOverview) need the analytics API,
// which does not exist yet. Until then the page says so, and points at what works today.
export default function Overview() {
  return (
    <>
      <PageHeader title="Overview" question="Is the system okay?" />
      <Empty title="The overview arrives with the analytics API">
        <p>
          Its panels (spend, decisions, incidents, anomalies, recovery) come from <code>GetOverview</code> and update live
          through <code>WatchOverview</code>, which the server does not offer yet.
        </p>
        <p>
          Meanwhile: <Link href="/activity">runs</Link>, <Link href="/incidents?status=open">open incidents</Link>,{" "}
          <Link href="/connectivity">spend per key this month</Link>.
        </p>
      </Empty>
    </>
  );
}
