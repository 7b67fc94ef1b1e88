// Package testkube gives tests a real kube-apiserver: the one named by
// $KUBE_TEST_ENV (the env file scripts/kube-apiserver-up.sh writes; `make
// test` starts one for the whole run), or a private one started on first use
// and stopped by Stop. Tests fail, never skip, when none can be had.
package testkube

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Cluster is a running test apiserver with its credentials.
type Cluster struct {
	Dir                string
	APIURL             string
	CAFile             string
	AdminKubeconfig    string
	TelegrafKubeconfig string
	LimitedKubeconfig  string
	AdminToken         string
	TelegrafToken      string
	LimitedToken       string
	// Kubeseed is the seeder binary built with the apiserver.
	Kubeseed string
	// EtcdEndpoint is etcd's client URL, for the direct-to-etcd seeder.
	EtcdEndpoint string
}

// RepoRoot is the repository's top folder.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Load reads the env file of scripts/kube-apiserver-up.sh.
func Load(envFile string) (*Cluster, error) {
	f, err := os.Open(envFile)
	if err != nil {
		return nil, fmt.Errorf("reading kube-apiserver env file failed: %w", err)
	}
	defer f.Close()
	env := make(map[string]string)
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		if k, v, ok := strings.Cut(scanner.Text(), "="); ok {
			env[k] = v
		}
	}
	if err := scanner.Err(); err != nil {
		return nil, err
	}
	c := &Cluster{
		Dir:                env["KUBE_TEST_DIR"],
		APIURL:             env["KUBE_API_URL"],
		CAFile:             env["KUBE_CA_FILE"],
		AdminKubeconfig:    env["KUBECONFIG_ADMIN"],
		TelegrafKubeconfig: env["KUBECONFIG_TELEGRAF"],
		LimitedKubeconfig:  env["KUBECONFIG_TELEGRAF_LIMITED"],
		AdminToken:         env["KUBE_TOKEN_ADMIN"],
		TelegrafToken:      env["KUBE_TOKEN_TELEGRAF"],
		LimitedToken:       env["KUBE_TOKEN_TELEGRAF_LIMITED"],
		Kubeseed:           env["KUBESEED"],
		EtcdEndpoint:       env["KUBE_ETCD_ENDPOINT"],
	}
	if c.APIURL == "" || c.AdminKubeconfig == "" {
		return nil, fmt.Errorf("%s lacks KUBE_API_URL or KUBECONFIG_ADMIN", envFile)
	}
	return c, nil
}

// lazy is a cluster started on first use and stopped by Stop.
type lazy struct {
	once  sync.Once
	c     *Cluster
	err   error
	stop  func()
	start func() (*Cluster, func(), error)
}

func (l *lazy) get(t testing.TB, what string) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a real kube-apiserver: an integration test, run without -short (make test)")
	}
	l.once.Do(func() { l.c, l.stop, l.err = l.start() })
	if l.err != nil {
		t.Fatalf("no %s for this test: %v\n\nRun the tests with `make test`, or start one with "+
			"`scripts/kube-apiserver-up.sh` and set KUBE_TEST_ENV=.cache/kube-run/env, or leave KUBE_TEST_ENV "+
			"unset so the test starts its own (needs go, openssl, curl, kubectl)", what, l.err)
	}
	return l.c
}

// OldestModule is the wrapper module of the oldest Kubernetes minor the
// project supports; see scripts/kube-apiserver-1.30.
const OldestModule = "scripts/kube-apiserver-1.30"

var (
	shared = &lazy{start: start}
	oldest = &lazy{start: func() (*Cluster, func(), error) { return startPrivate(OldestModule) }}
)

// Get returns the shared test cluster, starting a private one if
// $KUBE_TEST_ENV is unset. Call Stop from TestMain after m.Run.
func Get(t testing.TB) *Cluster {
	t.Helper()
	return shared.get(t, "kube-apiserver")
}

// Oldest returns a private cluster running the oldest supported
// kube-apiserver, started on first use and stopped by Stop. Its first use
// on a cold machine builds that apiserver (several minutes).
func Oldest(t testing.TB) *Cluster {
	t.Helper()
	return oldest.get(t, "kube-apiserver of the oldest supported minor")
}

// Stop stops the clusters Get and Oldest started themselves; one named by
// $KUBE_TEST_ENV is left running.
func Stop() {
	for _, l := range []*lazy{shared, oldest} {
		if l.stop != nil {
			l.stop()
		}
	}
}

func start() (*Cluster, func(), error) {
	if envFile := os.Getenv("KUBE_TEST_ENV"); envFile != "" {
		c, err := Load(envFile)
		return c, nil, err
	}
	return startPrivate("")
}

// startPrivate starts a cluster of its own; module, if set, is the wrapper
// module its kube-apiserver is built from.
func startPrivate(module string) (*Cluster, func(), error) {
	state, err := os.MkdirTemp("", "testkube-")
	if err != nil {
		return nil, nil, err
	}
	scripts := filepath.Join(RepoRoot(), "scripts")
	stop := func() {
		down := exec.Command(filepath.Join(scripts, "kube-apiserver-down.sh"), "--purge", state)
		down.Stdout, down.Stderr = os.Stderr, os.Stderr
		if err := down.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the test kube-apiserver failed: %v\n", err)
		}
	}
	up := exec.Command(filepath.Join(scripts, "kube-apiserver-up.sh"), state)
	up.Stdout, up.Stderr = os.Stderr, os.Stderr
	if module != "" {
		up.Env = append(os.Environ(), "KUBE_APISERVER_MODULE="+module)
	}
	if err := up.Run(); err != nil {
		stop()
		return nil, nil, fmt.Errorf("starting kube-apiserver failed: %w", err)
	}
	c, err := Load(filepath.Join(state, "env"))
	if err != nil {
		stop()
		return nil, nil, err
	}
	return c, stop, nil
}

// Kubectl runs kubectl against the cluster with the given kubeconfig and
// returns its combined output.
func (c *Cluster) Kubectl(kubeconfig string, args ...string) (string, error) {
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig", kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
