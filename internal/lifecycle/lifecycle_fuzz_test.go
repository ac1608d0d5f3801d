package lifecycle

import (
	"testing"
)

// FuzzDecodeStart: an outbox row's payload, whatever it holds, decodes to a start of the
// right input type or an error; it never panics.
func FuzzDecodeStart(f *testing.F) {
	for _, wt := range []string{RunWorkflowType, IncidentWorkflowType, AlertDeliveryWorkflowType, AnomalyBatchWorkflowType, "Unknown"} {
		f.Add(wt, []byte(`{"org_id":"org_1","run_id":"run_1","lease_expires_at":"2026-12-01T00:00:00Z"}`))
		f.Add(wt, []byte(`{"org_id":5}`))
		f.Add(wt, []byte(`null`))
		f.Add(wt, []byte(`{"lease_expires_at":"not a time","not_before":"2026-13-45T99:00:00Z"}`))
		f.Add(wt, []byte{0xff, 0xfe})
	}
	f.Fuzz(func(t *testing.T, workflowType string, payload []byte) {
		s, err := DecodeStart(workflowType, payload)
		if err != nil {
			return
		}
		switch workflowType {
		case RunWorkflowType:
			_, ok := s.Input.(RunInput)
			if !ok {
				t.Fatalf("run start decoded to %T", s.Input)
			}
		case IncidentWorkflowType:
			if _, ok := s.Input.(IncidentInput); !ok {
				t.Fatalf("incident start decoded to %T", s.Input)
			}
		case AlertDeliveryWorkflowType:
			if _, ok := s.Input.(AlertDeliveryInput); !ok {
				t.Fatalf("alert start decoded to %T", s.Input)
			}
		case AnomalyBatchWorkflowType:
			if _, ok := s.Input.(AnomalyBatchInput); !ok {
				t.Fatalf("anomaly start decoded to %T", s.Input)
			}
		default:
			t.Fatalf("unknown workflow type %q decoded", workflowType)
		}
	})
}
