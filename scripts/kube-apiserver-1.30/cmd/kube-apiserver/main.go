// Command kube-apiserver is the upstream Kubernetes API server of the oldest
// minor the project supports (see ../README.md), built so tests can check
// the fallbacks older API servers need. It adds nothing of its own.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
