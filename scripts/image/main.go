// Command image assembles telegraf-tkgi's container image with no daemon and
// no registry: an OCI image layout (and the same as an OCI archive) holding
// one multi-platform index. Each platform's image is three layers on
// nothing: /etc (passwd and group with the nonroot user 65532, Debian's CA
// bundle), the shipped configurations under /etc/telegraf-tkgi/ and the
// static binary. Each platform's CycloneDX SBOM rides in the same index as
// an OCI artifact whose subject is that platform's manifest.
//
// Every byte is a function of the inputs: tar entries sorted, owned by 0:0
// with fixed modes and the SOURCE_DATE_EPOCH time, gzip from the standard
// library, JSON from go-containerregistry. scripts/image.sh (make image)
// prepares the inputs.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// The distroless convention for the unprivileged user, which the
	// manifests' runAsUser/runAsGroup name.
	nonrootID = 65532
	binPath   = "usr/bin/telegraf-tkgi"
	confDir   = "etc/telegraf-tkgi"

	sbomMediaType = "application/vnd.cyclonedx+json"
	// OCI 1.1's empty descriptor: the config of an artifact that has none.
	emptyMediaType = "application/vnd.oci.empty.v1+json"
)

type platformInput struct {
	platform v1.Platform
	binary   string
	sbom     string
}

type platformFlag []platformInput

func (p *platformFlag) String() string { return fmt.Sprint(*p) }

// Set parses os/arch=binary,sbom.
func (p *platformFlag) Set(v string) error {
	plat, files, ok := strings.Cut(v, "=")
	osName, arch, ok2 := strings.Cut(plat, "/")
	bin, sbom, ok3 := strings.Cut(files, ",")
	if !ok || !ok2 || !ok3 {
		return fmt.Errorf("want os/arch=binary,sbom, got %q", v)
	}
	*p = append(*p, platformInput{platform: v1.Platform{OS: osName, Architecture: arch}, binary: bin, sbom: sbom})
	return nil
}

type options struct {
	layoutDir, archive     string
	name, tag              string
	version, revision, src string
	epoch                  int64
	caBundle, caVersion    string
	configs                string
	platforms              platformFlag
}

