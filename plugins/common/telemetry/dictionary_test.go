package telemetry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The measurements, tags and fields the dictionary lists are kube_telemetry's
// schema, checked both ways by that plugin's TestSchemaMatchesDictionary and
// TestIntegrationGatherMatchesDictionary. Here: their classes. Names are
// pseudonymized, the identity tags identity, Telegraf's host tag dropped,
// everything else listed kept.
func TestDefaultDictionaryClasses(t *testing.T) {
	d := DefaultDictionary()
	require.NotEmpty(t, d.Version)

	pseudo := map[string]bool{"cluster_uid": true, "cluster_name": true, "node": true, "storage_class": true}
	identity := map[string]bool{TagCustomerNumber: true, TagInstallationLabel: true, TagInstallationType: true}
	for k, e := range d.CommonTags() {
		switch {
		case pseudo[k]:
			require.Equal(t, ClassPseudonymize, e.Class, k)
		case identity[k]:
			require.Equal(t, ClassIdentity, e.Class, k)
		case k == "host":
			require.Equal(t, ClassDrop, e.Class, k)
		default:
			t.Fatalf("unexpected common tag %q", k)
		}
	}
	require.Equal(t, []string{TagCustomerNumber, TagInstallationLabel, TagInstallationType}, d.identityTags())
	for name, m := range d.Measurements {
		for k, e := range m.Tags {
			want := ClassKeep
			if pseudo[k] {
				want = ClassPseudonymize
			}
			require.Equal(t, want, e.Class, "%s tag %s", name, k)
		}
		for k, e := range m.Fields {
			require.Equal(t, ClassKeep, e.Class, "%s field %s", name, k)
		}
	}
}

// The values kube_telemetry really emits pass the value constraints as
// they are (so nothing legitimate becomes "other").
func TestDefaultDictionaryKeepsRealValues(t *testing.T) {
	d := DefaultDictionary()
	tests := []struct {
		measurement, key string
		tag              bool
		values           []string
	}{
		{"kube_telemetry_cluster", "server_version", false, []string{"v1.36.3", "v1.29.4+vmware.1", "v1.30.0-rc.1"}},
		{"kube_telemetry_cluster", "platform", false, []string{"linux/amd64", "linux/arm64"}},
		{"kube_telemetry_cluster", "cni", false, []string{"antrea", "unknown", "antrea,calico", "nsx-node-agent"}},
		{"kube_telemetry_resource", "resource", true, []string{"pods", "customresourcedefinitions", "csidrivers"}},
		{"kube_telemetry_node_role", "role", true, []string{"none", "control-plane", "control-plane,master", "worker"}},
		{"kube_telemetry_node", "os_image", true, []string{"Ubuntu 22.04.4 LTS", "VMware Photon OS/Linux", "Photon OS 5.0",
			"Debian GNU/Linux 12 (bookworm)", "Red Hat Enterprise Linux 9.4 (Plow)", "Windows Server 2022 Datacenter"}},
		{"kube_telemetry_node", "kernel_version", true, []string{"5.15.0-91-generic", "6.1.0-18-amd64", "4.19.283-1.ph3"}},
		{"kube_telemetry_node", "operating_system", true, []string{"linux", "windows"}},
		{"kube_telemetry_node", "architecture", true, []string{"amd64", "arm64"}},
		{"kube_telemetry_node", "kubelet_version", true, []string{"v1.36.3", "v1.28.9+vmware.1"}},
		{"kube_telemetry_node", "container_runtime_version", true, []string{"containerd://1.7.2", "containerd://1.6.28-1", "cri-o://1.30.1"}},
		{"kube_telemetry_storage", "provisioner", true, []string{"csi.vsphere.vmware.com", "kubernetes.io/no-provisioner"}},
		{"kube_telemetry_addon", "addon", true, []string{"antrea", "coredns", "metrics-server"}},
		{"kube_telemetry_addon", "category", true, []string{"cni", "dns", "metrics", "ingress", "storage", "other"}},
		{"kube_telemetry_addon", "kind", true, []string{"DaemonSet", "Deployment"}},
		{"kube_telemetry_addon", "version", true, []string{"v2.1.0", "1.11.1", "v0.7.0_vmware.1", "latest", "unknown", "v1.11.3_vmware.1-fips"}},
	}
	for _, tt := range tests {
		e := d.Field(tt.measurement, tt.key)
		if tt.tag {
			e = d.Tag(tt.measurement, tt.key)
		}
		require.NotNil(t, e, "%s %s", tt.measurement, tt.key)
		for _, v := range tt.values {
			require.True(t, e.allows(v), "%s %s=%q should be kept", tt.measurement, tt.key, v)
		}
	}
}

