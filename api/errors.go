package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/governor-hq/governor/db"
	"github.com/governor-hq/governor/internal/idempotency"
)

// invalidField is an InvalidArgument error about one request field, shaped like the
// errors of the validate interceptor (a buf.validate.Violations detail), so clients handle
// both alike.
func invalidField(field, ruleID, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	err := connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("validation error: %s: %s", field, msg))
	detail, derr := connect.NewErrorDetail(&validate.Violations{Violations: []*validate.Violation{{
		Field:   &validate.FieldPath{Elements: []*validate.FieldPathElement{{FieldName: proto.String(field)}}},
		RuleId:  proto.String(ruleID),
		Message: proto.String(msg),
	}}})
	if derr == nil {
		err.AddDetail(detail)
	}
	return err
}

func notFound(format string, args ...any) error {
	return connect.NewError(connect.CodeNotFound, fmt.Errorf(format, args...))
}

func failedPrecondition(format string, args ...any) error {
	return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(format, args...))
}

func permissionDenied(format string, args ...any) error {
	return connect.NewError(connect.CodePermissionDenied, fmt.Errorf(format, args...))
}

// uniqueMessages explains the unique constraints a client can run into.
var uniqueMessages = map[string]string{
	"projects_org_id_name_key":   "a project with this name already exists",
	"agents_project_id_name_key": "an agent with this name already exists in the project",
	"users_org_email":            "a user with this email already exists",
}

// toConnect turns an error a handler returned into a Connect error: connect errors pass
// through, known data-layer errors get their codes, anything else is Internal with its
// detail logged, not sent.
func toConnect(ctx context.Context, log *slog.Logger, procedure string, err error) error {
	var ce *connect.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return ce
	case errors.Is(err, db.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, errors.New("not found"))
	case errors.Is(err, idempotency.ErrKeyReused):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, idempotency.ErrInProgress):
		return connect.NewError(connect.CodeAborted, err)
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	}
	if name, code := db.Constraint(err); code == db.CodeUniqueViolation {
		msg := uniqueMessages[name]
		if msg == "" {
			msg = "already exists"
		}
		return connect.NewError(connect.CodeAlreadyExists, errors.New(msg))
	}
	log.ErrorContext(ctx, "internal error", "procedure", procedure, "err", err)
	return connect.NewError(connect.CodeInternal, errors.New("internal error"))
}
