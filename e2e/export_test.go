package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/governor-hq/governor/api"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
)

// exportRPC runs ExportService.Export and returns the file and its first and last messages.
func exportRPC(t *testing.T, c recordClients, req *v1.ExportRequest) ([]byte, *v1.ExportResponse, *v1.ExportResponse) {
	t.Helper()
	stream, err := c.export.Export(context.Background(), connect.NewRequest(req))
	require.NoError(t, err)
	defer stream.Close()
	var data bytes.Buffer
	var first, last *v1.ExportResponse
	for stream.Receive() {
		m := stream.Msg()
		if first == nil {
			first = m
		}
		last = m
		data.Write(m.Data)
	}
	require.NoError(t, stream.Err())
	require.NotNil(t, first)
	return data.Bytes(), first, last
}

func exportErr(c recordClients, req *v1.ExportRequest) error {
	stream, err := c.export.Export(context.Background(), connect.NewRequest(req))
	if err != nil {
		return err
	}
	defer stream.Close()
	for stream.Receive() {
	}
	return stream.Err()
}

// download GETs an export the way `curl -H "Authorization: Bearer …" -o file URL` does.
func download(t *testing.T, s *stack, secret, path string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.baseURL+path, nil)
	require.NoError(t, err)
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := s.http.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

// table parses a CSV export into its header and rows keyed by the first column.
func table(t *testing.T, data []byte) ([]string, map[string]map[string]string, []string) {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	require.NoError(t, err)
	require.NotEmpty(t, recs, "a header row")
	rows := map[string]map[string]string{}
	var order []string
	for _, r := range recs[1:] {
		require.Len(t, r, len(recs[0]))
		m := map[string]string{}
		for i, h := range recs[0] {
			m[h] = r[i]
		}
		rows[r[0]] = m
		order = append(order, r[0])
	}
	return recs[0], rows, order
}

func ndjson(t *testing.T, data []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
		out = append(out, m)
	}
	return out
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

func usd(micros int64) string { return fmt.Sprintf("%d.%06d", micros/1_000_000, micros%1_000_000) }

