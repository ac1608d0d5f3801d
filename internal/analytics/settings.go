package analytics

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/change"
	"github.com/governor-hq/governor/internal/events"
)

// Settings are an organization's analytics settings.
type Settings struct {
	// TagKey is the key of runs' tags that is the tag dimension ("" = none). It is chosen
	// per organization because tags are free-form: one dimension keeps the rollups'
	// size bounded, and the organization picks the key it slices by (team, customer…).
	TagKey        string
	RolledThrough *time.Time
}

// GetSettings returns org's settings (the defaults when it has none).
func (s *Service) GetSettings(ctx context.Context, org string) (Settings, error) {
	st, err := dbsqlc.New().AnalyticsSettingsGet(ctx, s.pool, org)
	if errors.Is(err, pgx.ErrNoRows) {
		return Settings{}, nil
	}
	if err != nil {
		return Settings{}, err
	}
	return Settings{TagKey: st.TagKey, RolledThrough: st.RolledThrough}, nil
}

// SetTagKey changes the tag key (audited). The tag of every record rolled up so far is
// the old key's, so the organization's rollups are rebuilt from the raw records: they are
// dropped and everything is queued again, atomically, under the roll lock. It returns the
// records queued (0 when the key did not change).
func (s *Service) SetTagKey(ctx context.Context, c *change.Tx, key string) (Settings, int64, error) {
	q := c.Q
	before := Settings{}
	if st, err := q.AnalyticsSettingsGet(ctx, c.DB, c.OrgID); err == nil {
		before = Settings{TagKey: st.TagKey, RolledThrough: st.RolledThrough}
	} else if !errors.Is(err, pgx.ErrNoRows) {
		return before, 0, err
	}
	if before.TagKey == key {
		return before, 0, nil
	}
	if _, err := q.AnalyticsRollLock(ctx, c.DB, c.OrgID); err != nil {
		return before, 0, err
	}
	st, err := q.AnalyticsSetTagKey(ctx, c.DB, dbsqlc.AnalyticsSetTagKeyParams{OrgID: c.OrgID, TagKey: key})
	if err != nil {
		return before, 0, err
	}
	rb, err := q.AnalyticsRebuild(ctx, c.DB, c.OrgID)
	if err != nil {
		return before, 0, err
	}
	after := Settings{TagKey: st.TagKey}
	type view struct {
		TagKey string `json:"tag_key"`
	}
	err = c.Record(ctx, "analytics_settings.update", view{before.TagKey}, view{after.TagKey}, events.Event{
		Domain: "analytics", Type: "analytics_settings_updated", Entity: events.Ref{Type: "analytics_settings", ID: c.OrgID},
		Summary: "Analytics tag dimension set to tag key \"" + key + "\"; rollups are being rebuilt",
		Data:    map[string]any{"tag_key": key, "records_requeued": rb.Queued},
	})
	return after, rb.Queued, err
}
