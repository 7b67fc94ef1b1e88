package vmware_telemetry_listener

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"
)

const (
	oldToken    = "old-agents-token-0123"
	newToken    = "new-agents-token-4567"
	eventsToken = "platform-api-events-token"
)

func TestBearerAuth(t *testing.T) {
	a := &bearerAuth{}
	require.NoError(t, a.addTokens(endpointBatches, "tokens", tokens(oldToken, newToken)))
	require.NoError(t, a.addTokens(endpointEvents, "events_tokens", tokens(eventsToken)))

	tests := []struct {
		name   string
		ep     endpoint
		header string
		want   error
	}{
		{"first token", endpointBatches, "Bearer " + oldToken, nil},
		{"second token", endpointBatches, "Bearer " + newToken, nil},
		{"scheme is case-insensitive", endpointBatches, "bearer " + newToken, nil},
		{"events token on events", endpointEvents, "Bearer " + eventsToken, nil},
		{"missing", endpointBatches, "", errNoToken},
		{"missing on events", endpointEvents, "", errNoToken},
		{"basic scheme", endpointBatches, "Basic dXNlcjpwYXNz", errNoToken},
		{"scheme only", endpointBatches, "Bearer", errNoToken},
		{"wrong token", endpointBatches, "Bearer " + oldToken + "2", errBadToken},
		{"prefix of a token", endpointBatches, "Bearer old-agents", errBadToken},
		{"agents' token on events", endpointEvents, "Bearer " + oldToken, errOtherEndpoint},
		{"events token on batches", endpointBatches, "Bearer " + eventsToken, errOtherEndpoint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			require.Equal(t, tt.want, a.check(r, tt.ep))
		})
	}
}

func TestBearerAuthEndpointWithoutTokensIsOpen(t *testing.T) {
	a := &bearerAuth{}
	require.NoError(t, a.addTokens(endpointBatches, "tokens", tokens(oldToken)))
	require.False(t, a.enabled(endpointEvents))
	require.NoError(t, a.check(httptest.NewRequest("POST", "/", nil), endpointEvents))
}

// A token read from a file keeps its trailing newline; it still matches.
func TestBearerAuthTrimsConfiguredTokens(t *testing.T) {
	a := &bearerAuth{}
	require.NoError(t, a.addTokens(endpointBatches, "tokens", tokens(" "+oldToken+"\n")))
	r := httptest.NewRequest("POST", "/", nil)
	r.Header.Set("Authorization", "Bearer "+oldToken)
	require.NoError(t, a.check(r, endpointBatches))
}

// The events endpoint has its own credentials: the agents' token (which
// lives in every cluster) cannot post events, the platform API's token
// cannot post batches, and neither is stored.
func TestEndpointsHaveTheirOwnCredentials(t *testing.T) {
	ts := startListener(t, nil)
	batch := zstdBytes(t, validBatch(1))
	event := []byte(`{"type":"cluster.create.succeeded"}`)
	events := func(token string) post {
		return post{path: ts.l.EventsPath, body: event, token: token, query: "_c=tkgi-api&_i=api-1"}
	}

	tests := []struct {
		name  string
		req   post
		want  int
		body  string
		realm bool
	}{
		{"agents' token on events", events(testToken), http.StatusForbidden, "not valid for this endpoint", false},
		{"events token on batches", post{body: batch, encoding: "zstd", token: testEventsToken}, http.StatusForbidden, "not valid for this endpoint", false},
		{"unknown token on events", events("an-unknown-token-value"), http.StatusUnauthorized, "not accepted", true},
		{"no token on events", events("-"), http.StatusUnauthorized, "missing bearer token", true},
		{"no token on batches", post{body: batch, encoding: "zstd", token: "-"}, http.StatusUnauthorized, "missing bearer token", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := ts.do(tt.req)
			require.Equal(t, tt.want, resp.StatusCode, body)
			require.Contains(t, body, tt.body)
			require.Equal(t, tt.realm, resp.Header.Get("WWW-Authenticate") != "")
		})
	}
	require.Zero(t, len(ts.pipe.GetTelegrafMetrics()), "a refused request stored something")
	require.Equal(t, int64(len(tests)), ts.l.stats.authFailures.Get())
	require.Equal(t, int64(1), ts.l.stats.requests[endpointEvents][http.StatusForbidden].Get())
	require.Equal(t, int64(1), ts.l.stats.requests[endpointBatches][http.StatusForbidden].Get())

	// Each token on its own endpoint is stored.
	resp, body := ts.do(events(testEventsToken))
	require.Equal(t, http.StatusCreated, resp.StatusCode, body)
	resp, body = ts.do(post{body: batch, encoding: "zstd", token: testToken})
	require.Equal(t, http.StatusCreated, resp.StatusCode, body)
}

