// Package orgkeys keeps each organization's data key: made on first use, stored only
// wrapped by the key-encryption key (see package envelope), and re-wrapped under a new
// KEK by a rotation.
package orgkeys

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/actor"
	"github.com/governor-hq/governor/internal/audit"
	"github.com/governor-hq/governor/internal/envelope"
)

// ErrNoKeyring: the process was started without a key-encryption key, so it can neither
// seal nor open secrets.
var ErrNoKeyring = errors.New("no key-encryption key is configured (GOVERNOR_KEK or GOVERNOR_KEK_FILE)")

// DataKey returns the organization's data key, making it if it has none. Concurrent
// first uses agree: the first insert wins and the others read it.
func DataKey(ctx context.Context, db dbsqlc.DBTX, kr *envelope.Keyring, orgID string) (envelope.DataKey, error) {
	if kr == nil {
		return envelope.DataKey{}, ErrNoKeyring
	}
	q := dbsqlc.New()
	row, err := q.OrgKeyGet(ctx, db, orgID)
	if errors.Is(err, pgx.ErrNoRows) {
		k := kr.Primary()
		if err := q.OrgKeyInsert(ctx, db, dbsqlc.OrgKeyInsertParams{OrgID: orgID, KekID: k.ID(),
			WrappedKey: k.Wrap(orgID, envelope.GenerateDataKey())}); err != nil {
			return envelope.DataKey{}, fmt.Errorf("store the data key of %s: %w", orgID, err)
		}
		row, err = q.OrgKeyGet(ctx, db, orgID)
	}
	if err != nil {
		return envelope.DataKey{}, fmt.Errorf("data key of %s: %w", orgID, err)
	}
	dk, err := kr.Unwrap(orgID, row.KekID, row.WrappedKey)
	if err != nil {
		return envelope.DataKey{}, fmt.Errorf("data key of %s: %w", orgID, err)
	}
	return dk, nil
}

// Rotation is what a KEK rotation did.
type Rotation struct {
	To        string   // the new KEK's id
	Rewrapped []string // organizations whose data key was re-wrapped
	Already   int      // data keys already under the new KEK
}

// RotationActor is how a rotation appears on the audit ledger.
var RotationActor = actor.System("cli:admin rotate-kek")

// Rotate re-wraps every organization's data key under to, in tx: keys wrapped by a KEK
// of from are unwrapped and wrapped again; keys already under to are left alone, so a
// rotation cut short, or run twice, is finished by running it again. Each re-wrap is on
// the organization's audit ledger. A key wrapped by a KEK neither holds fails the
// rotation (nothing changes).
func Rotate(ctx context.Context, tx pgx.Tx, from *envelope.Keyring, to envelope.KEK) (Rotation, error) {
	out := Rotation{To: to.ID()}
	q := dbsqlc.New()
	rows, err := q.OrgKeysLockAll(ctx, tx)
	if err != nil {
		return out, err
	}
	for _, row := range rows {
		if row.KekID == to.ID() {
			out.Already++
			continue
		}
		k, ok := from.KEK(row.KekID)
		if !ok {
			return out, fmt.Errorf("the data key of %s is wrapped by %s, which the current settings do not hold: %w",
				row.OrgID, row.KekID, envelope.ErrUnknownKEK)
		}
		raw, err := k.Unwrap(row.OrgID, row.WrappedKey)
		if err != nil {
			return out, fmt.Errorf("unwrap the data key of %s: %w", row.OrgID, err)
		}
		if err := q.OrgKeyRewrap(ctx, tx, dbsqlc.OrgKeyRewrapParams{OrgID: row.OrgID, KekID: to.ID(), WrappedKey: to.Wrap(row.OrgID, raw)}); err != nil {
			return out, err
		}
		type state struct {
			KEKID string `json:"kek_id"`
		}
		if _, err := audit.Append(ctx, tx, audit.Entry{
			OrgID: row.OrgID, Actor: RotationActor, Action: "data_key.rewrap", EntityType: "data_key", EntityID: row.OrgID,
			Before: state{row.KekID}, After: state{to.ID()},
		}); err != nil {
			return out, err
		}
		out.Rewrapped = append(out.Rewrapped, row.OrgID)
	}
	return out, nil
}
