// Command etcd is the upstream etcd server at the version Kubernetes pins,
// built from the module proxy because this machine has no etcd release.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
