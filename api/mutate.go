package api

import (
	"context"
	"errors"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/governor-hq/governor/internal/actor"
	"github.com/governor-hq/governor/internal/change"
	"github.com/governor-hq/governor/internal/idempotency"
)

// ReplayedHeader is set on a response that replays the recorded response of an earlier
// request with the same Idempotency-Key.
const ReplayedHeader = "Idempotent-Replayed"

// errReplay ends a transaction that found a recorded response: nothing of it commits.
var errReplay = errors.New("replay recorded response")

// mutate runs a governance change for the caller: fn's writes, its audit entries and its
// events commit together. With an Idempotency-Key header, the key is claimed in the same
// transaction and the response recorded with it; a retry with the same API key replays
// that response.
func mutate[Res any](ctx context.Context, s *Server, req connect.AnyRequest, fn func(c *change.Tx) (*Res, error)) (*connect.Response[Res], error) {
	p := principal(ctx)
	scope := change.Scope{OrgID: p.OrgID, Actor: p.Actor(), RequestID: actor.RequestID(ctx)}
	key := req.Header().Get(idempotency.Header)
	if key == "" {
		var out *Res
		err := change.Run(ctx, s.pool, scope, func(c *change.Tx) error {
			var err error
			out, err = fn(c)
			return err
		})
		if err != nil {
			return nil, err
		}
		return connect.NewResponse(out), nil
	}
	if len(key) > idempotency.MaxKeyLength {
		return nil, invalidField(idempotency.Header, "idempotency_key.max_len", "at most %d characters", idempotency.MaxKeyLength)
	}
	procedure := req.Spec().Procedure
	reqHash, err := idempotency.RequestHash(procedure, req.Any().(proto.Message))
	if err != nil {
		return nil, err
	}
	// The record is the calling key's: another key of the organization sending the same
	// Idempotency-Key makes another request, and never sees this one's response.
	idem := idempotency.Scope{OrgID: p.OrgID, APIKeyID: p.APIKeyID}
	var out *Res
	var recorded []byte
	err = change.Run(ctx, s.pool, scope, func(c *change.Tx) error {
		claim, err := s.idem.ClaimKey(ctx, c.DB, idem, key, procedure, reqHash, s.opts.IdempotencyTTL)
		if err != nil {
			return err
		}
		if !claim.Fresh {
			recorded = claim.Response
			return errReplay
		}
		if out, err = fn(c); err != nil {
			return err
		}
		b, err := proto.Marshal(any(out).(proto.Message))
		if err != nil {
			return err
		}
		return s.idem.Complete(ctx, c.DB, idem, key, b)
	})
	switch {
	case errors.Is(err, errReplay):
		out = new(Res)
		if err := proto.Unmarshal(recorded, any(out).(proto.Message)); err != nil {
			return nil, err
		}
		resp := connect.NewResponse(out)
		resp.Header().Set(ReplayedHeader, "true")
		return resp, nil
	case err != nil:
		return nil, err
	}
	return connect.NewResponse(out), nil
}
