package vmware_telemetry

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

const testKeyHex = "6b6579206f6620746865207465737420696e7374616c6c6174696f6e20303031"

func writeKey(t testing.TB, hexKey string) string {
	path := filepath.Join(t.TempDir(), "key")
	require.NoError(t, os.WriteFile(path, []byte(hexKey+"\n"), 0o600))
	return path
}

// hmacPseudonym recomputes a pseudonym from the definition, independently
// of the package under test: 48 bits, 12 hex characters.
func hmacPseudonym(t testing.TB, hexKey, domain, value string) string {
	return hmacHex(t, hexKey, domain, value)[:12]
}

// hmacInstanceID recomputes the instance id: 128 bits, 32 hex characters.
func hmacInstanceID(t testing.TB, hexKey, value string) string {
	return hmacHex(t, hexKey, "_i", value)[:32]
}

func hmacHex(t testing.TB, hexKey, domain, value string) string {
	key, err := hex.DecodeString(hexKey)
	require.NoError(t, err)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(domain + "\x00" + value))
	return hex.EncodeToString(m.Sum(nil))
}

func TestSampleConfigLoads(t *testing.T) {
	c := config.NewConfig()
	require.NoError(t, c.LoadConfigData([]byte(sampleConfig), "sample.conf"))
	require.Len(t, c.Outputs, 1)
	o := c.Outputs[0].Output.(*VMwareTelemetry)
	require.Equal(t, "standard", o.ParticipationLevel)
	require.Equal(t, "zstd", o.ContentEncoding)
	require.True(t, o.UseSystemProxy)
	require.Equal(t, config.Size(1<<20), o.MaxPayloadBytes)
}

func TestInitErrors(t *testing.T) {
	tests := []struct {
		name string
		set  func(*VMwareTelemetry)
		want string
	}{
		{"level", func(o *VMwareTelemetry) { o.ParticipationLevel = "full" }, `participation_level "full" unknown; use "none", "standard" or "enhanced"`},
		{"enhanced without customer", func(o *VMwareTelemetry) { o.ParticipationLevel = "enhanced" }, "customer_number is required"},
		{"encoding", func(o *VMwareTelemetry) { o.ContentEncoding = "br" }, `content_encoding "br": use "zstd" or "gzip"`},
		{"identity encoding", func(o *VMwareTelemetry) { o.ContentEncoding = "identity" }, `content_encoding "identity"`},
		{"payload", func(o *VMwareTelemetry) { o.MaxPayloadBytes = 100 }, "max_payload_bytes 100 is too small"},
		{"no url", func(o *VMwareTelemetry) { o.URL = "" }, "url is empty"},
		{"url scheme", func(o *VMwareTelemetry) { o.URL = "ftp://x/y" }, "use an http or https URL"},
		{"url credentials", func(o *VMwareTelemetry) { o.URL = "https://u:p@x/y" }, "credentials do not belong in the URL"},
		{"url query", func(o *VMwareTelemetry) { o.URL = "https://x/y?_c=a" }, "leave out _c and _i"},
		{"collector", func(o *VMwareTelemetry) { o.CollectorID = "a b" }, `collector_id "a b"`},
		{"instance", func(o *VMwareTelemetry) { o.InstanceID = "" }, "instance_id is empty"},
		{"dictionary", func(o *VMwareTelemetry) { o.DictionaryFile = "/nonexistent/dict.toml" }, "dictionary_file: reading data dictionary"},
		{"retry", func(o *VMwareTelemetry) { o.RetryMax = config.Duration(time.Millisecond) }, "retry_initial (1s) must be positive and at most retry_max"},
		{"key file", func(o *VMwareTelemetry) { o.PseudonymKeyFile = "" }, "pseudonym_key_file is empty"},
		{"bad key", func(o *VMwareTelemetry) { o.PseudonymKey = secret("abcd") }, "pseudonym_key: pseudonym key has 2 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, _ := newOutput(t, "https://telemetry.example.com/ph/api/hyper/send", "", tt.set)
			require.ErrorContains(t, o.Init(), tt.want)
		})
	}

	// A key file that exists but is no key names the file.
	bad := writeKey(t, "zz")
	o, _ := newOutput(t, "https://telemetry.example.com", bad)
	require.ErrorContains(t, o.Init(), `pseudonym_key_file: key file "`+bad+`"`)

	// An explicit key (e.g. from an environment variable fed by a Secret)
	// takes precedence over the file, which is then not created.
	path := filepath.Join(t.TempDir(), "never", "key")
	o, _ = newOutput(t, "https://telemetry.example.com", path, func(o *VMwareTelemetry) { o.PseudonymKey = secret(testKeyHex) })
	require.NoError(t, o.Init())
	require.NoFileExists(t, path)
	require.Equal(t, hmacInstanceID(t, testKeyHex, "default"), o.instance)

	// The url path defaults to the phone-home path.
	o, _ = newOutput(t, "https://telemetry.example.com", "")
	require.NoError(t, o.Init())
	require.Equal(t, "https://telemetry.example.com"+telemetry.DefaultPath, o.endpoint)
}

