package e2e_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"debug/elf"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testpki"
)

const (
	imageName = "telegraf-tkgi"
	imageTag  = "e2e"
	nonroot   = 65532
)

var imagePlatforms = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// The container image, built by `make image` with no daemon and no
// registry: one OCI index for linux/amd64 and linux/arm64 whose images hold
// the static binary, Debian's CA bundle, passwd/group for uid 65532 and the
// shipped configurations, nothing else; labelled; an SBOM per platform
// beside it; reproducible. This machine's platform's image, unpacked, runs
// as 65532 in a chroot holding only the image and what the applied
// Deployment mounts, with agent.conf as shipped, and collects from the real
// kube-apiserver into a real server.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the image for two platforms: minutes")
	}
	requireRoot(t)
	root := repoRoot(t)
	git := func(args ...string) string {
		o, err := exec.Command("git", append([]string{"-C", root}, args...)...).Output()
		require.NoError(t, err, "git %v", args)
		return strings.TrimSpace(string(o))
	}
	epoch, err := strconv.ParseInt(git("log", "-1", "--format=%ct"), 10, 64)
	require.NoError(t, err)
	created := time.Unix(epoch, 0).UTC()
	version := git("describe", "--tags", "--always", "--dirty")
	wantAnnotations := map[string]string{
		"org.opencontainers.image.title":    imageName,
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.revision": git("rev-parse", "HEAD"),
		"org.opencontainers.image.source":   "https://github.com/telegraf-tkgi/telegraf-tkgi",
		"org.opencontainers.image.created":  created.Format(time.RFC3339),
	}
	out := filepath.Join(t.TempDir(), "a")
	start := time.Now()
	makeImage(t, root, out, "")
	t.Logf("make image: %s", time.Since(start).Round(time.Second))

	l := ociLayout{dir: filepath.Join(out, "oci")}
	top := l.top(t)
	require.Len(t, top.Manifests, 1, "index.json names one image (crane push takes it as is)")
	require.Equal(t, "application/vnd.oci.image.index.v1+json", top.Manifests[0].MediaType)
	require.Equal(t, map[string]string{
		"org.opencontainers.image.ref.name": imageTag,
		"io.containerd.image.name":          "docker.io/library/" + imageName + ":" + imageTag,
	}, top.Manifests[0].Annotations)
	digest, err := os.ReadFile(filepath.Join(out, "digest"))
	require.NoError(t, err)
	require.Equal(t, top.Manifests[0].Digest, strings.TrimSpace(string(digest)))

	var idx ociIndex
	l.json(t, top.Manifests[0], &idx)
	require.Equal(t, wantAnnotations, idx.Annotations)

	images := map[string]ociManifest{}
	imageDigests := map[string]string{}
	var sboms []ociDescriptor
	for _, d := range idx.Manifests {
		require.NotNil(t, d.Platform, "index entry %s has no platform", d.Digest)
		if d.ArtifactType == "application/vnd.cyclonedx+json" {
			sboms = append(sboms, d)
			continue
		}
		require.Equal(t, "linux", d.Platform.OS)
		var m ociManifest
		l.json(t, d, &m)
		images[d.Platform.Architecture] = m
		imageDigests[d.Platform.Architecture] = d.Digest
	}
	require.Len(t, images, len(imagePlatforms), "one image per platform: %v", imageDigests)

	confs, err := filepath.Glob(filepath.Join(root, "configs", "*.conf"))
	require.NoError(t, err)
	wantFiles := map[string]bool{"etc/": true, "etc/passwd": true, "etc/group": true, "etc/ssl/": true, "etc/ssl/certs/": true,
		"etc/ssl/certs/ca-certificates.crt": true, "etc/telegraf-tkgi/": true, "usr/": true, "usr/bin/": true, "usr/bin/telegraf-tkgi": true}
	for _, c := range confs {
		wantFiles["etc/telegraf-tkgi/"+filepath.Base(c)] = true
	}

	type size struct{ compressed, uncompressed int64 }
	sizes := map[string]size{}
	for arch, machine := range imagePlatforms {
		m := images[arch]
		require.Equal(t, "application/vnd.oci.image.manifest.v1+json", m.MediaType)
		require.Equal(t, wantAnnotations, m.Annotations, "%s manifest annotations", arch)
		var cfg ociConfig
		l.json(t, m.Config, &cfg)
		require.Equal(t, "linux", cfg.OS)
		require.Equal(t, arch, cfg.Architecture)
		require.Equal(t, created.Format(time.RFC3339), cfg.Created)
		require.Equal(t, "65532:65532", cfg.Config.User)
		require.Equal(t, []string{"/usr/bin/telegraf-tkgi"}, cfg.Config.Entrypoint)
		require.Equal(t, []string{"--config", "/etc/telegraf-tkgi/agent.conf"}, cfg.Config.Cmd)
		require.Equal(t, wantAnnotations, cfg.Config.Labels)
		require.Len(t, cfg.RootFS.DiffIDs, len(m.Layers))
		require.Len(t, cfg.History, len(m.Layers))

		// Every entry of every layer: owned by root, at the commit's
		// time, readable by the image's user; together exactly the
		// expected files. No shell, no package manager, nothing to exec
		// but the binary.
		s := size{compressed: m.Config.Size}
		files := map[string]layerEntry{}
		for _, ld := range m.Layers {
			entries, tarSize := l.layerEntries(t, ld)
			s.compressed += ld.Size
			s.uncompressed += tarSize
			for _, e := range entries {
				h := e.hdr
				require.Zero(t, h.Uid, h.Name)
				require.Zero(t, h.Gid, h.Name)
				require.True(t, h.ModTime.Equal(created), "%s mtime %s", h.Name, h.ModTime)
				require.NotZero(t, h.Mode&0o004, "%s is not readable by uid %d", h.Name, nonroot)
				require.Zero(t, h.Mode&0o022, "%s is writable by others", h.Name)
				require.NotContains(t, []string{"sh", "bash", "dash", "ash", "busybox", "zsh", "ksh"}, path.Base(h.Name), "a shell in the image")
				if h.Mode&0o111 != 0 && !strings.HasSuffix(h.Name, "/") {
					require.Equal(t, "usr/bin/telegraf-tkgi", h.Name, "an executable other than the binary")
				}
				files[h.Name] = e
			}
		}
		got := map[string]bool{}
		for name := range files {
			got[name] = true
		}
		require.Equal(t, wantFiles, got, "%s: the image's files", arch)
		sizes[arch] = s

		bin, err := elf.NewFile(bytes.NewReader(files["usr/bin/telegraf-tkgi"].data))
		require.NoError(t, err)
		require.Equal(t, machine, bin.Machine, "%s binary", arch)
		for _, p := range bin.Progs {
			require.NotEqual(t, elf.PT_INTERP, p.Type, "%s binary is dynamically linked", arch)
		}
		for _, c := range confs {
			shipped, err := os.ReadFile(c)
			require.NoError(t, err)
			require.Equal(t, string(shipped), string(files["etc/telegraf-tkgi/"+filepath.Base(c)].data))
		}
		require.Contains(t, string(files["etc/passwd"].data), "\nnonroot:x:65532:65532:")
		require.Contains(t, string(files["etc/group"].data), "\nnonroot:x:65532:")
		requireCABundle(t, files["etc/ssl/certs/ca-certificates.crt"].data)
	}
	t.Logf("image sizes (compressed/uncompressed): amd64 %.1f/%.1f MB, arm64 %.1f/%.1f MB",
		mb(sizes["amd64"].compressed), mb(sizes["amd64"].uncompressed), mb(sizes["arm64"].compressed), mb(sizes["arm64"].uncompressed))

	// An SBOM per platform: an OCI artifact whose subject is that
	// platform's image, the same bytes as the file beside the archive.
	require.Len(t, sboms, len(imagePlatforms))
	for _, d := range sboms {
		require.Equal(t, "unknown", d.Platform.OS, "runtimes must pass over the SBOM")
		var m ociManifest
		l.json(t, d, &m)
		require.Equal(t, "application/vnd.cyclonedx+json", m.ArtifactType)
		require.Equal(t, "application/vnd.oci.empty.v1+json", m.Config.MediaType)
		require.NotNil(t, m.Subject)
		var arch string
		for a, dg := range imageDigests {
			if dg == m.Subject.Digest {
				arch = a
			}
		}
		require.NotEmpty(t, arch, "SBOM %s refers to no image of the index", d.Digest)
		require.Len(t, m.Layers, 1)
		sbom := l.blob(t, m.Layers[0])
		beside, err := os.ReadFile(filepath.Join(out, "sbom-linux-"+arch+".cdx.json"))
		require.NoError(t, err)
		require.Equal(t, string(beside), string(sbom))
		requireSBOM(t, root, sbom, version)
	}

	// The archive is the layout as one tar.
	archived := tarFiles(t, filepath.Join(out, "telegraf-tkgi.oci.tar"))
	indexJSON, err := os.ReadFile(filepath.Join(l.dir, "index.json"))
	require.NoError(t, err)
	require.Equal(t, string(indexJSON), string(archived["index.json"]))
	blobs, err := os.ReadDir(filepath.Join(l.dir, "blobs", "sha256"))
	require.NoError(t, err)
	require.Len(t, archived, len(blobs)+2, "the archive holds oci-layout, index.json and every blob")

	// Reproducible: a second assembly from the same binaries and CA
	// bundle gives the same bytes. (The binaries themselves are the
	// linker's output for the same sources and flags, -trimpath.)
	t.Run("reproducible", func(t *testing.T) {
		again := filepath.Join(filepath.Dir(out), "b")
		makeImage(t, root, again, filepath.Join(out, "build"))
		second, err := os.ReadFile(filepath.Join(again, "digest"))
		require.NoError(t, err)
		require.Equal(t, string(digest), string(second))
		require.Equal(t, fileSHA256(t, filepath.Join(out, "telegraf-tkgi.oci.tar")), fileSHA256(t, filepath.Join(again, "telegraf-tkgi.oci.tar")))
	})

	t.Run("runs as 65532 from its rootfs", func(t *testing.T) {
		arch := runtime.GOARCH
		m, ok := images[arch]
		if !ok {
			t.Fatalf("the image has no %s platform to run here", arch)
		}
		var cfg ociConfig
		l.json(t, m.Config, &cfg)
		rootfs := filepath.Join(t.TempDir(), "rootfs")
		unpack(t, l, m, rootfs)
		runImage(t, rootfs, cfg)
	})
}

