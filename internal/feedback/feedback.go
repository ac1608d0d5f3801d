// Package feedback records the scores and comments people (or agents) give runs. Feedback
// is not a governance change: it goes on the timeline (run_feedback_recorded, correlated
// with the run) so watchers and the run's logs see it, and not on the audit ledger.
package feedback

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/governor-hq/governor/db/dbsqlc"
	"github.com/governor-hq/governor/internal/authz"
	"github.com/governor-hq/governor/internal/events"
	"github.com/governor-hq/governor/internal/ids"
	"github.com/governor-hq/governor/internal/runs"
)

// ErrFeedbackIDReused: a feedback id came back with different feedback.
var ErrFeedbackIDReused = errors.New("feedback_id was already used for different feedback")

// Input is feedback as a client gives it.
type Input struct {
	FeedbackID string
	RunID      string
	// Score is 0 (worst) to 1 (best).
	Score   float64
	Label   string
	Comment string
}

// Feedback is recorded feedback.
type Feedback struct {
	ID, FeedbackID, RunID string
	Score                 float64
	Label, Comment        string
	APIKeyID, UserID      string
	CreatedAt             time.Time
}

func fromRow(r dbsqlc.RunFeedback) Feedback {
	return Feedback{ID: r.ID, FeedbackID: r.FeedbackID, RunID: r.RunID, Score: r.Score, Label: r.Label, Comment: r.Comment,
		APIKeyID: r.ApiKeyID, UserID: r.UserID, CreatedAt: r.CreatedAt}
}

func validate(in Input) error {
	for _, s := range []struct {
		field, v string
		lo, hi   int
	}{{"feedback_id", in.FeedbackID, 1, 128}, {"label", in.Label, 0, 64}, {"comment", in.Comment, 0, 4000}} {
		if n := utf8.RuneCountInString(s.v); !utf8.ValidString(s.v) || n < s.lo || n > s.hi {
			return &runs.FieldError{Field: s.field, Msg: fmt.Sprintf("must be %d to %d characters of UTF-8", s.lo, s.hi)}
		}
	}
	if math.IsNaN(in.Score) || in.Score < 0 || in.Score > 1 {
		return &runs.FieldError{Field: "score", Msg: fmt.Sprintf("must be between 0 and 1, got %v", in.Score)}
	}
	return nil
}

// Record stores feedback on a run of the caller's organization that the caller may act
// for, once per feedback id: the same feedback again returns the stored one (replayed);
// other feedback under the same id is ErrFeedbackIDReused.
func Record(ctx context.Context, pool *pgxpool.Pool, caller authz.Principal, in Input) (fb Feedback, replayed bool, err error) {
	if err := validate(in); err != nil {
		return Feedback{}, false, err
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		q := dbsqlc.New()
		run, err := q.RunGet(ctx, tx, dbsqlc.RunGetParams{OrgID: caller.OrgID, ID: in.RunID})
		if errors.Is(err, pgx.ErrNoRows) {
			return runs.ErrRunNotFound
		}
		if err != nil {
			return err
		}
		if !caller.MayActForAgent(run.ProjectID, run.AgentID) {
			return runs.ErrNotPermitted
		}
		row, err := q.RunFeedbackInsert(ctx, tx, dbsqlc.RunFeedbackInsertParams{OrgID: caller.OrgID, ID: ids.New(ids.Feedback),
			FeedbackID: in.FeedbackID, RunID: in.RunID, Score: in.Score, Label: in.Label, Comment: in.Comment,
			ApiKeyID: caller.APIKeyID, UserID: caller.UserID})
		if errors.Is(err, pgx.ErrNoRows) {
			old, err := q.RunFeedbackGet(ctx, tx, dbsqlc.RunFeedbackGetParams{OrgID: caller.OrgID, FeedbackID: in.FeedbackID})
			if err != nil {
				return err
			}
			if old.RunID != in.RunID || old.Score != in.Score || old.Label != in.Label || old.Comment != in.Comment {
				return ErrFeedbackIDReused
			}
			fb, replayed = fromRow(old), true
			return nil
		}
		if err != nil {
			return err
		}
		fb = fromRow(row)
		summary := fmt.Sprintf("Feedback on run %s: score %.2f", run.ID, in.Score)
		if in.Label != "" {
			summary += " (" + in.Label + ")"
		}
		_, err = events.Emit(ctx, tx, events.Event{
			OrgID: caller.OrgID, Domain: events.DomainRuns, Type: "run_feedback_recorded", Entity: events.Ref{Type: "run", ID: run.ID},
			Related:       []events.Ref{{Type: "agent", ID: run.AgentID}, {Type: "project", ID: run.ProjectID}, {Type: "feedback", ID: fb.ID}},
			CorrelationID: run.ID, Summary: summary, Actor: caller.Actor(),
			Data: map[string]any{"feedback_id": in.FeedbackID, "score": in.Score, "label": in.Label, "comment": in.Comment},
		})
		return err
	})
	return fb, replayed, err
}