// At none no connection is ever opened: not by Connect, not by Write, and
// no key file is created; the metrics are counted as dropped.
func TestLevelNoneOpensNoConnection(t *testing.T) {
	srv := newServer(t, "")
	keyFile := filepath.Join(t.TempDir(), "key")
	o, log := newOutput(t, srv.endpoint(), keyFile, withLevel("none"))
	start(t, o)
	metrics := kubeTelemetryMetrics(10, gatherTime)
	for range 3 {
		require.NoError(t, o.Write(metrics))
	}
	require.NoError(t, o.Close())
	require.Zero(t, srv.connections(), "level none must not connect")
	require.Empty(t, srv.reqs())
	require.NoFileExists(t, keyFile)
	require.Equal(t, int64(3*len(metrics)), o.stats.droppedBy[telemetry.DroppedLevel].Get())
	require.Contains(t, log.Messages()[0].Text, "nothing is sent")
}

// expected computes what may leave at a level straight from the
// dictionary file's entries and the HMAC definition, not through the
// policy code under test.
func expected(t testing.TB, level telemetry.Level, hexKey string, identity map[string]string, in []telegraf.Metric) []telegraf.Metric {
	d := telemetry.DefaultDictionary()
	var out []telegraf.Metric
	for _, m := range in {
		meas := d.Measurements[m.Name()]
		if meas == nil {
			continue
		}
		tags := map[string]string{}
		for _, tag := range m.TagList() {
			e := meas.Tags[tag.Key]
			if e == nil {
				e = d.CommonTags()[tag.Key]
			}
			if e == nil {
				continue
			}
			switch e.Class {
			case telemetry.ClassKeep:
				tags[tag.Key] = tag.Value
			case telemetry.ClassPseudonymize:
				tags[tag.Key] = hmacPseudonym(t, hexKey, tag.Key, tag.Value)
			}
		}
		if level == telemetry.LevelEnhanced {
			for k, v := range identity {
				tags[k] = v
			}
		}
		fields := map[string]any{}
		for _, f := range m.FieldList() {
			if e := meas.Fields[f.Key]; e != nil && e.Class == telemetry.ClassKeep {
				fields[f.Key] = f.Value
			}
		}
		if len(fields) > 0 {
			out = append(out, metric.New(m.Name(), tags, fields, m.Time()))
		}
	}
	return out
}

// noise is what else reaches an output in a real agent: other inputs'
// measurements and tags or fields nobody listed.
func noise() []telegraf.Metric {
	return []telegraf.Metric{
		metric.New("cpu", map[string]string{"host": "worker-01", "cpu": "cpu-total"}, map[string]any{"usage_user": 12.5}, gatherTime),
		metric.New("kube_inventory_pod", map[string]string{"namespace": "payments", "pod_name": "api-0"}, map[string]any{"restarts": int64(3)}, gatherTime),
		metric.New("kube_telemetry_pods", map[string]string{"cluster_uid": "u-1", "namespace": "payments", "user": "jdoe"},
			map[string]any{"total": int64(7), "owner": "jdoe@example.com"}, gatherTime),
	}
}

