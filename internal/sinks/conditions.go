package sinks

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types and reasons a sink's status reports.
const (
	// ConditionReady is True when the sink's configuration is rendered into
	// the objects the agents run.
	ConditionReady = "Ready"
	// ConditionInvalid is True when the configuration does not load; its
	// message is the loader's or the plugin's own error.
	ConditionInvalid = "Invalid"

	ReasonRendered     = "Rendered"
	ReasonConfigLoads  = "ConfigLoads"
	ReasonConfigError  = "ConfigError"
	ReasonApplyFailed  = "ApplyFailed"
	ReasonRenderFailed = "RenderFailed"
)

// outcome is what one reconcile concluded about a sink.
type outcome struct {
	ready      bool
	invalidErr error
	reason     string
	message    string
}

func validOutcome(message string) outcome {
	return outcome{ready: true, reason: ReasonRendered, message: message}
}

func invalidOutcome(err error) outcome {
	return outcome{invalidErr: err, reason: ReasonConfigError, message: err.Error()}
}

func failedOutcome(reason string, err error) outcome {
	return outcome{reason: reason, message: err.Error()}
}

// applyOutcome writes the outcome into the status and reports whether
// anything changed, so an unchanged sink costs no status write.
func applyOutcome(status *SinkStatus, generation int64, o outcome) bool {
	changed := status.ObservedGeneration != generation
	status.ObservedGeneration = generation

	ready := metav1.Condition{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: o.reason, Message: o.message, ObservedGeneration: generation}
	if o.ready {
		ready.Status = metav1.ConditionTrue
	}
	invalid := metav1.Condition{Type: ConditionInvalid, Status: metav1.ConditionFalse, Reason: ReasonConfigLoads,
		Message: "the configuration loads and every plugin initialises", ObservedGeneration: generation}
	if o.invalidErr != nil {
		invalid.Status = metav1.ConditionTrue
		invalid.Reason = ReasonConfigError
		invalid.Message = o.invalidErr.Error()
	} else if !o.ready && o.reason != ReasonRendered {
		// Not judged: the failure happened after the check passed, or before it could run.
		invalid.Message = "the configuration loads; the failure is in putting it in place"
	}
	if meta.SetStatusCondition(&status.Conditions, ready) {
		changed = true
	}
	if meta.SetStatusCondition(&status.Conditions, invalid) {
		changed = true
	}
	return changed
}
