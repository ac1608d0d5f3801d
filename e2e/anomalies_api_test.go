package e2e

import (
	"context"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
)

// GetAnomaly returns one anomaly as ListAnomalies shows it, with its links; another
// organization cannot read it.
func TestGetAnomaly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "over budget")
	lim := tn.createLimit(t, &v1.CreateLimitRequest{Name: "daily budget", Scope: orgScope(), Metric: v1.LimitMetric_LIMIT_METRIC_COST,
		Window: v1.LimitWindow_LIMIT_WINDOW_DAY, Amount: 10 * dollar})
	spend(t, tn, ag, 12*dollar)
	runDetection(t, tn, "")
	listed := tn.anomaliesOf(t, v1.AnomalyType_ANOMALY_TYPE_BUDGET_EXCEEDED)
	require.Len(t, listed, 1)

	got, err := tn.admin.anomalies.GetAnomaly(ctx, connect.NewRequest(&v1.GetAnomalyRequest{Id: listed[0].Id}))
	require.NoError(t, err)
	an := got.Msg.Anomaly
	require.True(t, proto.Equal(listed[0], an), "GetAnomaly and ListAnomalies agree:\n%v\n%v", listed[0], an)
	require.Equal(t, lim.Id, an.LimitId)
	require.EqualValues(t, 10*dollar, an.Baseline)
	require.EqualValues(t, 12*dollar, an.Observed)
	require.InDelta(t, 20.0, an.Deviation, 0.001, "20% over")
	require.NotEmpty(t, an.IncidentId)
	inc, err := tn.admin.incidents.GetIncident(ctx, connect.NewRequest(&v1.GetIncidentRequest{Id: an.IncidentId}))
	require.NoError(t, err)
	require.Equal(t, an.Id, inc.Msg.Incident.SourceId, "linked both ways")

	viewer, _ := tn.newUser(t, v1.Role_ROLE_VIEWER)
	_, err = viewer.anomalies.GetAnomaly(ctx, connect.NewRequest(&v1.GetAnomalyRequest{Id: an.Id}))
	require.NoError(t, err, "viewers read anomalies")
	other := newTenant(t, "UTC")
	_, err = other.admin.anomalies.GetAnomaly(ctx, connect.NewRequest(&v1.GetAnomalyRequest{Id: an.Id}))
	requireCode(t, connect.CodeNotFound, err)
	_, err = tn.admin.anomalies.GetAnomaly(ctx, connect.NewRequest(&v1.GetAnomalyRequest{Id: "anm_nope"}))
	requireCode(t, connect.CodeNotFound, err)
}