// Seed 001's export_data: every dataset, as CSV or NDJSON, over Connect and plain HTTP,
// equals what the list RPCs return, filtered the same way, and only the caller's own.
func TestExportEqualsTheListRPCs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tn := newTenant(t, "UTC")
	admin := tn.adminRecords()
	ag := tn.agentWithKey(t, "exported")
	var runIDs []string
	for i, status := range []v1.RunStatus{v1.RunStatus_RUN_STATUS_SUCCEEDED, v1.RunStatus_RUN_STATUS_SUCCEEDED, v1.RunStatus_RUN_STATUS_FAILED} {
		r, err := ag.ingest.runs.AdmitRun(ctx, connect.NewRequest(&v1.AdmitRunRequest{AgentId: ag.agentID, Model: "gpt-4o",
			Feature: `support, "tier 2"`, Tags: map[string]string{"team": "a,b"}, Estimate: &v1.Estimate{CostMicros: dollar}}))
		require.NoError(t, err)
		runIDs = append(runIDs, r.Msg.Run.Id)
		recordCalls(t, ag.ingest, r.Msg.Run.Id,
			&v1.LlmCallReport{CallId: fmt.Sprintf("r%d-a", i), Model: "gpt-4o", InputTokens: 1000, OutputTokens: 100, CacheReadTokens: 50,
				Attributes: map[string]string{"note": "line\nbreak, comma"}},
			&v1.LlmCallReport{CallId: fmt.Sprintf("r%d-b", i), Model: "claude-sonnet-4", CostMicros: proto.Int64(12_345), Operation: "=cmd|' /C calc'!A0"})
		_, err = ag.ingest.runs.CompleteRun(ctx, connect.NewRequest(&v1.CompleteRunRequest{RunId: r.Msg.Run.Id, Status: status,
			CostMicros: proto.Int64(int64(i+1) * 1_234_567), InputTokens: 10, OutputTokens: 5, ErrorCode: "E", ErrorMessage: "boom"}))
		require.NoError(t, err)
		waitSettled(t, tn.admin, r.Msg.Run.Id)
	}

	// Cost records over Connect, as CSV.
	data, first, last := exportRPC(t, admin, &v1.ExportRequest{Dataset: v1.ExportDataset_EXPORT_DATASET_COST_RECORDS, Format: v1.ExportFormat_EXPORT_FORMAT_CSV})
	require.Equal(t, "text/csv; charset=utf-8; header=present", first.ContentType)
	require.Equal(t, "governor-cost_records.csv", first.FileName)
	require.True(t, last.Done)
	require.EqualValues(t, 3, last.Rows)
	header, rows, _ := table(t, data)
	require.Contains(t, header, "cost_usd")
	list, err := tn.admin.runs.ListCostRecords(ctx, connect.NewRequest(&v1.ListCostRecordsRequest{}))
	require.NoError(t, err)
	require.Len(t, list.Msg.Records, 3)
	require.Len(t, rows, 3)
	for _, c := range list.Msg.Records {
		r := rows[c.Id]
		require.NotNil(t, r, c.Id)
		require.Equal(t, c.RunId, r["run_id"])
		require.Equal(t, strconv.FormatInt(c.CostMicros, 10), r["cost_micros"])
		require.Equal(t, usd(c.CostMicros), r["cost_usd"], "dollars beside micro-dollars")
		require.Equal(t, strconv.FormatInt(c.InputTokens, 10), r["input_tokens"])
		require.Equal(t, c.Feature, r["feature"], "quotes and commas survive")
		require.Equal(t, stamp(c.RecordTime.AsTime()), r["record_time"])
		require.Equal(t, strings.ToLower(strings.TrimPrefix(c.RunStatus.String(), "RUN_STATUS_")), r["run_status"])
	}

	// LLM calls over plain HTTP with a filter, the way curl downloads them.
	resp, body := download(t, tn.stack, tn.org.Secret, "/export/v1/llm_calls.csv?model=gpt-4o")
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Equal(t, "text/csv; charset=utf-8; header=present", resp.Header.Get("Content-Type"))
	require.Equal(t, `attachment; filename="governor-llm_calls.csv"`, resp.Header.Get("Content-Disposition"))
	require.Equal(t, "3", resp.Trailer.Get("Governor-Export-Rows"))
	_, rows, order := table(t, body)
	calls := allCalls(t, admin, &v1.ListLlmCallsRequest{Filter: &v1.LlmCallFilter{Model: "gpt-4o"}})
	require.Len(t, calls, 3)
	for i, c := range calls {
		require.Equal(t, c.Id, order[i], "oldest first, as the list")
		r := rows[c.Id]
		require.Equal(t, c.CallId, r["call_id"])
		require.Equal(t, c.RunId, r["run_id"])
		require.Equal(t, strconv.FormatInt(c.CostMicros, 10), r["cost_micros"])
		require.Equal(t, usd(c.CostMicros), r["cost_usd"])
		require.Equal(t, strconv.FormatInt(c.CacheReadTokens, 10), r["cache_read_tokens"])
		require.Equal(t, stamp(c.StartTime.AsTime()), r["start_time"])
		require.Equal(t, "priced", r["cost_source"])
		var attrs map[string]string
		require.NoError(t, json.Unmarshal([]byte(r["attributes"]), &attrs))
		require.Equal(t, c.Attributes, attrs)
	}
	// For Excel: a byte-order mark, and no cell that runs as a formula.
	resp, body = download(t, tn.stack, tn.org.Secret, "/export/v1/llm_calls.csv?model=claude-sonnet-4&excel=true")
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.True(t, bytes.HasPrefix(body, []byte("\ufeff")))
	_, rows, _ = table(t, bytes.TrimPrefix(body, []byte("\ufeff")))
	require.Len(t, rows, 3)
	for _, r := range rows {
		require.Equal(t, "'=cmd|' /C calc'!A0", r["operation"])
	}

	// Runs as NDJSON, over HTTP: the same runs, statuses and costs as ListRuns.
	resp, body = download(t, tn.stack, tn.org.Secret, "/export/v1/runs.ndjson")
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Equal(t, "application/x-ndjson", resp.Header.Get("Content-Type"))
	lines := ndjson(t, body)
	require.Len(t, lines, 3)
	for i, l := range lines {
		require.Equal(t, runIDs[i], l["id"])
		got, err := tn.admin.runs.GetRun(ctx, connect.NewRequest(&v1.GetRunRequest{Id: runIDs[i]}))
		require.NoError(t, err)
		require.EqualValues(t, got.Msg.Run.Actual.CostMicros, l["cost_micros"])
		require.Equal(t, usd(got.Msg.Run.Actual.CostMicros), l["cost_usd"])
		require.Equal(t, strings.ToLower(strings.TrimPrefix(got.Msg.Run.Status.String(), "RUN_STATUS_")), l["status"])
		require.Equal(t, map[string]any{"team": "a,b"}, l["tags"])
		require.Equal(t, stamp(got.Msg.Run.AdmitTime.AsTime()), l["admit_time"])
	}
	resp, body = download(t, tn.stack, tn.org.Secret, "/export/v1/runs.ndjson?statuses=RUN_STATUS_FAILED")
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Len(t, ndjson(t, body), 1)

	// Audit entries and incidents: the same entries as their lists.
	data, _, last = exportRPC(t, admin, &v1.ExportRequest{Dataset: v1.ExportDataset_EXPORT_DATASET_AUDIT_ENTRIES, Format: v1.ExportFormat_EXPORT_FORMAT_NDJSON})
	audit, err := tn.admin.audit.ListAuditEntries(ctx, connect.NewRequest(&v1.ListAuditEntriesRequest{PageSize: 500}))
	require.NoError(t, err)
	entries := ndjson(t, data)
	require.EqualValues(t, len(audit.Msg.Entries), last.Rows)
	require.Len(t, entries, len(audit.Msg.Entries))
	for i, e := range audit.Msg.Entries {
		require.Equal(t, e.Id, entries[i]["id"])
		require.EqualValues(t, e.Sequence, entries[i]["sequence"])
		require.Equal(t, e.Hash, entries[i]["hash"])
		require.Equal(t, e.Action, entries[i]["action"])
	}
	var incidentIDs []string
	eventually(t, patience, func() bool {
		l, err := tn.admin.incidents.ListIncidents(ctx, connect.NewRequest(&v1.ListIncidentsRequest{}))
		require.NoError(t, err)
		incidentIDs = nil
		for _, i := range l.Msg.Incidents {
			incidentIDs = append(incidentIDs, i.Id)
		}
		return len(incidentIDs) == 1
	}, "the failed run opens an incident")
	data, _, _ = exportRPC(t, admin, &v1.ExportRequest{Dataset: v1.ExportDataset_EXPORT_DATASET_INCIDENTS, Format: v1.ExportFormat_EXPORT_FORMAT_CSV,
		Filter: &v1.ExportRequest_Incidents{Incidents: &v1.IncidentFilter{AgentId: ag.agentID}}})
	_, rows, order = table(t, data)
	require.Equal(t, incidentIDs, order)
	require.Equal(t, "RUN_FAILURE", rows[incidentIDs[0]]["category"])
	data, _, last = exportRPC(t, admin, &v1.ExportRequest{Dataset: v1.ExportDataset_EXPORT_DATASET_ANOMALIES, Format: v1.ExportFormat_EXPORT_FORMAT_CSV})
	header, rows, _ = table(t, data)
	require.Contains(t, header, "deviation")
	require.Empty(t, rows)
	require.EqualValues(t, 0, last.Rows)

	// A time range: the records of [start, end).
	end := list.Msg.Records[2].RecordTime.AsTime()
	resp, body = download(t, tn.stack, tn.org.Secret, "/export/v1/cost_records.csv?start_time="+list.Msg.Records[1].RecordTime.AsTime().Format(time.RFC3339Nano)+
		"&end_time="+end.Format(time.RFC3339Nano))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	_, rows, _ = table(t, body)
	require.Len(t, rows, 1)
	require.Contains(t, rows, list.Msg.Records[1].Id)

	// Another organization exports nothing of this one.
	stranger := newTenant(t, "UTC")
	_, _, last = exportRPC(t, stranger.adminRecords(), &v1.ExportRequest{Dataset: v1.ExportDataset_EXPORT_DATASET_LLM_CALLS, Format: v1.ExportFormat_EXPORT_FORMAT_CSV})
	require.EqualValues(t, 0, last.Rows)
	resp, body = download(t, tn.stack, stranger.org.Secret, "/export/v1/llm_calls.ndjson?run_id="+runIDs[0])
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Empty(t, body)
}

