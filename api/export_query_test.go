package api

import (
	"net/url"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
)

// The download's query parameters fill the same ExportRequest an RPC client sends.
func TestExportQueryFillsTheDatasetsFilter(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		dataset v1.ExportDataset
		query   string
		want    *v1.ExportRequest
		errHas  string
	}{
		{v1.ExportDataset_EXPORT_DATASET_RUNS, "statuses=RUN_STATUS_FAILED&statuses=3&model=gpt-4o&start_time=2026-01-31T00:00:00Z&excel=true",
			&v1.ExportRequest{Excel: true, StartTime: ts(at), Filter: &v1.ExportRequest_Runs{Runs: &v1.RunFilter{
				Statuses: []v1.RunStatus{v1.RunStatus_RUN_STATUS_FAILED, v1.RunStatus_RUN_STATUS_FAILED}, Model: "gpt-4o"}}}, ""},
		{v1.ExportDataset_EXPORT_DATASET_ANOMALIES, "entity.type=agent&entity.id=agt_1&from_day=2026-01-01",
			&v1.ExportRequest{Filter: &v1.ExportRequest_Anomalies{Anomalies: &v1.AnomalyFilter{
				Entity: &v1.EntityRef{Type: "agent", Id: "agt_1"}, FromDay: "2026-01-01"}}}, ""},
		{v1.ExportDataset_EXPORT_DATASET_LLM_CALLS, "status=LLM_CALL_STATUS_ERROR&end_time=2026-01-31T00:00:00.5Z",
			&v1.ExportRequest{EndTime: ts(at.Add(500 * time.Millisecond)), Filter: &v1.ExportRequest_LlmCalls{LlmCalls: &v1.LlmCallFilter{
				Status: v1.LlmCallStatus_LLM_CALL_STATUS_ERROR}}}, ""},
		{v1.ExportDataset_EXPORT_DATASET_COST_RECORDS, "", &v1.ExportRequest{}, ""},
		{v1.ExportDataset_EXPORT_DATASET_COST_RECORDS, "statuses=RUN_STATUS_FAILED", nil, "statuses"},
		{v1.ExportDataset_EXPORT_DATASET_COST_RECORDS, "model=a&model=b", nil, "given 2 times"},
		{v1.ExportDataset_EXPORT_DATASET_RUNS, "statuses=NOPE", nil, "NOPE"},
		{v1.ExportDataset_EXPORT_DATASET_RUNS, "statuses=99", nil, "99"},
		{v1.ExportDataset_EXPORT_DATASET_RUNS, "excel=maybe", nil, "excel"},
		{v1.ExportDataset_EXPORT_DATASET_RUNS, "start_time=yesterday", nil, "RFC 3339"},
		{v1.ExportDataset_EXPORT_DATASET_ANOMALIES, "entity.color=red", nil, "entity.color"},
		{v1.ExportDataset_EXPORT_DATASET_ANOMALIES, "model.x=1", nil, "model.x"},
		{v1.ExportDataset_EXPORT_DATASET_RUNS, "dataset=EXPORT_DATASET_RUNS", nil, "dataset"},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			q, err := url.ParseQuery(c.query)
			require.NoError(t, err)
			got := &v1.ExportRequest{Dataset: c.dataset, Format: v1.ExportFormat_EXPORT_FORMAT_CSV}
			err = fillExportQuery(got, q)
			if c.errHas != "" {
				require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "%v", err)
				require.Contains(t, err.Error(), c.errHas)
				return
			}
			require.NoError(t, err)
			c.want.Dataset, c.want.Format = c.dataset, v1.ExportFormat_EXPORT_FORMAT_CSV
			require.True(t, proto.Equal(c.want, got), "got %v, want %v", got, c.want)
		})
	}
}

func TestExportRequestRefusesAnotherDatasetsFilter(t *testing.T) {
	t.Parallel()
	_, err := exportRequest(&v1.ExportRequest{Dataset: v1.ExportDataset_EXPORT_DATASET_RUNS, Format: v1.ExportFormat_EXPORT_FORMAT_CSV,
		Filter: &v1.ExportRequest_Incidents{Incidents: &v1.IncidentFilter{}}}, "org_x")
	require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err))
	r, err := exportRequest(&v1.ExportRequest{Dataset: v1.ExportDataset_EXPORT_DATASET_INCIDENTS, Format: v1.ExportFormat_EXPORT_FORMAT_NDJSON,
		Filter: &v1.ExportRequest_Incidents{Incidents: &v1.IncidentFilter{Severities: []v1.IncidentSeverity{v1.IncidentSeverity_INCIDENT_SEVERITY_HIGH},
			Categories: []v1.IncidentCategory{v1.IncidentCategory_INCIDENT_CATEGORY_RUN_FAILURE}}}}, "org_x")
	require.NoError(t, err)
	require.Equal(t, []string{"high"}, r.Incidents.Severities)
	require.Equal(t, []string{"RUN_FAILURE"}, r.Incidents.Categories)
	require.Equal(t, "org_x", r.OrgID)
}