func main() {
	var o options
	flag.StringVar(&o.layoutDir, "layout", "", "OCI image layout to write (replaced)")
	flag.StringVar(&o.archive, "archive", "", "OCI archive to write: the layout as one tar")
	flag.StringVar(&o.name, "name", "telegraf-tkgi", "image name (repository), as the manifests' kustomize images: entry names it")
	flag.StringVar(&o.tag, "tag", "latest", "the image's tag in the layout")
	flag.StringVar(&o.version, "version", "", "org.opencontainers.image.version")
	flag.StringVar(&o.revision, "revision", "", "org.opencontainers.image.revision (the full commit)")
	flag.StringVar(&o.src, "source", "", "org.opencontainers.image.source")
	flag.Int64Var(&o.epoch, "source-date-epoch", -1, "every timestamp in the image (seconds since 1970)")
	flag.StringVar(&o.caBundle, "ca-bundle", "", "CA bundle for /etc/ssl/certs/ca-certificates.crt")
	flag.StringVar(&o.caVersion, "ca-version", "", "version of Debian's ca-certificates the bundle comes from")
	flag.StringVar(&o.configs, "configs", "", "folder whose *.conf go to /etc/telegraf-tkgi/")
	flag.Var(&o.platforms, "platform", "os/arch=binary,sbom (repeat per platform)")
	flag.Parse()
	digest, err := build(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	fmt.Println(digest)
}

func build(o options) (v1.Hash, error) {
	if o.layoutDir == "" || o.archive == "" || o.epoch < 0 || o.caBundle == "" || o.configs == "" || len(o.platforms) == 0 ||
		o.version == "" || o.revision == "" {
		return v1.Hash{}, errors.New("-layout, -archive, -source-date-epoch, -ca-bundle, -configs, -version, -revision and -platform are required")
	}
	created := time.Unix(o.epoch, 0).UTC()
	annotations := map[string]string{
		"org.opencontainers.image.title":    o.name,
		"org.opencontainers.image.version":  o.version,
		"org.opencontainers.image.revision": o.revision,
		"org.opencontainers.image.created":  created.Format(time.RFC3339),
	}
	if o.src != "" {
		annotations["org.opencontainers.image.source"] = o.src
	}

	base, err := baseLayer(o.caBundle, created)
	if err != nil {
		return v1.Hash{}, err
	}
	confs, err := configLayer(o.configs, created)
	if err != nil {
		return v1.Hash{}, err
	}

	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var sboms []mutate.IndexAddendum
	for _, p := range o.platforms {
		img, err := platformImage(p, base, confs, o.caVersion, created, annotations)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("%s: %w", p.platform, err)
		}
		plat := p.platform
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &plat}})
		sbom, err := sbomArtifact(p.sbom, img, created)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("%s: %w", p.platform, err)
		}
		// Platform unknown/unknown, as BuildKit places its attestations:
		// runtimes choosing an image by platform pass over it, and copies
		// of the index (crane push, skopeo copy --all) carry it along.
		sboms = append(sboms, mutate.IndexAddendum{Add: sbom, Descriptor: v1.Descriptor{
			Platform:     &v1.Platform{OS: "unknown", Architecture: "unknown"},
			ArtifactType: sbomMediaType,
			Annotations:  map[string]string{"org.opencontainers.image.description": "CycloneDX SBOM of the Go modules in " + p.platform.String()},
		}})
	}
	idx = mutate.AppendManifests(idx, sboms...)
	idx = mutate.Annotations(idx, annotations).(v1.ImageIndex)

	if err := os.RemoveAll(o.layoutDir); err != nil {
		return v1.Hash{}, err
	}
	lp, err := layout.Write(o.layoutDir, empty.Index)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("writing the layout failed: %w", err)
	}
	ref := o.name + ":" + o.tag
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		// The OCI name is the tag; containerd (ctr images import) names
		// the image by its own annotation, which must be what the kubelet
		// asks for: the manifests' image, normalised.
		"org.opencontainers.image.ref.name": o.tag,
		"io.containerd.image.name":          normalise(ref),
	})); err != nil {
		return v1.Hash{}, fmt.Errorf("writing the layout failed: %w", err)
	}
	if err := archiveDir(o.layoutDir, o.archive, created); err != nil {
		return v1.Hash{}, fmt.Errorf("writing the archive failed: %w", err)
	}
	return idx.Digest()
}

// normalise gives the fully qualified name a bare name stands for, as the
// kubelet and containerd read it (telegraf-tkgi:latest is
// docker.io/library/telegraf-tkgi:latest).
func normalise(ref string) string {
	first, _, hasSlash := strings.Cut(ref, "/")
	switch {
	case !hasSlash:
		return "docker.io/library/" + ref
	case !strings.ContainsAny(first, ".:") && first != "localhost":
		return "docker.io/" + ref
	}
	return ref
}

func platformImage(p platformInput, base, confs v1.Layer, caVersion string, created time.Time, annotations map[string]string) (v1.Image, error) {
	binary, err := fileLayer([]tarEntry{{name: binPath, file: p.binary, mode: 0o755}}, created)
	if err != nil {
		return nil, err
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	at := v1.Time{Time: created}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: at, CreatedBy: "/etc/passwd, /etc/group (nonroot 65532), " +
			"/etc/ssl/certs/ca-certificates.crt (Debian ca-certificates " + caVersion + ")"}},
		mutate.Addendum{Layer: confs, History: v1.History{Created: at, CreatedBy: "/" + confDir + "/*.conf (configs/)"}},
		mutate.Addendum{Layer: binary, History: v1.History{Created: at, CreatedBy: "/" + binPath + " (" + p.platform.String() + ")"}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = at
	cf.OS, cf.Architecture = p.platform.OS, p.platform.Architecture
	labels := map[string]string{}
	for k, v := range annotations {
		labels[k] = v
	}
	cf.Config = v1.Config{
		User:         fmt.Sprintf("%d:%d", nonrootID, nonrootID),
		Entrypoint:   []string{"/" + binPath},
		Cmd:          []string{"--config", "/" + confDir + "/agent.conf"},
		Env:          []string{"PATH=/usr/bin"},
		WorkingDir:   "/",
		Labels:       labels,
		ExposedPorts: map[string]struct{}{"8080/tcp": {}, "9273/tcp": {}},
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, annotations).(v1.Image), nil
}

