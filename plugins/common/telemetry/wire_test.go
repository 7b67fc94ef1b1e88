package telemetry

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestClassify(t *testing.T) {
	for _, tt := range []struct {
		status int
		want   Outcome
	}{
		{200, OutcomeAccepted},
		{201, OutcomeAccepted},
		{204, OutcomeAccepted},
		{429, OutcomeThrottled},
		{503, OutcomeThrottled},
		{413, OutcomeSplit},
		{408, OutcomeRetry},
		{407, OutcomeRetry},
		{500, OutcomeRetry},
		{502, OutcomeRetry},
		{504, OutcomeRetry},
		{400, OutcomeReject},
		{401, OutcomeReject},
		{404, OutcomeReject},
		{415, OutcomeReject},
		{422, OutcomeReject},
		{301, OutcomeReject},
		{100, OutcomeReject},
	} {
		require.Equal(t, tt.want, Classify(tt.status), "%d", tt.status)
	}
	require.Equal(t, "throttled", OutcomeThrottled.String())
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"7", 7 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{"1.5", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"99999999999999999999", 0, false},
		{"9999999999999", time.Duration(int64(1<<63-1) / int64(time.Second) * int64(time.Second)), true},
	} {
		got, ok := ParseRetryAfter(tt.in, now)
		require.Equal(t, tt.ok, ok, tt.in)
		require.Equal(t, tt.want, got, tt.in)
	}
}

func TestParseEncoding(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"", EncodingIdentity, true},
		{"identity", EncodingIdentity, true},
		{"zstd", EncodingZstd, true},
		{" GZIP ", EncodingGzip, true},
		{"br", "", false},
		{"deflate", "", false},
		{"gzip, zstd", "", false},
	} {
		got, ok := ParseEncoding(tt.in)
		require.Equal(t, tt.ok, ok, tt.in)
		require.Equal(t, tt.want, got, tt.in)
	}
}

func TestValidID(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"telegraf-tkgi.v1", true},
		{"0123456789abcdef", true},
		{"a:b_c-d.e", true},
		{"", false},
		{"a b", false},
		{"a/b", false},
		{"ä", false},
		{strings.Repeat("a", MaxIDLength), true},
		{strings.Repeat("a", MaxIDLength+1), false},
	} {
		require.Equal(t, tt.want, ValidID(tt.in), tt.in)
	}
}
