package api

import (
	"context"
	"encoding/hex"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/governor-hq/governor/db/dbsqlc"
	v1 "github.com/governor-hq/governor/gen/governor/v1"
	"github.com/governor-hq/governor/internal/audit"
)

type auditService struct{ *Server }

func auditEntryProto(e dbsqlc.AuditEntry) *v1.AuditEntry {
	return &v1.AuditEntry{
		Id: e.ID, Sequence: e.Seq, CreateTime: ts(e.CreatedAt),
		Actor:  actorProto(e.ActorKind, e.ActorApiKeyID, e.ActorUserID, e.ActorSystem),
		Action: e.Action, EntityType: e.EntityType, EntityId: e.EntityID,
		BeforeJson: string(e.Before), AfterJson: string(e.After), RequestId: e.RequestID,
		PreviousHash: hex.EncodeToString(e.PrevHash), Hash: hex.EncodeToString(e.Hash),
	}
}

func optTime(t *timestamppb.Timestamp) *time.Time {
	if t == nil {
		return nil
	}
	v := t.AsTime()
	return &v
}

func (s *auditService) ListAuditEntries(ctx context.Context, req *connect.Request[v1.ListAuditEntriesRequest]) (*connect.Response[v1.ListAuditEntriesResponse], error) {
	m := req.Msg
	cur, err := decodeCursor(m.PageToken)
	if err != nil {
		return nil, err
	}
	size := pageSize(m.PageSize)
	org := principal(ctx).OrgID
	start, end := optTime(m.StartTime), optTime(m.EndTime)
	var rows []dbsqlc.AuditEntry
	if m.NewestFirst {
		before := cur.Seq
		if before == 0 {
			before = 1<<63 - 1
		}
		rows, err = q.AuditEntryListDesc(ctx, s.pool, dbsqlc.AuditEntryListDescParams{
			OrgID: org, EntityType: m.EntityType, EntityID: m.EntityId, ActorApiKeyID: m.ActorApiKeyId,
			ActorUserID: m.ActorUserId, Action: m.Action, StartTime: start, EndTime: end, BeforeSeq: before, Max: size + 1,
		})
	} else {
		rows, err = q.AuditEntryListAsc(ctx, s.pool, dbsqlc.AuditEntryListAscParams{
			OrgID: org, EntityType: m.EntityType, EntityID: m.EntityId, ActorApiKeyID: m.ActorApiKeyId,
			ActorUserID: m.ActorUserId, Action: m.Action, StartTime: start, EndTime: end, AfterSeq: cur.Seq, Max: size + 1,
		})
	}
	if err != nil {
		return nil, err
	}
	rows, more := page(rows, size)
	out := &v1.ListAuditEntriesResponse{}
	for _, e := range rows {
		out.Entries = append(out.Entries, auditEntryProto(e))
	}
	if more {
		out.NextPageToken = encodeCursor(cursor{Seq: rows[len(rows)-1].Seq})
	}
	return connect.NewResponse(out), nil
}

func (s *auditService) VerifyAuditChain(ctx context.Context, _ *connect.Request[v1.VerifyAuditChainRequest]) (*connect.Response[v1.VerifyAuditChainResponse], error) {
	v, err := audit.Verify(ctx, s.pool, principal(ctx).OrgID)
	if err != nil {
		return nil, err
	}
	out := &v1.VerifyAuditChainResponse{Intact: v.First == nil, EntriesChecked: v.Checked, HeadHash: v.HeadHash, HeadSequence: v.HeadSeq}
	if v.First != nil {
		out.FirstBreak = &v1.AuditChainBreak{Sequence: v.First.Seq, EntryId: v.First.EntryID, Reason: v.First.Reason}
	}
	return connect.NewResponse(out), nil
}
