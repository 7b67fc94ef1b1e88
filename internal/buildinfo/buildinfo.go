// Package buildinfo holds what the build stamps into the binary, shared by
// the CLI and the plugins that report it.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set at build time through -ldflags "-X .../internal/buildinfo.Version=...".
var (
	Version = "dev"
	Commit  = "unknown"
)

const upstreamModule = "github.com/influxdata/telegraf"

// UpstreamVersion reports the version of the Telegraf module this binary is
// built on, read from the module information the Go linker embeds, so it
// never disagrees with go.mod.
func UpstreamVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, dep := range info.Deps {
		if dep.Path != upstreamModule {
			continue
		}
		if dep.Replace != nil {
			return dep.Replace.Version
		}
		return dep.Version
	}
	return "unknown"
}

// String is the one-line version report of `telegraf-tkgi version` and
// `--version`. It starts the way upstream's does ("Telegraf 1.39.3"), so
// scripts that read the Telegraf version from the first two words keep
// working, and names this build in the parentheses upstream uses for its git
// information.
func String() string {
	return fmt.Sprintf("Telegraf %s (telegraf-tkgi %s, git: %s, %s %s/%s)",
		strings.TrimPrefix(UpstreamVersion(), "v"), Version, Commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
