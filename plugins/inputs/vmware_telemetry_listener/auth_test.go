package vmware_telemetry_listener

import (
	"net/http/httptest"
	"testing"

	"github.com/influxdata/telegraf/config"
	"github.com/stretchr/testify/require"
)

func TestBearerAuth(t *testing.T) {
	a, err := newBearerAuth([]config.Secret{
		config.NewSecret([]byte("old-token")),
		config.NewSecret([]byte("new-token")),
	})
	require.NoError(t, err)

	tests := []struct {
		name   string
		header string
		want   error
	}{
		{"first token", "Bearer old-token", nil},
		{"second token", "Bearer new-token", nil},
		{"scheme is case-insensitive", "bearer new-token", nil},
		{"missing", "", errNoToken},
		{"basic scheme", "Basic dXNlcjpwYXNz", errNoToken},
		{"scheme only", "Bearer", errNoToken},
		{"wrong token", "Bearer old-token2", errBadToken},
		{"prefix of a token", "Bearer old", errBadToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			require.Equal(t, tt.want, a.check(r))
		})
	}
}

func TestBearerAuthDisabledWithoutTokens(t *testing.T) {
	a, err := newBearerAuth(nil)
	require.NoError(t, err)
	require.False(t, a.enabled())
	require.NoError(t, a.check(httptest.NewRequest("POST", "/", nil)))
}

func TestBearerAuthRefusesEmptyToken(t *testing.T) {
	_, err := newBearerAuth([]config.Secret{config.NewSecret([]byte("a")), config.NewSecret(nil)})
	require.ErrorContains(t, err, "tokens[1] is empty")
}
