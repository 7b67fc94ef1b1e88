package sinks

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWholeNumbersAsIntegers(t *testing.T) {
	tests := []struct {
		name string
		in   interface{}
		want interface{}
	}{
		{"a whole float", float64(2), int64(2)},
		{"a fraction stays a float", 0.5, 0.5},
		{"in a list", []interface{}{float64(409), float64(413)}, []interface{}{int64(409), int64(413)}},
		{"in a nested map", map[string]interface{}{"a": float64(1), "b": "x"}, map[string]interface{}{"a": int64(1), "b": "x"}},
		{"other values unchanged", "10s", "10s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, wholeNumbersAsIntegers(tt.in))
		})
	}
}
