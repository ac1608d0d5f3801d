package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"buf.build/go/protovalidate"
	"connectrpc.com/connect"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/governor-hq/governor/gen/governor/v1"
	c "github.com/governor-hq/governor/gen/governor/v1/governorv1connect"
	"github.com/governor-hq/governor/internal/actor"
	"github.com/governor-hq/governor/internal/authz"
	"github.com/governor-hq/governor/internal/export"
	"github.com/governor-hq/governor/internal/incidents"
	"github.com/governor-hq/governor/internal/llmcalls"
)

// Exports: ExportService.Export (a Connect server stream of the file's bytes) and the same
// export as a plain HTTP download, GET /export/v1/<dataset>.<csv|ndjson>?<filters>, which
// goes through the same authentication, permission, rate and stream limits as the RPC.

type exportService struct{ *Server }

var (
	exportDatasets = map[v1.ExportDataset]export.Dataset{
		v1.ExportDataset_EXPORT_DATASET_COST_RECORDS: export.CostRecords, v1.ExportDataset_EXPORT_DATASET_LLM_CALLS: export.LlmCalls,
		v1.ExportDataset_EXPORT_DATASET_RUNS: export.Runs, v1.ExportDataset_EXPORT_DATASET_AUDIT_ENTRIES: export.AuditEntries,
		v1.ExportDataset_EXPORT_DATASET_INCIDENTS: export.Incidents, v1.ExportDataset_EXPORT_DATASET_ANOMALIES: export.Anomalies,
	}
	exportDatasetEnums = invert(exportDatasets)
	exportFormats      = map[v1.ExportFormat]export.Format{v1.ExportFormat_EXPORT_FORMAT_CSV: export.CSV, v1.ExportFormat_EXPORT_FORMAT_NDJSON: export.NDJSON}
	exportFormatEnums  = invert(exportFormats)
)

// exportRequest turns a validated ExportRequest into the domain's, refusing a filter of
// another dataset.
func exportRequest(m *v1.ExportRequest, org string) (export.Request, error) {
	r := export.Request{OrgID: org, Dataset: exportDatasets[m.Dataset], Format: exportFormats[m.Format],
		Start: optTime(m.StartTime), End: optTime(m.EndTime), Excel: m.Excel}
	if r.Dataset == "" || r.Format == "" {
		return r, invalidField("dataset", "export.dataset", "an export needs a dataset and a format")
	}
	var filterOf export.Dataset
	switch f := m.Filter.(type) {
	case nil:
		filterOf = r.Dataset
	case *v1.ExportRequest_CostRecords:
		filterOf = export.CostRecords
		x := f.CostRecords
		r.CostRecords = export.CostRecordFilter{AgentID: x.AgentId, APIKeyID: x.ApiKeyId, ProjectID: x.ProjectId, Model: x.Model, Feature: x.Feature}
	case *v1.ExportRequest_LlmCalls:
		filterOf = export.LlmCalls
		x := f.LlmCalls
		r.LlmCalls = llmcalls.Filter{RunID: x.RunId, ProjectID: x.ProjectId, AgentID: x.AgentId, APIKeyID: x.ApiKeyId, Model: x.Model,
			Provider: x.Provider, Feature: x.Feature, Status: llmStatusNames[x.Status]}
	case *v1.ExportRequest_Runs:
		filterOf = export.Runs
		x := f.Runs
		r.Runs = export.RunFilter{AgentID: x.AgentId, APIKeyID: x.ApiKeyId, ProjectID: x.ProjectId, Model: x.Model, Feature: x.Feature}
		for _, st := range x.Statuses {
			r.Runs.Statuses = append(r.Runs.Statuses, runStatusNames[st])
		}
	case *v1.ExportRequest_AuditEntries:
		filterOf = export.AuditEntries
		x := f.AuditEntries
		r.Audit = export.AuditFilter{EntityType: x.EntityType, EntityID: x.EntityId, ActorAPIKeyID: x.ActorApiKeyId,
			ActorUserID: x.ActorUserId, Action: x.Action}
	case *v1.ExportRequest_Incidents:
		filterOf = export.Incidents
		x := f.Incidents
		r.Incidents.AgentID = x.AgentId
		for _, v := range x.Statuses {
			r.Incidents.Statuses = append(r.Incidents.Statuses, incidents.StatusName(v))
		}
		for _, v := range x.Severities {
			r.Incidents.Severities = append(r.Incidents.Severities, incidents.SeverityName(v))
		}
		for _, v := range x.Categories {
			r.Incidents.Categories = append(r.Incidents.Categories, incidents.CategoryName(v))
		}
	case *v1.ExportRequest_Anomalies:
		filterOf = export.Anomalies
		x := f.Anomalies
		a := export.AnomalyFilter{EntityType: x.GetEntity().GetType(), EntityID: x.GetEntity().GetId(), IncidentID: x.IncidentId, RunID: x.RunId}
		for _, v := range x.Types {
			a.Types = append(a.Types, anomalyTypeNames[v])
		}
		for _, v := range x.Severities {
			a.Severities = append(a.Severities, anomalySeverityNames[v])
		}
		for _, v := range x.Metrics {
			a.Metrics = append(a.Metrics, anomalyMetricNames[v])
		}
		for _, d := range []struct {
			field, v string
			to       **time.Time
		}{{"anomalies.from_day", x.FromDay, &a.FromDay}, {"anomalies.to_day", x.ToDay, &a.ToDay}} {
			if d.v == "" {
				continue
			}
			t, err := time.Parse("2006-01-02", d.v)
			if err != nil {
				return r, invalidField(d.field, "export.day", "not a day (YYYY-MM-DD)")
			}
			*d.to = &t
		}
		r.Anomalies = a
	}
	if filterOf != r.Dataset {
		return r, invalidField(string(filterOf), "export.filter", "a filter of %s, but the export is of %s", filterOf, r.Dataset)
	}
	return r, nil
}

