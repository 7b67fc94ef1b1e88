package main

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// The telemetry server refuses to start rather than run open or with a
// token nobody can know: each refusal names the option, and no token
// value is printed.
func TestListenerRefusesToStartWithoutUsableTokens(t *testing.T) {
	const secret = "a-real-agents-token-0123456789"
	tests := []struct {
		name    string
		env     map[string]string
		options string
		want    string
	}{
		{
			name:    "unset token variable",
			env:     map[string]string{"TELEMETRY_EVENTS_TOKEN": secret + "-events"},
			options: `tokens = ["${TELEMETRY_TOKEN}"]` + "\n" + `events_tokens = ["${TELEMETRY_EVENTS_TOKEN}"]`,
			want:    `tokens[0] holds an unexpanded "${TELEMETRY_TOKEN}"; set that environment variable`,
		},
		{
			name:    "unset events token variable",
			env:     map[string]string{"TELEMETRY_TOKEN": secret},
			options: `tokens = ["${TELEMETRY_TOKEN}"]` + "\n" + `events_tokens = ["${TELEMETRY_EVENTS_TOKEN}"]`,
			want:    `events_tokens[0] holds an unexpanded "${TELEMETRY_EVENTS_TOKEN}"`,
		},
		{
			name:    "no tokens",
			options: `events_path = ""`,
			want:    "tokens is empty, so any client could post batches; set tokens",
		},
		{
			name:    "no events tokens",
			env:     map[string]string{"TELEMETRY_TOKEN": secret},
			options: `tokens = ["${TELEMETRY_TOKEN}"]`,
			want:    `events_tokens is empty`,
		},
		{
			name:    "tokens over plain http",
			env:     map[string]string{"TELEMETRY_TOKEN": secret},
			options: `tokens = ["${TELEMETRY_TOKEN}"]` + "\n" + `events_path = ""`,
			want:    "tokens would travel in clear over plain HTTP: set tls_cert and tls_key, or allow_tokens_over_http = true",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"TELEMETRY_TOKEN", "TELEMETRY_EVENTS_TOKEN"} {
				t.Setenv(k, "") // restored after the test
				require.NoError(t, os.Unsetenv(k))
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			conf := writeFile(t, t.TempDir(), "server.conf", `
[agent]
  omit_hostname = true
[[inputs.vmware_telemetry_listener]]
  service_address = "127.0.0.1:0"
  `+tt.options+`
[[outputs.discard]]
`)
			// The daemon itself, as systemd starts it: it must exit, not serve.
			r := run(t, "--config", conf)
			require.NotEqual(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
			require.Contains(t, r.stderr+r.stdout, tt.want)
			require.NotContains(t, r.stderr+r.stdout, secret)
		})
	}
}
