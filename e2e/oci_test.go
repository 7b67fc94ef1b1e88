package e2e_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// An OCI image layout read with the standard library alone: the image test
// checks what scripts/image/ (go-containerregistry) wrote with a reader of
// its own.

type ociDescriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Platform     *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	} `json:"platform,omitempty"`
}

type ociIndex struct {
	MediaType   string            `json:"mediaType"`
	Manifests   []ociDescriptor   `json:"manifests"`
	Annotations map[string]string `json:"annotations"`
}

type ociManifest struct {
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType"`
	Config       ociDescriptor     `json:"config"`
	Layers       []ociDescriptor   `json:"layers"`
	Subject      *ociDescriptor    `json:"subject"`
	Annotations  map[string]string `json:"annotations"`
}

type ociConfig struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Created      string `json:"created"`
	Config       struct {
		User         string
		Entrypoint   []string
		Cmd          []string
		Env          []string
		WorkingDir   string
		Labels       map[string]string
		ExposedPorts map[string]struct{}
	} `json:"config"`
	RootFS struct {
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
	History []struct {
		Created   string `json:"created"`
		CreatedBy string `json:"created_by"`
	} `json:"history"`
}

type ociLayout struct{ dir string }

// blob reads a blob and checks it against its descriptor.
func (l ociLayout) blob(t *testing.T, d ociDescriptor) []byte {
	t.Helper()
	algo, hexDigest, ok := strings.Cut(d.Digest, ":")
	require.True(t, ok && algo == "sha256", "digest %q", d.Digest)
	data, err := os.ReadFile(filepath.Join(l.dir, "blobs", "sha256", hexDigest))
	require.NoError(t, err)
	sum := sha256.Sum256(data)
	require.Equal(t, hexDigest, hex.EncodeToString(sum[:]), "blob %s does not hash to its name", d.Digest)
	require.Equal(t, d.Size, int64(len(data)), "blob %s size", d.Digest)
	return data
}

func (l ociLayout) json(t *testing.T, d ociDescriptor, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(l.blob(t, d), v), "blob %s", d.Digest)
}

func (l ociLayout) top(t *testing.T) ociIndex {
	t.Helper()
	layoutFile, err := os.ReadFile(filepath.Join(l.dir, "oci-layout"))
	require.NoError(t, err)
	require.JSONEq(t, `{"imageLayoutVersion":"1.0.0"}`, string(layoutFile))
	data, err := os.ReadFile(filepath.Join(l.dir, "index.json"))
	require.NoError(t, err)
	var idx ociIndex
	require.NoError(t, json.Unmarshal(data, &idx))
	return idx
}

// tarEntry is one entry of a layer's tar.
type layerEntry struct {
	hdr  tar.Header
	data []byte
}

// layerEntries ungzips and reads a layer; it also returns the tar's size
// (the layer's uncompressed size).
func (l ociLayout) layerEntries(t *testing.T, d ociDescriptor) ([]layerEntry, int64) {
	t.Helper()
	require.Equal(t, "application/vnd.oci.image.layer.v1.tar+gzip", d.MediaType)
	zr, err := gzip.NewReader(bytes.NewReader(l.blob(t, d)))
	require.NoError(t, err)
	raw, err := io.ReadAll(zr)
	require.NoError(t, err)
	tr := tar.NewReader(bytes.NewReader(raw))
	var out []layerEntry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		out = append(out, layerEntry{hdr: *h, data: data})
	}
	return out, int64(len(raw))
}

// tarFileNames lists a plain tar file's regular files with their contents.
func tarFiles(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	tr := tar.NewReader(f)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		if h.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			require.NoError(t, err)
			out[h.Name] = data
		}
	}
}
