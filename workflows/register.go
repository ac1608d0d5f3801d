package workflows

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/governor-hq/governor/internal/lifecycle"
)

// Register registers every workflow under its public type name.
func Register(r worker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(RunLifecycle, workflow.RegisterOptions{Name: lifecycle.RunWorkflowType})
	r.RegisterWorkflowWithOptions(IncidentLifecycle, workflow.RegisterOptions{Name: lifecycle.IncidentWorkflowType})
	r.RegisterWorkflowWithOptions(AlertDelivery, workflow.RegisterOptions{Name: lifecycle.AlertDeliveryWorkflowType})
	r.RegisterWorkflowWithOptions(AnomalyBatch, workflow.RegisterOptions{Name: lifecycle.AnomalyBatchWorkflowType})
}

// EnsureSearchAttributes registers Governor's search attributes in the namespace if they
// are missing (it is idempotent; a worker calls it at start).
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return err
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, k := range lifecycle.SearchAttributes() {
		if _, ok := have.GetCustomAttributes()[k.GetName()]; !ok {
			missing[k.GetName()] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: namespace, SearchAttributes: missing,
	})
	if err != nil {
		return fmt.Errorf("add %v: %w", missing, err)
	}
	return nil
}
