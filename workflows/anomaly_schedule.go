package workflows

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/governor-hq/governor/internal/lifecycle"
)

// Defaults of the anomaly schedule.
const (
	// DefaultAnomalyCron runs the batch daily at 00:15 UTC. Each organization evaluates the
	// days that have ended in its own time zone and it has not evaluated yet, so any
	// schedule (hourly, for tenants spread over time zones) is correct.
	DefaultAnomalyCron = "15 0 * * *"
	// DefaultAnomalyCatchup: after an outage of Temporal shorter than this, the missed
	// batch still runs; longer outages are caught up by the next batch (each organization
	// evaluates the days it missed, up to a week).
	DefaultAnomalyCatchup = 6 * time.Hour
)

// AnomalyScheduleOptions configure the daily anomaly batch's schedule.
type AnomalyScheduleOptions struct {
	TaskQueue string
	// Cron is a cron expression in UTC (empty: DefaultAnomalyCron).
	Cron    string
	Catchup time.Duration
}

func (o AnomalyScheduleOptions) spec() client.ScheduleSpec {
	cron := o.Cron
	if cron == "" {
		cron = DefaultAnomalyCron
	}
	return client.ScheduleSpec{CronExpressions: []string{cron}}
}

func (o AnomalyScheduleOptions) action() *client.ScheduleWorkflowAction {
	return &client.ScheduleWorkflowAction{
		ID: lifecycle.AnomalyScheduleWorkflowID, Workflow: lifecycle.AnomalyBatchWorkflowType,
		Args: []any{lifecycle.AnomalyBatchInput{}}, TaskQueue: o.TaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(lifecycle.SearchStatus.ValueSet("running")),
	}
}

func (o AnomalyScheduleOptions) catchup() time.Duration {
	if o.Catchup <= 0 {
		return DefaultAnomalyCatchup
	}
	return o.Catchup
}

// EnsureAnomalySchedule creates the daily anomaly batch's Temporal Schedule, or brings an
// existing one to these options: every worker calls it at start, so it is idempotent and
// safe to call from many workers at once. Overlapping runs are skipped (a batch still
// running when the next is due finishes first) and the catch-up window is explicit.
func EnsureAnomalySchedule(ctx context.Context, c client.Client, o AnomalyScheduleOptions) error {
	id := lifecycle.AnomalyScheduleID(o.TaskQueue)
	sc := c.ScheduleClient()
	_, err := sc.Create(ctx, client.ScheduleOptions{
		ID: id, Spec: o.spec(), Action: o.action(),
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, CatchupWindow: o.catchup(),
		Note: "Governor's daily anomaly batch (created by the worker)",
	})
	if err == nil {
		return nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return fmt.Errorf("create schedule %s: %w", id, err)
	}
	err = sc.GetHandle(ctx, id).Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			s := in.Description.Schedule
			spec := o.spec()
			s.Spec = &spec
			s.Action = o.action()
			if s.Policy == nil {
				s.Policy = &client.SchedulePolicies{}
			}
			s.Policy.Overlap = enumspb.SCHEDULE_OVERLAP_POLICY_SKIP
			s.Policy.CatchupWindow = o.catchup()
			return &client.ScheduleUpdate{Schedule: &s}, nil
		},
	})
	if err != nil {
		return fmt.Errorf("update schedule %s: %w", id, err)
	}
	return nil
}