func TestPayloadMatchesDictionaryAtEachLevel(t *testing.T) {
	identity := map[string]string{telemetry.TagCustomerNumber: "C-0042", telemetry.TagInstallationLabel: "lab-east", telemetry.TagInstallationType: "production"}
	in := append(kubeTelemetryMetrics(12, gatherTime), noise()...)
	for _, level := range []telemetry.Level{telemetry.LevelStandard, telemetry.LevelEnhanced} {
		for _, enc := range []string{"zstd", "gzip"} {
			t.Run(string(level)+"/"+enc, func(t *testing.T) {
				srv := newServer(t, "")
				o, _ := newOutput(t, srv.endpoint(), writeKey(t, testKeyHex), withLevel(string(level)), withIdentity,
					func(o *VMwareTelemetry) { o.ContentEncoding = enc })
				start(t, o)
				require.NoError(t, o.Write(in))

				reqs := srv.reqs()
				require.Len(t, reqs, 1)
				r := reqs[0]
				require.Equal(t, enc, r.header.Get("Content-Encoding"))
				require.Equal(t, string(level), r.header.Get(telemetry.HeaderLevel))
				require.Equal(t, telemetry.DefaultDictionary().Version, r.header.Get(telemetry.HeaderDictionaryVersion))
				require.Equal(t, "telegraf-tkgi.v1", r.query.Get("_c"))
				require.Equal(t, hmacInstanceID(t, testKeyHex, "default"), r.query.Get("_i"))
				require.Equal(t, telemetry.ContentType, r.header.Get("Content-Type"))

				want := expected(t, level, testKeyHex, identity, in)
				require.Len(t, r.metrics, len(kubeTelemetryMetrics(12, gatherTime))+1, "every kube_telemetry metric, plus the noisy pods line")
				testutil.RequireMetricsEqual(t, want, r.metrics, testutil.SortMetrics())
				require.Equal(t, r.header.Get(telemetry.HeaderMetricCount), itoa(len(r.metrics)))

				// Nothing of the noise leaves.
				for _, s := range []string{"\ncpu,", "cpu-total", "usage_user", "kube_inventory", "payments", "jdoe", "worker-01", "host=", "telemetry-agent", "namespace=", "owner="} {
					require.False(t, strings.Contains(string(r.body), s), "payload contains %q", s)
				}
				if level == telemetry.LevelStandard {
					for _, v := range identity {
						require.False(t, strings.Contains(string(r.body), v), "payload contains %q", v)
					}
				}
			})
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestPseudonymsStableAcrossRestartAndDifferBetweenInstallations(t *testing.T) {
	srv := newServer(t, "")
	keyA := filepath.Join(t.TempDir(), "a", "key") // created on first start
	keyB := filepath.Join(t.TempDir(), "b", "key")
	in := kubeTelemetryMetrics(4, gatherTime)

	run := func(keyFile string) received {
		before := len(srv.reqs())
		o, _ := newOutput(t, srv.endpoint(), keyFile)
		start(t, o)
		require.NoError(t, o.Write(in))
		require.NoError(t, o.Close())
		reqs := srv.reqs()
		require.Len(t, reqs, before+1)
		return reqs[before]
	}
	nodeTags := func(r received) []string {
		var out []string
		for _, m := range r.metrics {
			if v, ok := m.GetTag("node"); ok {
				out = append(out, v)
			}
		}
		return out
	}

	first := run(keyA)
	st, err := os.Stat(keyA)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	again := run(keyA) // a restart: same key file
	other := run(keyB) // another installation

	require.Equal(t, first.query.Get("_i"), again.query.Get("_i"))
	require.Equal(t, nodeTags(first), nodeTags(again))
	require.Equal(t, first.header.Get(telemetry.HeaderIdempotencyKey), again.header.Get(telemetry.HeaderIdempotencyKey),
		"the same metrics after a restart are the same batch")
	require.NotEqual(t, first.query.Get("_i"), other.query.Get("_i"))
	a, b := nodeTags(first), nodeTags(other)
	require.Len(t, a, 4)
	for i := range a {
		require.True(t, telemetry.IsPseudonym(a[i]))
		require.NotEqual(t, a[i], b[i])
	}
}

func TestTokenAndAuditLog(t *testing.T) {
	srv := newServer(t, "")
	o, log := newOutput(t, srv.endpoint(), "", func(o *VMwareTelemetry) { o.Token = secret("t0ken") })
	start(t, o)
	in := kubeTelemetryMetrics(3, gatherTime)
	require.NoError(t, o.Write(in))
	r := srv.reqs()[0]
	require.Equal(t, "Bearer t0ken", r.header.Get("Authorization"))

	var audit []string
	for _, m := range log.Messages() {
		if strings.HasPrefix(m.Text, "Sent batch ") {
			audit = append(audit, m.Text)
		}
	}
	require.Len(t, audit, 1, "one audit line per batch")
	key := r.header.Get(telemetry.HeaderIdempotencyKey)
	require.Contains(t, audit[0], "Sent batch "+key+": "+itoa(len(r.metrics))+" metrics, "+itoa(len(r.body))+" bytes, "+itoa(r.bodyLen)+" bytes zstd, level standard, status 201")

	// Self-metrics.
	require.Equal(t, int64(1), o.stats.batchesSent.Get())
	require.Equal(t, int64(len(r.metrics)), o.stats.metricsSent.Get())
	require.Equal(t, int64(len(r.body)), o.stats.bytesRaw.Get())
	require.Equal(t, int64(r.bodyLen), o.stats.bytesCompressed.Get())
	require.Equal(t, int64(0), o.stats.retries.Get())
}

func TestPreviewWritesWhatWouldBeSent(t *testing.T) {
	srv := newServer(t, "")
	key := writeKey(t, testKeyHex)
	in := append(kubeTelemetryMetrics(5, gatherTime), noise()...)

	// What a real send carries...
	o, _ := newOutput(t, srv.endpoint(), key)
	start(t, o)
	require.NoError(t, o.Write(in))
	sent := srv.reqs()[0]
	conns := srv.connections()

	// ...is exactly what preview writes, and preview sends nothing.
	file := filepath.Join(t.TempDir(), "preview", "batches.lp")
	p, _ := newOutput(t, srv.endpoint(), key, func(o *VMwareTelemetry) { o.Preview = true; o.PreviewFile = file })
	start(t, p)
	require.NoError(t, p.Write(in))
	require.NoError(t, p.Close())
	require.Equal(t, conns, srv.connections(), "preview must not connect")
	require.Len(t, srv.reqs(), 1)

	data, err := os.ReadFile(file)
	require.NoError(t, err)
	header, body, ok := strings.Cut(string(data), "\n")
	require.True(t, ok)
	require.Equal(t, string(sent.body), body)
	require.Contains(t, header, "# batch "+sent.header.Get(telemetry.HeaderIdempotencyKey)+" level=standard")
	st, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	// Preview to the log.
	l, log := newOutput(t, "", key, func(o *VMwareTelemetry) { o.Preview = true })
	start(t, l)
	require.NoError(t, l.Write(in))
	var previews []string
	for _, m := range log.Messages() {
		if strings.HasPrefix(m.Text, "Preview (not sent):") {
			previews = append(previews, m.Text)
		}
	}
	require.Len(t, previews, 1)
	require.Contains(t, previews[0], strings.TrimRight(string(sent.body), "\n"))
}

// dictionary_file replaces the compiled-in dictionary: only what it lists
// leaves, and its version goes in the header.
func TestDictionaryFileOverride(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dict.toml")
	require.NoError(t, os.WriteFile(path, []byte(`version = "2.0.0-narrow"
[common.tags]
cluster_uid = { class = "pseudonymize", meaning = "cluster" }
[measurements.kube_telemetry_pods]
meaning = "pods"
fields.total = { class = "keep", type = "int", meaning = "pods" }
`), 0o600))
	srv := newServer(t, "")
	o, _ := newOutput(t, srv.endpoint(), writeKey(t, testKeyHex), func(o *VMwareTelemetry) { o.DictionaryFile = path })
	start(t, o)
	require.NoError(t, o.Write(kubeTelemetryMetrics(3, gatherTime)))

	r := srv.reqs()[0]
	require.Equal(t, "2.0.0-narrow", r.header.Get(telemetry.HeaderDictionaryVersion))
	want := metric.New("kube_telemetry_pods",
		map[string]string{"cluster_uid": hmacPseudonym(t, testKeyHex, "cluster_uid", "3f1e2d4c-5b6a-4c8d-9e0f-1a2b3c4d5e6f")},
		map[string]any{"total": int64(90)}, gatherTime)
	testutil.RequireMetricsEqual(t, []telegraf.Metric{want}, r.metrics)
	require.Equal(t, int64(len(kubeTelemetryMetrics(3, gatherTime))-1), o.stats.droppedBy[telemetry.DroppedMeasurement].Get())
}
