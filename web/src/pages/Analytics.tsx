import { Link } from "wouter";
import { PageHeader } from "../components/Bits";
import { Empty } from "../components/State";

// Charts and tables over QueryUsage (group-by, granularity, ranges) and export need the
// analytics API, which does not exist yet.
export default function Analytics() {
  return (
    <>
      <PageHeader title="Analytics" question="How much am I spending?" />
      <Empty title="Analytics arrives with the analytics API">
        <p>
          Cost and usage grouped by key, model, feature or agent over any range, trends and CSV / JSON export come from{" "}
          <code>QueryUsage</code>, which the server does not offer yet.
        </p>
        <p>
          Today: settled cost per filter on <Link href="/activity">Activity</Link>, spend per key this month on{" "}
          <Link href="/connectivity">Connectivity</Link>.
        </p>
      </Empty>
    </>
  );
}