func makeImage(t *testing.T, root, out, reuseBuild string) {
	t.Helper()
	cmd := exec.Command("make", "--no-print-directory", "image", "IMAGE_DIR="+out, "IMAGE="+imageName+":"+imageTag)
	cmd.Dir = root
	cmd.Env = os.Environ()
	if reuseBuild != "" {
		cmd.Env = append(cmd.Env, "IMAGE_REUSE_BUILD="+reuseBuild)
	}
	o, err := cmd.CombinedOutput()
	require.NoError(t, err, "make image:\n%s", o)
}

func mb(n int64) float64 { return float64(n) / 1e6 }

func fileSHA256(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	h := sha256.New()
	_, err = io.Copy(h, f)
	require.NoError(t, err)
	return fmt.Sprintf("%x", h.Sum(nil))
}

// requireCABundle: Debian's Mozilla set, PEM certificates only.
func requireCABundle(t *testing.T, data []byte) {
	t.Helper()
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			require.Empty(t, bytes.TrimSpace(rest), "trailing bytes in the CA bundle")
			break
		}
		_, err := x509.ParseCertificate(b.Bytes)
		require.NoError(t, err)
		n++
	}
	require.Greater(t, n, 100, "the CA bundle holds %d certificates", n)
}

// requireSBOM: a CycloneDX document of the binary's modules, at go.mod's
// versions.
func requireSBOM(t *testing.T, root string, data []byte, version string) {
	t.Helper()
	var bom struct {
		BOMFormat string `json:"bomFormat"`
		Metadata  struct {
			Component struct{ Name, Version string }
		}
		Components []struct{ Name, Version, Purl string }
	}
	require.NoError(t, json.Unmarshal(data, &bom))
	require.Equal(t, "CycloneDX", bom.BOMFormat)
	require.Equal(t, "github.com/telegraf-tkgi/telegraf-tkgi", bom.Metadata.Component.Name)
	require.Equal(t, version, bom.Metadata.Component.Version)
	o, err := exec.Command("go", "list", "-C", root, "-m", "-f", "{{.Version}}", "github.com/influxdata/telegraf").Output()
	require.NoError(t, err)
	versions := map[string]string{}
	for _, c := range bom.Components {
		versions[c.Name] = c.Version
	}
	require.Equal(t, strings.TrimSpace(string(o)), versions["github.com/influxdata/telegraf"], "telegraf in the SBOM")
	require.Contains(t, versions, "std", "the Go standard library in the SBOM")
}