// The download endpoint authenticates and authorizes like the API, and answers bad
// requests with an HTTP status and a JSON error naming what is wrong.
func TestExportDownloadRefusesWhatTheAPIRefuses(t *testing.T) {
	t.Parallel()
	tn := newTenant(t, "UTC")
	ag := tn.agentWithKey(t, "agent")
	// A viewer may read, so it may export (a second key of the viewer, whose secret we keep).
	_, viewerKey := tn.newUser(t, v1.Role_ROLE_VIEWER)
	_, viewerSecret, err := api.IssueUserKey(context.Background(), tn.pool, "test:issue", api.IssueUserKeyInput{
		OrgID: tn.org.Organization.Id, UserID: viewerKey.UserId, Name: "viewer export"})
	require.NoError(t, err)
	type jsonErr struct{ Code, Message string }
	check := func(secret, path string, status int, code, contains string) {
		t.Helper()
		resp, body := download(t, tn.stack, secret, path)
		require.Equal(t, status, resp.StatusCode, string(body))
		if code == "" {
			return
		}
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		var e jsonErr
		require.NoError(t, json.Unmarshal(body, &e), string(body))
		require.Equal(t, code, e.Code)
		require.Contains(t, e.Message, contains)
		if status == http.StatusUnauthorized {
			require.Equal(t, `Bearer realm="governor"`, resp.Header.Get("WWW-Authenticate"))
		}
	}
	check("", "/export/v1/runs.csv", http.StatusUnauthorized, "unauthenticated", "Authorization")
	check("gvk_notakey", "/export/v1/runs.csv", http.StatusUnauthorized, "unauthenticated", "API key")
	check(ag.rec.secret, "/export/v1/runs.csv", http.StatusForbidden, "permission_denied", "read")
	check(viewerSecret, "/export/v1/runs.csv", http.StatusOK, "", "")
	check(tn.org.Secret, "/export/v1/secrets.csv", http.StatusNotFound, "not_found", "cost_records")
	check(tn.org.Secret, "/export/v1/runs.xlsx", http.StatusNotFound, "not_found", ".csv or .ndjson")
	check(tn.org.Secret, "/export/v1/runs.csv?color=red", http.StatusBadRequest, "invalid_argument", "color")
	check(tn.org.Secret, "/export/v1/cost_records.csv?statuses=RUN_STATUS_FAILED", http.StatusBadRequest, "invalid_argument", "statuses")
	check(tn.org.Secret, "/export/v1/runs.csv?statuses=RUN_STATUS_NOPE", http.StatusBadRequest, "invalid_argument", "RUN_STATUS_NOPE")
	check(tn.org.Secret, "/export/v1/runs.csv?agent_id=not-an-agent", http.StatusBadRequest, "invalid_argument", "agent_id")
	check(tn.org.Secret, "/export/v1/runs.csv?start_time=yesterday", http.StatusBadRequest, "invalid_argument", "RFC 3339")
	check(tn.org.Secret, "/export/v1/anomalies.csv?entity.type=agent&entity.id="+ag.agentID, http.StatusOK, "", "")

	req, err := http.NewRequest(http.MethodPost, tn.baseURL+"/export/v1/runs.csv", strings.NewReader("x"))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tn.org.Secret)
	resp, err := tn.http.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	require.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))

	// The RPC refuses a filter of another dataset, and keys without the read permission.
	err = exportErr(tn.adminRecords(), &v1.ExportRequest{Dataset: v1.ExportDataset_EXPORT_DATASET_RUNS, Format: v1.ExportFormat_EXPORT_FORMAT_CSV,
		Filter: &v1.ExportRequest_CostRecords{CostRecords: &v1.CostRecordFilter{}}})
	requireCode(t, connect.CodeInvalidArgument, err)
	requireCode(t, connect.CodePermissionDenied, exportErr(ag.rec, &v1.ExportRequest{Dataset: v1.ExportDataset_EXPORT_DATASET_RUNS, Format: v1.ExportFormat_EXPORT_FORMAT_CSV}))
	requireCode(t, connect.CodeInvalidArgument, exportErr(tn.adminRecords(), &v1.ExportRequest{Format: v1.ExportFormat_EXPORT_FORMAT_CSV}))
}
