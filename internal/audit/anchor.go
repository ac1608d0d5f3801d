package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/audit/checkpoint"
	"github.com/governor-hq/governor/internal/audit/entryhash"
)

// SignHeads signs a checkpoint of every chain head that moved since the last one this
// key signed, and stores them. Several workers doing it at once is harmless: a head is
// stored once per key.
func SignHeads(ctx context.Context, pool *pgxpool.Pool, s checkpoint.Signer, now time.Time) (int, error) {
	q := dbsqlc.New()
	keyID := s.Public().ID()
	signed := 0
	for {
		heads, err := q.AuditHeadsUnsigned(ctx, pool, dbsqlc.AuditHeadsUnsignedParams{KeyID: keyID, Max: 500})
		if err != nil {
			return signed, err
		}
		for _, h := range heads {
			cp, err := s.Sign(h.OrgID, h.LastSeq, h.LastHash, now)
			if err != nil {
				return signed, err
			}
			if err := q.AuditCheckpointAdd(ctx, pool, dbsqlc.AuditCheckpointAddParams{OrgID: cp.OrgID, Seq: cp.Seq, Hash: cp.Hash,
				SignedAt: cp.SignedAt, KeyID: cp.KeyID, Signature: cp.Signature}); err != nil {
				return signed, err
			}
			signed++
		}
		if len(heads) < 500 {
			return signed, nil
		}
	}
}

// CheckpointLoop signs the chain heads every interval until ctx ends (and once at start).
// A failed pass is logged and tried again at the next tick.
func CheckpointLoop(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, s checkpoint.Signer, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := SignHeads(ctx, pool, s, time.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("audit checkpoint failed; trying again later", "err", err)
		case n > 0:
			log.Info("audit chain heads signed", "checkpoints", n, "key_id", s.Public().ID())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// LatestCheckpoints returns each organization's newest stored checkpoint (or only
// orgID's), signed with the key keyID names (or with any key, when it is empty).
func LatestCheckpoints(ctx context.Context, conn dbsqlc.DBTX, orgID, keyID string) ([]checkpoint.Checkpoint, error) {
	rows, err := dbsqlc.New().AuditCheckpointsLatest(ctx, conn, dbsqlc.AuditCheckpointsLatestParams{OrgID: orgID, KeyID: keyID})
	if err != nil {
		return nil, err
	}
	out := make([]checkpoint.Checkpoint, len(rows))
	for i, r := range rows {
		out[i] = checkpoint.Checkpoint{OrgID: r.OrgID, Seq: r.Seq, Hash: r.Hash, SignedAt: r.SignedAt, KeyID: r.KeyID, Signature: r.Signature}
	}
	return out, nil
}

// VerifyCheckpoint checks that the organization's chain still holds the checkpoint's head:
// entries 1 to its sequence are all there, each links to the one before, each hashes
// (computed here in Go, not by the database's function) to its stored hash, and the
// entry at the sequence has the signed hash. The signature is the caller's to check
// first (checkpoint.PublicKey.Verify). Checked counts the entries that check out.
func VerifyCheckpoint(ctx context.Context, conn dbsqlc.DBTX, cp checkpoint.Checkpoint) (Verification, error) {
	q := dbsqlc.New()
	v := Verification{HeadSeq: cp.Seq, HeadHash: hex.EncodeToString(cp.Hash)}
	prev := make([]byte, 32) // the genesis link
	var seq int64
	const page = 1000
	for seq < cp.Seq {
		rows, err := q.AuditChainRead(ctx, conn, dbsqlc.AuditChainReadParams{OrgID: cp.OrgID, AfterSeq: seq, ThroughSeq: cp.Seq, Max: page})
		if err != nil {
			return v, err
		}
		if len(rows) == 0 {
			break
		}
		for _, r := range rows {
			sum := entryhash.Sum(entryhash.Entry{PrevHash: r.PrevHash, OrgID: cp.OrgID, Seq: r.Seq, ID: r.ID, CreatedAt: r.CreatedAt,
				ActorKind: r.ActorKind, ActorAPIKeyID: r.ActorApiKeyID, ActorUserID: r.ActorUserID, ActorSystem: r.ActorSystem,
				Action: r.Action, EntityType: r.EntityType, EntityID: r.EntityID, Before: &r.BeforeText, After: &r.AfterText,
				RequestID: r.RequestID})
			switch {
			case r.Seq != seq+1:
				v.First = &Break{Seq: seq + 1, Reason: fmt.Sprintf("entry missing (the next entry present is %d)", r.Seq)}
			case !bytes.Equal(r.PrevHash, prev):
				v.First = &Break{Seq: r.Seq, EntryID: r.ID, Reason: "link to previous entry broken"}
			case !bytes.Equal(sum[:], r.Hash):
				v.First = &Break{Seq: r.Seq, EntryID: r.ID, Reason: "content does not match its hash"}
			case r.Seq == cp.Seq && !bytes.Equal(r.Hash, cp.Hash):
				v.First = &Break{Seq: r.Seq, EntryID: r.ID, Reason: fmt.Sprintf(
					"hash differs from the checkpoint signed at %s: the chain was rewritten", cp.SignedAt.UTC().Format(time.RFC3339))}
			}
			if v.First != nil {
				return v, nil
			}
			v.Checked++
			seq, prev = r.Seq, r.Hash
		}
	}
	if seq < cp.Seq {
		v.First = &Break{Seq: seq + 1, Reason: fmt.Sprintf("entries %d to %d missing (the checkpoint is at %d)", seq+1, cp.Seq, cp.Seq)}
	}
	return v, nil
}