func baseLayer(caBundle string, created time.Time) (v1.Layer, error) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/nonexistent:/sbin/nologin\n", nonrootID, nonrootID)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", nonrootID)
	return fileLayer([]tarEntry{
		{name: "etc/passwd", data: []byte(passwd), mode: 0o644},
		{name: "etc/group", data: []byte(group), mode: 0o644},
		{name: "etc/ssl/certs/ca-certificates.crt", file: caBundle, mode: 0o644},
	}, created)
}

func configLayer(dir string, created time.Time) (v1.Layer, error) {
	confs, err := filepath.Glob(filepath.Join(dir, "*.conf"))
	if err != nil || len(confs) == 0 {
		return nil, fmt.Errorf("no *.conf in %s (%v)", dir, err)
	}
	var entries []tarEntry
	for _, c := range confs {
		entries = append(entries, tarEntry{name: path.Join(confDir, filepath.Base(c)), file: c, mode: 0o644})
	}
	return fileLayer(entries, created)
}

// tarEntry is a regular file of a layer: its content in data or in file.
type tarEntry struct {
	name string
	data []byte
	file string
	mode int64
}

// fileLayer is a gzip layer of the files and their parent folders.
func fileLayer(entries []tarEntry, created time.Time) (v1.Layer, error) {
	data, err := tarFiles(entries, created)
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.DefaultCompression))
}

// tarFiles writes the entries and every folder above them, sorted by name,
// owned by root, at one time: the tar is a function of names, modes and
// contents alone.
func tarFiles(entries []tarEntry, mtime time.Time) ([]byte, error) {
	dirs := map[string]bool{}
	for i, e := range entries {
		for d := path.Dir(e.name); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
		if e.file != "" {
			data, err := os.ReadFile(e.file)
			if err != nil {
				return nil, err
			}
			entries[i].data = data
		}
	}
	for d := range dirs {
		entries = append(entries, tarEntry{name: d + "/", mode: 0o755})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: mtime, Format: tar.FormatPAX, Typeflag: tar.TypeReg, Size: int64(len(e.data))}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// archiveDir writes the layout as an OCI archive (what skopeo's
// oci-archive: and ctr images import read), reproducibly.
func archiveDir(dir, archive string, mtime time.Time) error {
	var entries []tarEntry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			entries = append(entries, tarEntry{name: filepath.ToSlash(rel) + "/", mode: 0o755})
			return nil
		}
		entries = append(entries, tarEntry{name: filepath.ToSlash(rel), file: p, mode: 0o644})
		return nil
	})
	if err != nil {
		return err
	}
	data, err := tarFiles(entries, mtime)
	if err != nil {
		return err
	}
	return os.WriteFile(archive, data, 0o644)
}

// sbomArtifact is an OCI 1.1 artifact: the SBOM as its one layer, the
// empty config, and the platform's image as its subject (what a registry's
// referrers API lists for that image).
func sbomArtifact(file string, subject v1.Image, created time.Time) (v1.Image, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("%s is not JSON", file)
	}
	layer := static.NewLayer(data, sbomMediaType)
	subj, err := partial.Descriptor(subject)
	if err != nil {
		return nil, err
	}
	subj.Platform, subj.Annotations = nil, nil
	ld, err := partial.Descriptor(layer)
	if err != nil {
		return nil, err
	}
	ld.Annotations = map[string]string{"org.opencontainers.image.title": filepath.Base(file)}
	emptyConfig := []byte("{}")
	configDigest, configSize, err := v1.SHA256(bytes.NewReader(emptyConfig))
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  sbomMediaType,
		Config:        v1.Descriptor{MediaType: emptyMediaType, Digest: configDigest, Size: configSize, Data: emptyConfig},
		Layers:        []v1.Descriptor{*ld},
		Subject:       subj,
		Annotations:   map[string]string{"org.opencontainers.image.created": created.Format(time.RFC3339)},
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&artifact{manifest: raw, config: emptyConfig, layer: layer})
}

// artifact is a manifest go-containerregistry writes as it is.
type artifact struct {
	manifest, config []byte
	layer            v1.Layer
}

func (a *artifact) RawConfigFile() ([]byte, error)      { return a.config, nil }
func (a *artifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *artifact) RawManifest() ([]byte, error)        { return a.manifest, nil }
func (a *artifact) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if d, err := a.layer.Digest(); err == nil && d == h {
		return a.layer, nil
	}
	return nil, fmt.Errorf("artifact has no blob %s", h)
}
