package api

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"time"

	"connectrpc.com/connect"

	"github.com/governor-hq/governor/db/dbsqlc"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/events"
)

type timelineService struct{ *Server }

func eventProto(e dbsqlc.DomainEvent) *v1.Event {
	out := &v1.Event{
		Id: e.ID, Sequence: e.Seq, OccurTime: ts(e.OccurredAt), Domain: e.Domain, Type: e.Type,
		Entity:        &v1.EntityRef{Type: e.EntityType, Id: e.EntityID},
		CorrelationId: e.CorrelationID, Summary: e.Summary, DataJson: string(e.Data),
		Actor: actorProto(e.ActorKind, e.ActorApiKeyID, e.ActorUserID, e.ActorSystem),
	}
	var related []events.Ref
	_ = json.Unmarshal(e.Related, &related)
	for _, r := range related {
		out.Related = append(out.Related, &v1.EntityRef{Type: r.Type, Id: r.ID})
	}
	return out
}

// matches applies an EventFilter to an event, as the list queries do in SQL.
func matches(f *v1.EventFilter, e *v1.Event) bool {
	if f == nil {
		return true
	}
	if len(f.Domains) > 0 && !slices.Contains(f.Domains, e.Domain) {
		return false
	}
	if len(f.Types) > 0 && !slices.Contains(f.Types, e.Type) {
		return false
	}
	if f.CorrelationId != "" && f.CorrelationId != e.CorrelationId {
		return false
	}
	if f.GetEntity().GetId() != "" {
		want := f.GetEntity()
		hit := e.Entity.Type == want.Type && e.Entity.Id == want.Id
		for _, r := range e.Related {
			hit = hit || (r.Type == want.Type && r.Id == want.Id)
		}
		if !hit {
			return false
		}
	}
	return true
}

func (s *timelineService) ListEvents(ctx context.Context, req *connect.Request[v1.ListEventsRequest]) (*connect.Response[v1.ListEventsResponse], error) {
	m := req.Msg
	cur, err := decodeCursor(m.PageToken)
	if err != nil {
		return nil, err
	}
	size := pageSize(m.PageSize)
	f := m.GetFilter()
	org := principal(ctx).OrgID
	start, end := optTime(m.StartTime), optTime(m.EndTime)
	domains, types := f.GetDomains(), f.GetTypes()
	if domains == nil {
		domains = []string{}
	}
	if types == nil {
		types = []string{}
	}
	var rows []dbsqlc.DomainEvent
	if m.NewestFirst {
		bt, bs := time.UnixMicro(cur.Time), cur.Seq
		if m.PageToken == "" {
			bt, bs = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), math.MaxInt64
		}
		rows, err = q.EventListDesc(ctx, s.pool, dbsqlc.EventListDescParams{
			OrgID: org, Domains: domains, Types: types, EntityType: f.GetEntity().GetType(), EntityID: f.GetEntity().GetId(),
			CorrelationID: f.GetCorrelationId(), StartTime: start, EndTime: end, BeforeTime: bt, BeforeSeq: bs, Max: size + 1,
		})
	} else {
		at, as := time.UnixMicro(cur.Time), cur.Seq
		if m.PageToken == "" {
			at, as = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), 0
		}
		rows, err = q.EventListAsc(ctx, s.pool, dbsqlc.EventListAscParams{
			OrgID: org, Domains: domains, Types: types, EntityType: f.GetEntity().GetType(), EntityID: f.GetEntity().GetId(),
			CorrelationID: f.GetCorrelationId(), StartTime: start, EndTime: end, AfterTime: at, AfterSeq: as, Max: size + 1,
		})
	}
	if err != nil {
		return nil, err
	}
	rows, more := page(rows, size)
	out := &v1.ListEventsResponse{}
	for _, e := range rows {
		out.Events = append(out.Events, eventProto(e))
	}
	if more {
		last := rows[len(rows)-1]
		out.NextPageToken = encodeCursor(cursor{Time: last.OccurredAt.UnixMicro(), Seq: last.Seq})
	}
	return connect.NewResponse(out), nil
}

// How far behind the newest delivered sequence a resync looks, to catch events that
// committed after later-numbered ones.
const resyncLookback = 1000

func (s *timelineService) WatchEvents(ctx context.Context, req *connect.Request[v1.WatchEventsRequest], stream *connect.ServerStream[v1.WatchEventsResponse]) error {
	org := principal(ctx).OrgID
	f := req.Msg.GetFilter()
	sub := s.hub.Subscribe(org)
	defer sub.Close()
	// A resync (the hub's connection came up or back, or this watcher fell behind) re-reads
	// from here at the earliest: what the watcher asked to resume after, or else what was
	// already there when it subscribed, which is not news to it.
	floor := req.Msg.AfterSequence
	if floor == 0 {
		last, err := q.EventLastSeq(ctx, s.pool)
		if err != nil {
			return err
		}
		floor = last
	}

	// Sequences already sent, so replays and live delivery never send an event twice.
	sent := map[int64]bool{}
	var highest int64
	send := func(e dbsqlc.DomainEvent) error {
		if sent[e.Seq] {
			return nil
		}
		sent[e.Seq] = true
		highest = max(highest, e.Seq)
		if len(sent) > 4*resyncLookback {
			for seq := range sent {
				if seq < highest-2*resyncLookback {
					delete(sent, seq)
				}
			}
		}
		ev := eventProto(e)
		if !matches(f, ev) {
			return nil
		}
		return stream.Send(&v1.WatchEventsResponse{Event: ev})
	}
	replay := func(after int64) error {
		for {
			rows, err := q.EventListAfterSeq(ctx, s.pool, dbsqlc.EventListAfterSeqParams{OrgID: org, AfterSeq: after, Max: 500})
			if err != nil {
				return err
			}
			for _, e := range rows {
				if err := send(e); err != nil {
					return err
				}
				after = e.Seq
			}
			if len(rows) < 500 {
				return nil
			}
		}
	}
	if req.Msg.AfterSequence > 0 {
		if err := replay(req.Msg.AfterSequence); err != nil {
			return err
		}
	}
	// Tell the client the stream is live (headers go out with the first message
	// otherwise, and a quiet organization would leave it waiting).
	if err := stream.Conn().Send(nil); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.stopping:
			return nil
		case e := <-sub.C:
			if err := send(e); err != nil {
				return err
			}
		case <-sub.Resync:
			if err := replay(max(highest-resyncLookback, floor)); err != nil {
				return err
			}
		}
	}
}
