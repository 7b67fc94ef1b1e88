package sinks

import (
	"errors"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stretchr/testify/require"
)

func TestApplyOutcome(t *testing.T) {
	tests := []struct {
		name        string
		outcome     outcome
		wantReady   metav1.ConditionStatus
		wantInvalid metav1.ConditionStatus
		wantMessage string // of the condition that is True, or of Ready
	}{
		{"a valid sink is ready and not invalid", validOutcome("rendered"), metav1.ConditionTrue, metav1.ConditionFalse, "rendered"},
		{"an invalid sink carries the plugin's error", invalidOutcome(errors.New(`plugin outputs.file: line 3: configuration specified the fields ["filez"], but they were not used`)),
			metav1.ConditionFalse, metav1.ConditionTrue, `["filez"]`},
		{"a failed apply is not ready but not invalid", failedOutcome(ReasonApplyFailed, errors.New("forbidden")), metav1.ConditionFalse, metav1.ConditionFalse, "forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var st SinkStatus
			require.True(t, applyOutcome(&st, 3, tt.outcome))
			require.Equal(t, int64(3), st.ObservedGeneration)
			ready := meta.FindStatusCondition(st.Conditions, ConditionReady)
			invalid := meta.FindStatusCondition(st.Conditions, ConditionInvalid)
			require.Equal(t, tt.wantReady, ready.Status)
			require.Equal(t, tt.wantInvalid, invalid.Status)
			msg := ready.Message
			if invalid.Status == metav1.ConditionTrue {
				msg = invalid.Message
			}
			require.Contains(t, msg, tt.wantMessage)
			require.Equal(t, int64(3), ready.ObservedGeneration)

			require.False(t, applyOutcome(&st, 3, tt.outcome), "the same outcome again changes nothing")
			require.True(t, applyOutcome(&st, 4, tt.outcome), "a new generation is recorded")
		})
	}
}
