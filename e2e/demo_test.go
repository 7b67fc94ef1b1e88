package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// `make demo`, the README's first command, from a clean checkout: the files
// git would have (tracked and not ignored, so uncommitted work counts and
// bin/ or .cache/ do not), with no cluster configured. It shares the
// user's tool-binary cache so kube-apiserver is not rebuilt.
func TestMakeDemoFromCleanCheckout(t *testing.T) {
	if testing.Short() {
		t.Skip("runs make demo in a copy of the checkout: an integration test, run without -short (make test)")
	}
	root := repoRoot(t)
	clone := t.TempDir()
	copyCheckout(t, root, clone)
	demoDir := t.TempDir()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "demo")
	cmd.Dir = clone
	// Not the outer make's flags when `make test` runs this.
	cmd.Env = append(withoutEnv("KUBECONFIG", "DEMO_DIR", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"), "DEMO_DIR="+demoDir)
	out, err := cmd.CombinedOutput()
	text := string(out)
	require.NoError(t, err, "make demo:\n%s", text)

	require.Contains(t, text, "starting a local kube-apiserver")
	checkDemo(t, text, demoDir)
	requireNothingLeftRunning(t, clone, demoDir)
}

// With $KUBECONFIG the demo polls that cluster and starts none of its own.
func TestDemoPollsKubeconfigCluster(t *testing.T) {
	f := newFixture(t) // a seeded cluster
	demoDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(repoRoot(t), "scripts", "demo.sh"), f.bin)
	cmd.Env = append(withoutEnv("KUBECONFIG", "DEMO_DIR"),
		"KUBECONFIG="+f.cluster.TelegrafKubeconfig, "DEMO_DIR="+demoDir)
	out, err := cmd.CombinedOutput()
	text := string(out)
	require.NoError(t, err, "demo.sh:\n%s", text)

	require.Contains(t, text, "polling the cluster of $KUBECONFIG ("+f.cluster.TelegrafKubeconfig+")")
	require.NotContains(t, text, "starting a local kube-apiserver")
	require.NoDirExists(t, filepath.Join(demoDir, "kube"))
	checkDemo(t, text, demoDir)
	requireNothingLeftRunning(t, demoDir)
}

var summaryRow = regexp.MustCompile(`(?m)^(none|standard|enhanced)\s+(\d+)\s+(\d+)$`)

// checkDemo asserts what the demo printed against what landed in its lake.
func checkDemo(t *testing.T, text, demoDir string) {
	t.Helper()
	for _, level := range []string{"none", "standard", "enhanced"} {
		require.Contains(t, text, `== agent at participation_level = "`+level+`"`)
	}
	require.Contains(t, text, "sent: nothing; no connection opened; stored at level none: 0")
	require.Contains(t, text, "stopping the server")

	rows := map[string][2]int{}
	for _, m := range summaryRow.FindAllStringSubmatch(text, -1) {
		sent, _ := strconv.Atoi(m[2])
		landed, _ := strconv.Atoi(m[3])
		rows[m[1]] = [2]int{sent, landed}
	}
	require.Len(t, rows, 3, "summary table:\n%s", text)
	require.Equal(t, [2]int{0, 0}, rows["none"])
	sent := rows["standard"][0]
	require.Positive(t, sent)
	require.Equal(t, [2]int{sent, sent}, rows["standard"], "standard: everything sent landed")
	require.Equal(t, [2]int{sent, sent}, rows["enhanced"], "enhanced: the same metrics, with identity")
	require.Contains(t, text, "check: 0 real node names sent; 0 metrics carry customer_number=CN-DEMO-0042")
	require.Contains(t, text, "check: 0 real node names sent; "+strconv.Itoa(sent)+" metrics carry customer_number=CN-DEMO-0042")

	// The lake itself: records per level, identity only at enhanced, and not
	// one real node name anywhere in it.
	names, err := os.ReadFile(filepath.Join(demoDir, "node-names.txt"))
	require.NoError(t, err)
	nodes := strings.Fields(string(names))
	require.NotEmpty(t, nodes)
	lake, err := os.ReadFile(filepath.Join(demoDir, "lake", "telemetry.jsonl"))
	require.NoError(t, err)
	for _, n := range nodes {
		require.NotContains(t, string(lake), `"`+n+`"`, "a real node name landed in the lake")
	}
	perLevel := map[string]int{}
	withIdentity := map[string]int{}
	scanner := bufio.NewScanner(bytes.NewReader(lake))
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		var rec struct {
			Name string            `json:"name"`
			Tags map[string]string `json:"tags"`
		}
		require.NoError(t, json.Unmarshal(scanner.Bytes(), &rec))
		require.True(t, strings.HasPrefix(rec.Name, "kube_telemetry_"), "unexpected measurement %q in the lake", rec.Name)
		perLevel[rec.Tags["level"]]++
		if rec.Tags["customer_number"] != "" {
			require.Equal(t, "CN-DEMO-0042", rec.Tags["customer_number"])
			withIdentity[rec.Tags["level"]]++
		}
	}
	require.NoError(t, scanner.Err())
	require.Equal(t, map[string]int{"standard": sent, "enhanced": sent}, perLevel)
	require.Equal(t, map[string]int{"enhanced": sent}, withIdentity)
}

// copyCheckout copies the files git would check out, plus untracked ones it
// does not ignore, from src to dst.
func copyCheckout(t *testing.T, src, dst string) {
	t.Helper()
	out, err := exec.Command("git", "-C", src, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	require.NoError(t, err)
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		info, err := os.Lstat(filepath.Join(src, f))
		if os.IsNotExist(err) {
			continue // deleted in the work tree, not yet in the index
		}
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dst, f)), 0o755))
		data, err := os.ReadFile(filepath.Join(src, f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, f), data, info.Mode().Perm()))
	}
}

func withoutEnv(keys ...string) []string {
	var env []string
next:
	for _, kv := range os.Environ() {
		for _, k := range keys {
			if strings.HasPrefix(kv, k+"=") {
				continue next
			}
		}
		env = append(env, kv)
	}
	return env
}

// requireNothingLeftRunning fails if a process still names one of dirs on
// its command line (the demo's server, etcd or kube-apiserver).
func requireNothingLeftRunning(t *testing.T, dirs ...string) {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	require.NoError(t, err)
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		args := strings.ReplaceAll(string(cmdline), "\x00", " ")
		for _, d := range dirs {
			require.NotContains(t, args, d, "left running: %s (%s)", args, p)
		}
	}
}
