package sinks

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"
)

// configs/sinks/ sets the agent image through TELEGRAF_TKGI_AGENT_IMAGE
// (kustomize's images: entry rewrites it with the controller's own image);
// the flag still wins where both are given.
func TestAgentImageOption(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  string
		args []string
		want string
	}{
		{name: "default", want: "telegraf-tkgi:latest"},
		{name: "environment", env: "registry.example.com/telegraf-tkgi:v1", want: "registry.example.com/telegraf-tkgi:v1"},
		{name: "flag over environment", env: "registry.example.com/telegraf-tkgi:v1", args: []string{"--agent-image=img:2"}, want: "img:2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("TELEGRAF_TKGI_AGENT_IMAGE", tc.env)
			if tc.env == "" {
				require.NoError(t, os.Unsetenv("TELEGRAF_TKGI_AGENT_IMAGE"))
			}
			cmd := Command()
			var got string
			cmd.Action = func(c *cli.Context) error { got = c.String("agent-image"); return nil }
			app := &cli.App{Commands: []*cli.Command{cmd}}
			require.NoError(t, app.RunContext(context.Background(), append([]string{"telegraf-tkgi", "sink-controller"}, tc.args...)))
			require.Equal(t, tc.want, got)
		})
	}
}
