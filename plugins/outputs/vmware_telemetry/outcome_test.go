package vmware_telemetry

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every answer maps to what the README's "Delivery guarantees" table says.
func TestActionOf(t *testing.T) {
	tests := []struct {
		statuses []int
		want     action
	}{
		{[]int{200, 201, 204}, actDone},
		{[]int{413}, actSplit},
		{[]int{400, 422}, actDrop},
		{[]int{0, 408, 429, 500, 502, 503, 504}, actRetry},
		{[]int{401, 403, 407}, actRefusedAuth},
		{[]int{301, 302, 307, 404, 405, 410, 415, 418}, actMisconfigured},
	}
	for _, tt := range tests {
		for _, status := range tt.statuses {
			t.Run(strconv.Itoa(status), func(t *testing.T) {
				require.Equal(t, tt.want, actionOf(status))
			})
		}
	}
}

// Each refusal that keeps the batch names what to set.
func TestAdvice(t *testing.T) {
	tests := []struct {
		status int
		want   string
	}{
		{http.StatusUnauthorized, "set TELEMETRY_TOKEN / token"},
		{http.StatusForbidden, "check token against the server's tokens"},
		{http.StatusProxyAuthRequired, "set them in http_proxy_url"},
		{http.StatusNotFound, "set url to the server's endpoint, e.g. \"https://telemetry.example.com/ph/api/hyper/send\""},
		{http.StatusMethodNotAllowed, "nothing takes batches at url (405)"},
		{http.StatusUnsupportedMediaType, "set content_encoding"},
		{http.StatusTemporaryRedirect, "url is redirected (307)"},
		{http.StatusTeapot, "the server refused the request (418)"},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			require.Contains(t, advice(tt.status), tt.want)
		})
	}
}