// chunks sends what the export writes as stream messages (the writer above it buffers
// 64 KiB, so each message is one buffer). Send marshals before it returns, so the buffer
// may be reused.
type chunks struct {
	stream *connect.ServerStream[v1.ExportResponse]
	first  *v1.ExportResponse
}

func (w *chunks) Write(p []byte) (int, error) {
	msg := &v1.ExportResponse{Data: p}
	if w.first != nil {
		w.first.Data, msg, w.first = p, w.first, nil
	}
	if err := w.stream.Send(msg); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (s *exportService) Export(ctx context.Context, req *connect.Request[v1.ExportRequest], stream *connect.ServerStream[v1.ExportResponse]) error {
	r, err := exportRequest(req.Msg, principal(ctx).OrgID)
	if err != nil {
		return err
	}
	w := &chunks{stream: stream, first: &v1.ExportResponse{ContentType: r.Format.ContentType(), FileName: export.FileName(r)}}
	rows, err := export.Write(ctx, s.pool, r, w)
	if err != nil {
		return err
	}
	last := &v1.ExportResponse{Rows: rows, Done: true}
	if w.first != nil { // nothing was written (cannot happen: CSV has a header), say what it is anyway
		last.ContentType, last.FileName = w.first.ContentType, w.first.FileName
	}
	return stream.Send(last)
}

// ExportPathPrefix is where the HTTP download endpoint is mounted.
const ExportPathPrefix = "/export/v1/"

// exportFilterField is the ExportRequest field holding each dataset's filter.
var exportFilterField = map[export.Dataset]protoreflect.Name{
	export.CostRecords: "cost_records", export.LlmCalls: "llm_calls", export.Runs: "runs",
	export.AuditEntries: "audit_entries", export.Incidents: "incidents", export.Anomalies: "anomalies",
}

// exportHTTP serves GET /export/v1/<dataset>.<format>?start_time=…&end_time=…&excel=true&<filter fields>.
func (s *Server) exportHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	procedure := c.ExportServiceExportProcedure
	id := r.Header.Get(RequestIDHeader)
	if !validRequestID.MatchString(id) {
		id = newRequestID()
	}
	w.Header().Set(RequestIDHeader, id)
	ctx := actor.WithRequestID(r.Context(), id)
	var p authz.Principal
	code := "ok"
	var rows int64
	defer func() {
		s.metrics.observe(procedure, code, time.Since(start))
		attrs := []any{"procedure", "GET " + r.URL.Path, "code", code, "ms", float64(time.Since(start).Microseconds()) / 1000, "request_id", id, "rows", rows}
		if p.OrgID != "" {
			attrs = append(attrs, "org", p.OrgID, "key", p.APIKeyID)
		}
		s.log.InfoContext(ctx, "export", attrs...)
	}()
	fail := func(err error) {
		cerr := new(connect.Error)
		if !errors.As(err, &cerr) {
			s.log.ErrorContext(ctx, "export failed", "err", err)
			cerr = connect.NewError(connect.CodeInternal, errors.New("internal error"))
		}
		code = cerr.Code().String()
		for k, vs := range cerr.Meta() {
			if k == "Retry-After" {
				w.Header()[k] = vs
			}
		}
		status := exportStatus(cerr.Code())
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="governor"`)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(status)
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(map[string]string{"code": code, "message": cerr.Message()})
	}
	// Reading the (empty) body to its end lifts the read deadline guard set on it, which
	// would otherwise end a long download.
	_, _ = io.Copy(io.Discard, r.Body)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		code = "method_not_allowed"
		http.Error(w, "an export is a GET", http.StatusMethodNotAllowed)
		return
	}
	name, ext, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, ExportPathPrefix), ".")
	ds, known := exportDatasetEnums[export.Dataset(name)]
	format, knownFormat := exportFormatEnums[export.Format(ext)]
	if !ok || !known || !knownFormat {
		fail(connect.NewError(connect.CodeNotFound, fmt.Errorf("no export at %s: the datasets are %s, as .csv or .ndjson", r.URL.Path, datasetList())))
		return
	}
	actx, err := s.auth.check(ctx, procedure, r.Header)
	if err != nil {
		fail(err)
		return
	}
	p = principal(actx)
	release, err := s.streams.open(p)
	if err != nil {
		fail(err)
		return
	}
	defer release()
	msg := &v1.ExportRequest{Dataset: ds, Format: format}
	if err := fillExportQuery(msg, r.URL.Query()); err != nil {
		fail(err)
		return
	}
	if err := protovalidate.Validate(msg); err != nil {
		fail(connect.NewError(connect.CodeInvalidArgument, err))
		return
	}
	req, err := exportRequest(msg, p.OrgID)
	if err != nil {
		fail(err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", req.Format.ContentType())
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", export.FileName(req)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Trailer", "Governor-Export-Rows")
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	rows, err = export.Write(actx, s.pool, req, w)
	if err != nil {
		// The status line is gone: cut the response short so no client takes a truncated
		// file for a whole one (curl reports it; the trailer is missing).
		code = connect.CodeOf(toConnect(actx, s.log, procedure, err)).String()
		s.log.WarnContext(ctx, "export cut short", "rows", rows, "err", err)
		panic(http.ErrAbortHandler)
	}
	h.Set("Governor-Export-Rows", strconv.FormatInt(rows, 10))
}

func datasetList() string {
	names := make([]string, len(export.Datasets))
	for i, d := range export.Datasets {
		names[i] = string(d)
	}
	return strings.Join(names, ", ")
}

func exportStatus(code connect.Code) int {
	switch code {
	case connect.CodeUnauthenticated:
		return http.StatusUnauthorized
	case connect.CodePermissionDenied:
		return http.StatusForbidden
	case connect.CodeNotFound:
		return http.StatusNotFound
	case connect.CodeResourceExhausted:
		return http.StatusTooManyRequests
	case connect.CodeUnavailable:
		return http.StatusServiceUnavailable
	case connect.CodeInvalidArgument, connect.CodeFailedPrecondition, connect.CodeOutOfRange:
		return http.StatusBadRequest
	case connect.CodeCanceled:
		return 499
	case connect.CodeDeadlineExceeded:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// fillExportQuery sets ExportRequest fields from query parameters: start_time, end_time
// and excel, and the fields of the dataset's filter by their proto names (repeated
// fields by repeating the parameter, enums by name or number, nested fields with dots:
// entity.type=agent).
func fillExportQuery(m *v1.ExportRequest, q url.Values) error {
	mr := m.ProtoReflect()
	top := mr.Descriptor().Fields()
	filterFD := top.ByName(exportFilterField[exportDatasets[m.Dataset]])
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		vals := q[k]
		switch k {
		case "start_time", "end_time", "excel":
			if err := setField(mr, k, vals); err != nil {
				return invalidField(k, "export.query", "%v", err)
			}
			continue
		}
		filter := mr.Mutable(filterFD).Message()
		if err := setField(filter, k, vals); err != nil {
			var names []string
			fs := filter.Descriptor().Fields()
			for i := range fs.Len() {
				names = append(names, string(fs.Get(i).Name()))
			}
			return invalidField(k, "export.query", "%v (the filters of %s are %s, with start_time, end_time and excel)",
				err, exportDatasets[m.Dataset], strings.Join(names, ", "))
		}
	}
	return nil
}

func setField(m protoreflect.Message, path string, vals []string) error {
	name, rest, nested := strings.Cut(path, ".")
	fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
	if fd == nil {
		return fmt.Errorf("unknown query parameter %q", path)
	}
	if nested {
		if fd.Kind() != protoreflect.MessageKind || fd.IsList() || fd.IsMap() {
			return fmt.Errorf("unknown query parameter %q", path)
		}
		return setField(m.Mutable(fd).Message(), rest, vals)
	}
	if fd.IsMap() {
		return fmt.Errorf("query parameter %q cannot be set", path)
	}
	if fd.IsList() {
		list := m.Mutable(fd).List()
		for _, s := range vals {
			v, err := scalar(fd, s)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			list.Append(v)
		}
		return nil
	}
	if len(vals) != 1 {
		return fmt.Errorf("query parameter %q given %d times", path, len(vals))
	}
	v, err := scalar(fd, vals[0])
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	m.Set(fd, v)
	return nil
}

func scalar(fd protoreflect.FieldDescriptor, s string) (protoreflect.Value, error) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(s), nil
	case protoreflect.BoolKind:
		b, err := strconv.ParseBool(s)
		return protoreflect.ValueOfBool(b), err
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		n, err := strconv.ParseInt(s, 10, 32)
		return protoreflect.ValueOfInt32(int32(n)), err
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		n, err := strconv.ParseInt(s, 10, 64)
		return protoreflect.ValueOfInt64(n), err
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByName(protoreflect.Name(s)); ev != nil {
			return protoreflect.ValueOfEnum(ev.Number()), nil
		}
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil || fd.Enum().Values().ByNumber(protoreflect.EnumNumber(n)) == nil {
			return protoreflect.Value{}, fmt.Errorf("%q is not a value of %s", s, fd.Enum().Name())
		}
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(n)), nil
	case protoreflect.MessageKind:
		if fd.Message().FullName() == "google.protobuf.Timestamp" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return protoreflect.Value{}, errors.New("not an RFC 3339 time (2026-01-31T00:00:00Z)")
			}
			return protoreflect.ValueOfMessage(timestamppb.New(t).ProtoReflect()), nil
		}
	}
	return protoreflect.Value{}, fmt.Errorf("cannot be set from a query parameter")
}
