package e2e

import (
	"context"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
)

// An approver acknowledges an open incident: it says who and when, the ledger and the
// timeline record it once however often it is repeated, and a resolved incident cannot be
// acknowledged. Viewers and other organizations cannot.
func TestAcknowledgeIncident(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	ag := tn.newAgent(t, "flaky tool user")
	failed := fail(t, tn, ag, "TOOL_TIMEOUT", "search tool timed out after 30s", dollar, "gpt-4o", "search")
	inc := incidentOf(t, tn.admin, failed.Id)
	require.Equal(t, v1.IncidentStatus_INCIDENT_STATUS_OPEN, inc.Status)
	require.Nil(t, inc.AcknowledgeTime)

	viewer, _ := tn.newUser(t, v1.Role_ROLE_VIEWER)
	_, err := viewer.incidents.AcknowledgeIncident(ctx, connect.NewRequest(&v1.AcknowledgeIncidentRequest{Id: inc.Id}))
	requireCode(t, connect.CodePermissionDenied, err)
	other := newTenant(t, "UTC")
	_, err = other.admin.incidents.AcknowledgeIncident(ctx, connect.NewRequest(&v1.AcknowledgeIncidentRequest{Id: inc.Id}))
	requireCode(t, connect.CodeNotFound, err)

	approver, _ := tn.newUser(t, v1.Role_ROLE_APPROVER)
	ack, err := approver.incidents.AcknowledgeIncident(ctx, connect.NewRequest(&v1.AcknowledgeIncidentRequest{Id: inc.Id, Note: "looking into it"}))
	require.NoError(t, err)
	a := ack.Msg.Incident
	require.Equal(t, v1.IncidentStatus_INCIDENT_STATUS_ACKNOWLEDGED, a.Status)
	require.Equal(t, approver.userID, a.AcknowledgedBy)
	require.NotNil(t, a.AcknowledgeTime)
	got, err := tn.admin.incidents.GetIncident(ctx, connect.NewRequest(&v1.GetIncidentRequest{Id: inc.Id}))
	require.NoError(t, err)
	require.Equal(t, v1.IncidentStatus_INCIDENT_STATUS_ACKNOWLEDGED, got.Msg.Incident.Status)
	again, err := approver.incidents.AcknowledgeIncident(ctx, connect.NewRequest(&v1.AcknowledgeIncidentRequest{Id: inc.Id}))
	require.NoError(t, err, "acknowledging twice is a no-op")
	require.Equal(t, a.AcknowledgeTime.AsTime(), again.Msg.Incident.AcknowledgeTime.AsTime())

	entries, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{EntityId: inc.Id, Action: "incident.acknowledge"}))
	require.NoError(t, err)
	require.Len(t, entries.Msg.Entries, 1)
	require.Equal(t, approver.userID, entries.Msg.Entries[0].Actor.UserId)
	require.Contains(t, entries.Msg.Entries[0].AfterJson, "INCIDENT_STATUS_ACKNOWLEDGED")
	evs, err := tn.admin.timeline.ListEvents(ctx, connect.NewRequest(&v1.ListEventsRequest{Filter: &v1.EventFilter{
		Types: []string{"incident_acknowledged"}, Entity: &v1.EntityRef{Type: "incident", Id: inc.Id}}}))
	require.NoError(t, err)
	require.Len(t, evs.Msg.Events, 1)
	require.Contains(t, evs.Msg.Events[0].Summary, "looking into it")
	require.Equal(t, failed.Id, evs.Msg.Events[0].CorrelationId, "correlated with the run that failed")

	_, err = approver.incidents.ResolveIncident(ctx, connect.NewRequest(&v1.ResolveIncidentRequest{Id: inc.Id, Note: "tool fixed"}))
	require.NoError(t, err)
	_, err = approver.incidents.AcknowledgeIncident(ctx, connect.NewRequest(&v1.AcknowledgeIncidentRequest{Id: inc.Id}))
	requireCode(t, connect.CodeFailedPrecondition, err)
	require.Contains(t, err.Error(), "resolved")
}