func TestParseDictionaryErrors(t *testing.T) {
	const scheme = `[versions.k]
meaning = "k"
core = '\d+'
other = "+other"
tokens = [{ token = '-x', by = "x" }]
`
	const good = `version = "1"
[measurements.m]
meaning = "m"
fields.f = { class = "keep", type = "int", meaning = "f" }
`
	_, err := ParseDictionary([]byte(good), "good")
	require.NoError(t, err)

	tests := []struct {
		name, toml, want string
	}{
		{"no version", strings.Replace(good, `version = "1"`, "", 1), "version is empty"},
		{"bad version", strings.Replace(good, `"1"`, `"1 0"`, 1), `version "1 0"`},
		{"typo key", strings.Replace(good, "class =", "clas =", 1), `unknown key "measurements.m.fields.f.clas"`},
		{"unknown class", strings.Replace(good, `"keep"`, `"hash"`, 1), `class "hash" unknown`},
		{"no meaning", strings.Replace(good, `meaning = "f"`, `meaning = ""`, 1), "fields.f: meaning is empty"},
		{"no type", strings.Replace(good, `type = "int", `, "", 1), "type is missing"},
		{"bad type", strings.Replace(good, `"int"`, `"long"`, 1), `type "long" unknown`},
		{"identity field", strings.Replace(good, `"keep"`, `"identity"`, 1), "only allowed in [common.tags]"},
		{"pseudonymize int", strings.Replace(good, `"keep"`, `"pseudonymize"`, 1), "needs type string"},
		{"pattern on int", strings.Replace(good, `meaning = "f"`, `meaning = "f", pattern = "x"`, 1), "kept strings only"},
		{"bad pattern", strings.Replace(strings.Replace(good, `"int"`, `"string"`, 1), `meaning = "f"`, `meaning = "f", pattern = "("`, 1), "pattern"},
		{"no fields", "version = \"1\"\n[measurements.m]\nmeaning = \"m\"\n", "no fields"},
		{"no measurements", "version = \"1\"\n", "no measurements"},
		{"tag type", good + "tags.t = { class = \"keep\", type = \"int\", meaning = \"t\" }\n", "tags are always strings"},
		{"duplicate common", "version = \"1\"\n[common.tags]\nt = { class = \"keep\", meaning = \"t\" }\n" + strings.TrimPrefix(good, "version = \"1\"\n") +
			"tags.t = { class = \"keep\", meaning = \"t\" }\n", "already a common tag"},
		{"syntax", "version = ", "data dictionary syntax"},
		{"unknown scheme", strings.Replace(strings.Replace(good, `"int"`, `"string"`, 1), `meaning = "f"`, `meaning = "f", version = "kernel"`, 1), `version "kernel": no [versions.kernel]`},
		{"version on int", good + "fields.g = { class = \"keep\", type = \"int\", version = \"k\", meaning = \"g\" }\n" + scheme, "kept strings only"},
		{"version and pattern", good + "fields.g = { class = \"keep\", type = \"string\", version = \"k\", pattern = \"x\", meaning = \"g\" }\n" + scheme, "pattern and version exclude each other"},
		{"scheme without meaning", good + strings.Replace(scheme, `meaning = "k"`, `meaning = ""`, 1), "versions.k: meaning is empty"},
		{"scheme without core", good + strings.Replace(scheme, `core = '\d+'`, "", 1), "versions.k: core is missing"},
		{"scheme bad core", good + strings.Replace(scheme, `core = '\d+'`, `core = '('`, 1), "versions.k: core"},
		{"scheme bad other", good + strings.Replace(scheme, `other = "+other"`, `other = "+unknown"`, 1), `versions.k: other "+unknown"`},
		{"token without by", good + strings.Replace(scheme, `, by = "x"`, "", 1), "by is empty"},
		{"token bad regexp", good + strings.Replace(scheme, `token = '-x'`, `token = '['`, 1), `tokens[0] "["`},
		{"other is a token", good + strings.Replace(scheme, `token = '-x'`, `token = '\+other'`, 1), "is also a token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDictionary([]byte(tt.toml), "syntax")
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestLoadDictionary(t *testing.T) {
	d, err := LoadDictionary("")
	require.NoError(t, err)
	require.Equal(t, DefaultDictionary().Version, d.Version)

	path := filepath.Join(t.TempDir(), "dict.toml")
	require.NoError(t, os.WriteFile(path, []byte("version = \"9\"\n[measurements.m]\nmeaning = \"m\"\nfields.f = { class = \"keep\", type = \"int\", meaning = \"f\" }\n"), 0o600))
	d, err = LoadDictionary(path)
	require.NoError(t, err)
	require.Equal(t, "9", d.Version)
	require.Equal(t, path, d.Source)

	_, err = LoadDictionary(filepath.Join(t.TempDir(), "missing.toml"))
	require.ErrorContains(t, err, "reading data dictionary")
}

func TestParseLevel(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Level
		err  bool
	}{
		{"none", LevelNone, false},
		{"standard", LevelStandard, false},
		{"enhanced", LevelEnhanced, false},
		{"", "", true},
		{"Standard", "", true},
		{"full", "", true},
	} {
		got, err := ParseLevel(tt.in)
		if tt.err {
			require.ErrorContains(t, err, `use "none", "standard" or "enhanced"`, tt.in)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tt.want, got)
	}
}

// The configs/ copy and the markdown table are generated from the
// embedded file; this fails when someone edits one without the other.
func TestGeneratedCopiesInSync(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	cfg, err := os.ReadFile(filepath.Join(root, "configs", "data-dictionary.toml"))
	require.NoError(t, err)
	require.Equal(t, string(DefaultDictionaryTOML), string(cfg),
		"configs/data-dictionary.toml differs from plugins/common/telemetry/data-dictionary.toml; edit the latter and run go generate ./plugins/common/telemetry")

	md, err := os.ReadFile(filepath.Join(root, "docs", "data-dictionary.md"))
	require.NoError(t, err)
	require.Equal(t, string(DefaultDictionary().Markdown()), string(md),
		"docs/data-dictionary.md is stale; run go generate ./plugins/common/telemetry")
}

func TestMarkdownListsEveryEntry(t *testing.T) {
	d := DefaultDictionary()
	md := string(d.Markdown())
	require.Contains(t, md, "# Data dictionary "+d.Version)
	for _, k := range d.CommonTagKeys() {
		require.Contains(t, md, "| `"+k+"` | "+string(d.Common.Tags[k].Class)+" |")
	}
	for _, name := range d.MeasurementNames() {
		m := d.Measurements[name]
		require.Contains(t, md, "\n## "+name+"\n")
		for _, k := range m.TagKeys() {
			require.Contains(t, md, "| `"+k+"` | tag | string | "+string(m.Tags[k].Class))
		}
		for _, k := range m.FieldKeys() {
			require.Contains(t, md, "| `"+k+"` | field | "+m.Fields[k].Type+" | "+string(m.Fields[k].Class))
		}
	}
	// File order is kept.
	require.Equal(t, "kube_telemetry_cluster", d.MeasurementNames()[0])
	require.Equal(t, "server_version", d.Measurements["kube_telemetry_cluster"].FieldKeys()[0])
}

// A version keeps its core and a distribution's token; whatever else a
// suffix carries is replaced, never sent.
func TestVersionSchemesReduce(t *testing.T) {
	d := DefaultDictionary()
	tests := []struct {
		measurement, key string
		tag              bool
		in, want         string
	}{
		{"kube_telemetry_cluster", "server_version", false, "v1.28.5+vmware.1", "v1.28.5+vmware.1"},
		{"kube_telemetry_cluster", "server_version", false, "v1.28.5+acmecorp-prod", "v1.28.5+other"},
		{"kube_telemetry_cluster", "server_version", false, "v1.28.5+vmware.1-acmecorp", "v1.28.5+other"},
		{"kube_telemetry_cluster", "server_version", false, "acmecorp-v1.28.5", OtherValue},
		{"kube_telemetry_cluster", "server_version", false, "v1.28.5+other", "v1.28.5+other"},
		{"kube_telemetry_node", "kubelet_version", true, "v1.29.0-eks-5e0fdde", "v1.29.0-eks-5e0fdde"},
		{"kube_telemetry_node", "kernel_version", true, "5.15.0-91-contoso", "5.15.0-91+other"},
		{"kube_telemetry_node", "kernel_version", true, "5.15.0-91-generic", "5.15.0-91-generic"},
		{"kube_telemetry_node", "kernel_version", true, "5.15.0-10.0.0.7", OtherValue}, // an address, no vendor token
		{"kube_telemetry_node", "kernel_version", true, "6.6.130.1-3.azl3", "6.6.130.1-3.azl3"},
		{"kube_telemetry_node", "container_runtime_version", true, "containerd://1.7.2-bigbank", "containerd://1.7.2+other"},
		{"kube_telemetry_node", "container_runtime_version", true, "containerd://1.7.31-1", "containerd://1.7.31-1"},
		{"kube_telemetry_node", "os_image", true, "Ubuntu 22.04.4 LTS", "Ubuntu 22.04.4 LTS"},
		{"kube_telemetry_node", "os_image", true, "Ubuntu 22.04.4 LTS Acme Site 2", "Ubuntu 22.04.4 other"},
		{"kube_telemetry_node", "os_image", true, "Acme Linux 9", OtherValue},
		{"kube_telemetry_addon", "version", true, "latest", "latest"},
		{"kube_telemetry_addon", "version", true, "v1.10.1_vmware.1", "v1.10.1_vmware.1"},
		{"kube_telemetry_addon", "version", true, "v1.10.1-acmecorp", "v1.10.1+other"},
		{"kube_telemetry_addon", "version", true, strings.Repeat("1.", 70) + "1", OtherValue}, // longer than any version
	}
	for _, tt := range tests {
		e := d.Field(tt.measurement, tt.key)
		if tt.tag {
			e = d.Tag(tt.measurement, tt.key)
		}
		require.NotNil(t, e)
		require.Equal(t, tt.want, e.keep(tt.in), "%s %q", tt.key, tt.in)
		require.True(t, e.allows(tt.want), "the listener must accept %q", tt.want)
		require.Equal(t, tt.in == tt.want, e.allows(tt.in), "%q", tt.in)
	}
}