// With allow_anonymous and no tokens, any client posts; the listener says
// so at startup.
func TestAllowAnonymous(t *testing.T) {
	ts := startListener(t, func(l *Listener) { l.Tokens, l.EventsTokens, l.AllowAnonymous = nil, nil, true })
	resp, body := ts.do(post{body: zstdBytes(t, validBatch(1)), encoding: "zstd", token: "-"})
	require.Equal(t, http.StatusCreated, resp.StatusCode, body)
	resp, body = ts.do(post{path: ts.l.EventsPath, body: []byte(`{"type":"a.b"}`), token: "-", query: "_c=tkgi-api&_i=api-1"})
	require.Equal(t, http.StatusCreated, resp.StatusCode, body)
}

// Credentials never come back in an answer or go to the log: a request
// carrying one in its URL is refused without echoing it, malformed query
// values are not echoed, and no answer has a Location header.
func TestCredentialsNeverEchoedOrLogged(t *testing.T) {
	const secret = "leaked-secret-value-0123456789"
	log := &testutil.CaptureLogger{}
	ts := startListener(t, func(l *Listener) { l.Log = log })
	batch := zstdBytes(t, validBatch(1))

	tests := []struct {
		name string
		req  post
		code int
		want string
	}{
		{"token in the query", post{body: batch, encoding: "zstd", query: "_c=tkgi-agent&_i=inst-1&access_token=" + secret},
			http.StatusBadRequest, `named like "token" looks like a credential: send tokens only in the Authorization header`},
		{"token in the query without a header", post{body: batch, encoding: "zstd", token: "-", query: "_c=tkgi-agent&_i=inst-1&token=" + secret},
			http.StatusBadRequest, "looks like a credential"},
		{"secret in a parameter's name", post{body: batch, encoding: "zstd", query: "_c=tkgi-agent&_i=inst-1&X-Auth-" + secret},
			http.StatusBadRequest, "looks like a credential"},
		{"escaped name", post{body: batch, encoding: "zstd", query: "_c=tkgi-agent&_i=inst-1&api%5Fkey=" + secret},
			http.StatusBadRequest, `named like "api_key"`},
		{"secret as a malformed collector", post{body: batch, encoding: "zstd", query: "_c=" + secret + "%20&_i=inst-1"},
			http.StatusBadRequest, "query parameter _c (31 bytes): give the collector id"},
		{"secret as a malformed instance", post{body: batch, encoding: "zstd", query: "_c=tkgi-agent&_i=" + secret + "/"},
			http.StatusBadRequest, "query parameter _i (31 bytes)"},
		{"secret as a wrong token", post{body: batch, encoding: "zstd", token: secret}, http.StatusUnauthorized, "not accepted"},
		{"secret on an unknown path", post{path: "/" + secret, body: batch}, http.StatusNotFound, "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := ts.do(tt.req)
			require.Equal(t, tt.code, resp.StatusCode, body)
			require.Contains(t, body, tt.want)
			require.NotContains(t, body, secret)
			require.Empty(t, resp.Header.Get("Location"))
			for k, v := range resp.Header {
				require.NotContains(t, strings.Join(v, " "), secret, "header %s", k)
			}
		})
	}
	require.Zero(t, len(ts.pipe.GetTelegrafMetrics()))
	require.NotZero(t, log.NMessages(), "the test saw no log line at all")
	for _, m := range log.Messages() {
		require.NotContains(t, m.String(), secret)
	}
	// The tokens themselves are never logged either.
	for _, m := range log.Messages() {
		require.NotContains(t, m.String(), testToken)
		require.NotContains(t, m.String(), testEventsToken)
	}
}

func TestCredentialInQuery(t *testing.T) {
	for query, want := range map[string]string{
		"_c=a&_i=b":               "",
		"":                        "",
		"_c=a&_i=b&cache=1":       "",
		"_c=a&access_token=x":     "token",
		"Password=x":              "password",
		"X-Amz-Signature=abc&_c=": "signature",
		"apiKey=1":                "apikey",
		"%zz=1&secret=1":          "secret",
	} {
		require.Equal(t, want, credentialInQuery(query), query)
	}
}
