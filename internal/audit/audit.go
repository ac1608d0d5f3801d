// Package audit writes and verifies the audit ledger: an append-only list of every
// governance change, one hash chain per organization.
//
// Each entry's hash covers its content and the previous entry's hash (the SQL function
// audit_entry_hash, shared by writer and verifier). Editing an entry breaks its own hash;
// deleting one breaks the numbering and the next entry's link; deleting the newest
// entries no longer matches the chain head. An attacker able to rewrite every later entry
// and the head could hide a change; the head hash, which VerifyAuditChain returns, can be
// recorded elsewhere to rule that out.
package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/governor-hq/governor/db"
	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/actor"
	"github.com/governor-hq/governor/internal/ids"
)

// Entry is one change to record.
type Entry struct {
	OrgID      string
	Actor      actor.Actor
	RequestID  string
	Action     string // "<entity>.<verb>", e.g. "api_key.freeze"
	EntityType string
	EntityID   string
	// Before and After are the entity's state around the change: proto messages (recorded
	// as the API shows them), other values (recorded with encoding/json), or nil.
	Before, After any
}

// Append writes e as the next entry of its organization's chain. It must run in the
// transaction of the change it records: if either fails, neither happens.
func Append(ctx context.Context, tx dbsqlc.DBTX, e Entry) (id string, err error) {
	before, err := ToJSON(e.Before)
	if err != nil {
		return "", fmt.Errorf("audit before: %w", err)
	}
	after, err := ToJSON(e.After)
	if err != nil {
		return "", fmt.Errorf("audit after: %w", err)
	}
	id = ids.New(ids.Audit)
	_, err = dbsqlc.New().AuditAppend(ctx, tx, dbsqlc.AuditAppendParams{
		OrgID:         e.OrgID,
		ID:            id,
		ActorKind:     e.Actor.Kind,
		ActorApiKeyID: e.Actor.APIKeyID,
		ActorUserID:   e.Actor.UserID,
		ActorSystem:   e.Actor.System,
		Action:        e.Action,
		EntityType:    e.EntityType,
		EntityID:      e.EntityID,
		Before:        before,
		After:         after,
		RequestID:     e.RequestID,
	})
	if err != nil {
		return "", fmt.Errorf("append audit entry %s: %w", e.Action, db.NotFound(err))
	}
	return id, nil
}

// ToJSON renders v for the ledger or the timeline: protojson for proto messages (field
// names as in the .proto files), encoding/json for anything else, nil for nil.
func ToJSON(v any) (json.RawMessage, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		return v, nil
	case proto.Message:
		if v == nil {
			return nil, nil
		}
		return protojson.MarshalOptions{UseProtoNames: true}.Marshal(v)
	default:
		return json.Marshal(v)
	}
}

// Break is the first place a chain stops checking out.
type Break struct {
	Seq     int64
	EntryID string // empty when the entry is missing
	Reason  string
}

// Verification is the outcome of checking one organization's chain.
type Verification struct {
	Checked  int64
	First    *Break // nil when the chain is intact
	HeadSeq  int64
	HeadHash string
}

// Verify recomputes every entry's hash and link, in pages, and reports the first break.
func Verify(ctx context.Context, conn dbsqlc.DBTX, orgID string) (Verification, error) {
	q := dbsqlc.New()
	head, err := q.AuditHeadGet(ctx, conn, orgID)
	if err != nil {
		return Verification{}, db.NotFound(err)
	}
	v := Verification{HeadSeq: head.LastSeq, HeadHash: hex.EncodeToString(head.LastHash)}
	prevHash := make([]byte, 32) // the genesis link
	var seq int64
	const page = 1000
	for {
		rows, err := q.AuditChainScan(ctx, conn, dbsqlc.AuditChainScanParams{OrgID: orgID, AfterSeq: seq, Max: page})
		if err != nil {
			return v, err
		}
		for _, r := range rows {
			switch {
			case r.Seq != seq+1:
				v.First = &Break{Seq: seq + 1, Reason: fmt.Sprintf("entry missing (the next entry present is %d)", r.Seq)}
			case !bytes.Equal(r.PrevHash, prevHash):
				v.First = &Break{Seq: r.Seq, EntryID: r.ID, Reason: "link to previous entry broken"}
			case !bytes.Equal(r.ComputedHash, r.Hash):
				v.First = &Break{Seq: r.Seq, EntryID: r.ID, Reason: "content does not match its hash"}
			}
			if v.First != nil {
				return v, nil
			}
			v.Checked++
			seq = r.Seq
			prevHash = r.Hash
		}
		if len(rows) < page {
			break
		}
	}
	switch {
	case seq < head.LastSeq:
		v.First = &Break{Seq: seq + 1, Reason: fmt.Sprintf("entries %d to %d missing (chain head is at %d)", seq+1, head.LastSeq, head.LastSeq)}
	case seq > head.LastSeq || !bytes.Equal(prevHash, head.LastHash):
		v.First = &Break{Seq: seq, Reason: "chain head does not match the last entry"}
	}
	return v, nil
}
