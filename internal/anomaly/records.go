package anomaly

import (
	"context"
	"fmt"
	"strings"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/systemrecords"
)

// recordRan writes the system record of a finished detection, once per detection run (a
// retried activity that finishes again writes nothing more).
func recordRan(ctx context.Context, db dbsqlc.DBTX, req Request, sum Summary) error {
	days := "no day (detection is disabled)"
	if len(sum.Days) > 0 {
		days = strings.Join(sum.Days, ", ")
	}
	return systemrecords.Write(ctx, db, systemrecords.Record{
		OrgID: req.OrgID, Kind: systemrecords.KindAnomalyBatchRan, WorkflowID: req.WorkflowID,
		Message: fmt.Sprintf("Anomaly detection evaluated %s: %d series, %d anomalies (%d new), %d incidents linked, %d alerts raised",
			days, sum.SeriesEvaluated, sum.AnomaliesFound, sum.AnomaliesCreated, sum.IncidentsLinked, sum.AlertsRaised),
		Data: map[string]any{"anomaly_run_id": sum.RunID, "days": sum.Days, "days_rolled_up": sum.DaysRolledUp, "pages": sum.Pages,
			"series_evaluated": sum.SeriesEvaluated, "anomalies_found": sum.AnomaliesFound, "anomalies_created": sum.AnomaliesCreated,
			"incidents_linked": sum.IncidentsLinked, "alerts_raised": sum.AlertsRaised, "scheduled": req.Scheduled},
		Key: "anomaly_run/" + sum.RunID + "/ran",
	})
}

// recordFailed writes the system record of a detection its workflow gave up on.
func recordFailed(ctx context.Context, db dbsqlc.DBTX, orgID, runID, workflowID, msg string) error {
	return systemrecords.Write(ctx, db, systemrecords.Record{
		OrgID: orgID, Kind: systemrecords.KindAnomalyBatchFailed, Severity: systemrecords.Error, WorkflowID: workflowID,
		Message: "Anomaly detection failed after its retries: " + clip(msg, 1000),
		Data:    map[string]any{"anomaly_run_id": runID, "error": clip(msg, 2000)},
		Key:     "anomaly_run/" + runID + "/failed",
	})
}