// unpack writes the image's layers, in order, as a runtime would: owned
// by root, with the tar's modes.
func unpack(t *testing.T, l ociLayout, m ociManifest, dir string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for _, ld := range m.Layers {
		entries, _ := l.layerEntries(t, ld)
		for _, e := range entries {
			p := filepath.Join(dir, filepath.FromSlash(e.hdr.Name))
			mode := os.FileMode(e.hdr.Mode).Perm()
			if strings.HasSuffix(e.hdr.Name, "/") {
				require.NoError(t, os.MkdirAll(p, mode))
			} else {
				require.NoError(t, os.WriteFile(p, e.data, mode))
			}
			require.NoError(t, os.Chmod(p, mode))
			require.NoError(t, os.Chown(p, e.hdr.Uid, e.hdr.Gid))
		}
	}
}

// runImage runs the unpacked image the way the Deployment that `kubectl
// apply -k configs/` creates runs it: the image's entrypoint with the
// Deployment's args, the image's environment under the pod's, as the
// pod's user, in a chroot of the read-only rootfs with only the pod's
// volumes, ServiceAccount token and /etc/hosts and /etc/resolv.conf
// mounted (no /proc, /sys or /dev: it needs none), in its own network
// namespace. agent.conf as shipped, once (--once): kube_telemetry lists the
// real kube-apiserver and vmware_telemetry sends to the telemetry server
// started from its systemd unit, which stores the batch in its lake.
func runImage(t *testing.T, rootfs string, cfg ociConfig) {
	f := newFixture(t)
	require.NoError(t, os.Chmod(f.dir, 0o755))
	agentToken := "agents-" + randomToken(t)
	pki := testpki.NewFor(t, []string{"telemetry.tkgi-system.svc"})
	createAgentObjects(t, f.cluster, pki, agentToken)

	srv, server, serverNS := f.startUnitServer(pki, agentToken)

	pod := agentPod(t, f.cluster, f.dir)
	require.Equal(t, nonroot, pod.uid)
	require.Equal(t, nonroot, pod.gid)
	// What the kubelet mounts: /etc/hosts and /etc/resolv.conf (no
	// nsswitch.conf: Go reads the hosts file first without one).
	var mounts []bindMount
	for _, m := range pod.mounts {
		if m.dst != "/etc/nsswitch.conf" {
			mounts = append(mounts, m)
		}
	}
	resolv := filepath.Join(f.dir, "agent-resolv.conf")
	require.NoError(t, os.WriteFile(resolv, []byte("search telegraf-tkgi.svc.cluster.local svc.cluster.local cluster.local\n"+
		"nameserver 10.96.0.10\noptions ndots:5\n"), 0o644))
	mounts = append(mounts, bindMount{src: resolv, dst: "/etc/resolv.conf"})
	// The container's environment: the image's, then the pod's.
	env := map[string]string{}
	for _, kv := range cfg.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for k, v := range pod.env {
		if k != "PATH" {
			env[k] = v
		}
	}
	imagePath := env["PATH"]
	delete(env, "PATH")
	argv := append(append([]string(nil), cfg.Config.Entrypoint...), pod.command[1:]...)
	argv = append(argv, "--once")

	script := chrootScript(rootfs, mounts, []string{"ip addr add " + apiServiceIP + "/32 dev lo"}) +
		fmt.Sprintf("exec \"$chroot\" --userspec=%s --groups=%d \"$rootfs\" %s\n", cfg.Config.User, nonroot, shellArgs(argv))
	chroot, err := exec.LookPath("chroot")
	if err != nil {
		chroot, err = exec.LookPath("/usr/sbin/chroot")
	}
	require.NoError(t, err, "chroot (coreutils)")
	var envList []string
	for k, v := range env {
		envList = append(envList, k+"="+v)
	}
	sort.Strings(envList)
	cmd := exec.Command("unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.Env = append(envList, "IMAGE_ROOTFS="+rootfs, "CHROOT="+chroot, "IMAGE_PATH="+imagePath, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	r, w, err := os.Pipe()
	require.NoError(t, err)
	cmd.Stdin = r
	agent := f.launch("agent", cmd)
	r.Close()

	agentNS := joinNetNS(t, agent.cmd.Process.Pid)
	apiHostPort := strings.TrimPrefix(f.cluster.APIURL, "https://")
	relay(agentNS.listen(t, net.JoinHostPort(apiServiceIP, "443")), func() (net.Conn, error) {
		return net.DialTimeout("tcp", apiHostPort, 5*time.Second)
	})
	relay(agentNS.listen(t, "127.0.0.1:8443"), func() (net.Conn, error) { return serverNS.dial("127.0.0.1:8443") })
	_, err = io.WriteString(w, "start\n")
	require.NoError(t, err)
	require.NoError(t, w.Close())

	agent.wait(3 * time.Minute)
	log := agent.logText()
	for _, line := range strings.Split(log, "\n") {
		require.NotContains(t, line, " E! ", "the agent logged an error")
	}

	lake := filepath.Join(srv.stateDir, "telemetry.jsonl")
	names := map[string]int{}
	pollUntil(t, time.Minute, func() bool {
		names = map[string]int{}
		for _, m := range readLake(t, lake) {
			names[m.Name]++
		}
		return names["kube_telemetry_cluster"] > 0
	}, func() string {
		return "no kube_telemetry_cluster in the lake; agent log:\n" + tail(log, 30) + "\nserver log:\n" + tail(server.logText(), 30)
	})
	server.stop()
	for _, want := range []string{"kube_telemetry_nodes", "kube_telemetry_pods", "kube_telemetry_objects"} {
		require.NotZero(t, names[want], "no %s in the lake", want)
	}
	t.Logf("the image's binary, as uid %d in its rootfs, sent %v", nonroot, names)
}

// chrootScript: a fresh network namespace (loopback up, plus netSetup) and
// a private mount namespace in which $rootfs is bound read-only and the
// given mounts are bound into it; then it reads one line of stdin (the
// test's relays in place) before the exec that follows.
func chrootScript(rootfs string, mounts []bindMount, netSetup []string) string {
	var b strings.Builder
	b.WriteString("set -e\nip link set lo up\n")
	for _, s := range netSetup {
		b.WriteString(s + "\n")
	}
	b.WriteString("rootfs=$IMAGE_ROOTFS chroot=$CHROOT path=$IMAGE_PATH\nunset IMAGE_ROOTFS CHROOT IMAGE_PATH\n")
	b.WriteString("mount --bind \"$rootfs\" \"$rootfs\"\n")
	// Mount points first (a runtime creates them in the container's
	// writable layer), then the image read-only, then the mounts.
	for _, m := range mounts {
		dst := "\"$rootfs\"" + shellQuote(m.dst)
		fmt.Fprintf(&b, "if [ -d %[1]s ]; then mkdir -p %[2]s; else mkdir -p \"$(dirname %[2]s)\" && touch %[2]s; fi\n", shellQuote(m.src), dst)
	}
	b.WriteString("mount -o remount,bind,ro \"$rootfs\"\n")
	for _, m := range mounts {
		fmt.Fprintf(&b, "mount --bind %s \"$rootfs\"%s\n", shellQuote(m.src), shellQuote(m.dst))
	}
	b.WriteString("read -r _\nexport PATH=\"$path\"\n")
	return b.String()
}

func shellArgs(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}
