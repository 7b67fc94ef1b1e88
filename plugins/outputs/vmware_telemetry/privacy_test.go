package vmware_telemetry

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testversions"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// piiGen makes values shaped like personal or identifying data. Letters
// outside a-f keep short values from matching hex pseudonyms by chance.
type piiGen struct{ r *rand.Rand }

func (g piiGen) word(n int) string {
	const letters = "ghijklmnopqrstuvwxyz"
	var b strings.Builder
	for range n {
		b.WriteByte(letters[g.r.IntN(len(letters))])
	}
	return b.String()
}

func (g piiGen) value() (kind, v string) {
	switch g.r.IntN(8) {
	case 0:
		return "hostname", fmt.Sprintf("%s-%02d.%s.example.com", g.word(5), g.r.IntN(100), g.word(4))
	case 1:
		return "ipv4", fmt.Sprintf("10.%d.%d.%d", g.r.IntN(256), g.r.IntN(256), 1+g.r.IntN(254))
	case 2:
		return "ipv6", fmt.Sprintf("fd00:%x:%x::%x", g.r.IntN(1<<16), g.r.IntN(1<<16), 1+g.r.IntN(1<<16))
	case 3:
		return "email", fmt.Sprintf("%s.%s@%s.example.org", g.word(4), g.word(6), g.word(5))
	case 4:
		// At least 8 letters: shorter random words turn up inside key
		// names ("ovi" in "provisioner") and would prove nothing.
		return "user", g.word(8 + g.r.IntN(4))
	case 5:
		return "namespace", fmt.Sprintf("%s-%s-%d", g.word(6), g.word(4), g.r.IntN(10))
	case 6:
		return "pod", fmt.Sprintf("%s-%x-%s", g.word(5), 0x10000000+g.r.IntN(0x0fffffff), g.word(5))
	default:
		return "uid", fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", g.r.Uint32(), g.r.IntN(1<<16), g.r.IntN(1<<12), 0x8000+g.r.IntN(1<<14), g.r.Uint64()&(1<<48-1))
	}
}

// embeddable returns a PII value to hide in a suffix of a legitimate value.
// Every kind qualifies: versions keep only their core and a distribution's
// token, other kept strings their listed values or pattern, so a bare word
// ("v1.36.3+jsmith") is caught as surely as a host name.
func (g piiGen) embeddable() string {
	_, v := g.value()
	return v
}

// randomMetrics builds metrics of every dictionary measurement (and some
// unknown ones) where each tag and field position holds, at random, a PII
// value or a legitimate one; it returns the PII values planted.
func randomMetrics(g piiGen, d *telemetry.Dictionary, legit map[string]telegraf.Metric) ([]telegraf.Metric, []string) {
	var planted []string
	pii := func() string {
		_, v := g.value()
		planted = append(planted, v)
		return v
	}
	// A legitimate value as is, or with PII hidden in a suffix
	// ("v1.36.3+node-17.corp.example.com", "5.15.0-91-generic-jsmith").
	legitOrEmbedded := func(v any) any {
		s, ok := v.(string)
		if !ok || g.r.IntN(2) == 0 {
			return v
		}
		p := g.embeddable()
		planted = append(planted, p)
		return s + []string{"-", "+", "_", " "}[g.r.IntN(4)] + p
	}
	var out []telegraf.Metric
	names := append([]string{}, d.MeasurementNames()...)
	names = append(names, "kube_inventory_pod", "unknown_"+g.word(5))
	for _, name := range names {
		base := legit[name]
		tags := map[string]string{}
		fields := map[string]any{}
		// Every common tag, including identity and drop ones.
		for _, k := range d.CommonTagKeys() {
			tags[k] = pii()
		}
		if m := d.Measurements[name]; m != nil {
			for _, k := range m.TagKeys() {
				if v, ok := base.GetTag(k); ok && g.r.IntN(3) == 0 {
					tags[k] = legitOrEmbedded(v).(string)
				} else {
					tags[k] = pii()
				}
			}
			for _, k := range m.FieldKeys() {
				if v, ok := base.GetField(k); ok && g.r.IntN(3) == 0 {
					fields[k] = legitOrEmbedded(v)
				} else {
					fields[k] = pii()
				}
			}
		}
		// Positions nobody listed.
		tags["namespace"] = pii()
		tags[g.word(6)] = pii()
		fields["owner"] = pii()
		fields[g.word(7)] = pii()
		fields["keepalive"] = int64(1) // so unknown measurements still have a valid field
		out = append(out, metric.New(name, tags, fields, gatherTime.Add(time.Duration(g.r.IntN(1000))*time.Second)))
	}
	return out, planted
}

func legitByName() map[string]telegraf.Metric {
	out := map[string]telegraf.Metric{}
	for _, m := range kubeTelemetryMetrics(4, gatherTime) {
		if _, ok := out[m.Name()]; !ok {
			out[m.Name()] = m
		}
	}
	out["kube_inventory_pod"] = metric.New("kube_inventory_pod", nil, map[string]any{"restarts": int64(1)}, gatherTime)
	return out
}

func unkeyedHashes(v string) []string {
	sum := sha256.Sum256([]byte(v))
	full := hex.EncodeToString(sum[:])
	return []string{full, full[:telemetry.PseudonymLength], strings.ToUpper(full)}
}

// The privacy property: whatever PII-shaped value sits in whatever tag or
// field position, at standard neither the value nor its unkeyed SHA-256
// appears anywhere in what is sent; at enhanced the payload is the
// standard one plus the configured identity tags, nothing else.
func TestPrivacyProperty(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	g := piiGen{rand.New(rand.NewPCG(seed, 0x5eed))}
	d := telemetry.DefaultDictionary()
	legit := legitByName()
	srv := newServer(t, "")
	key := writeKey(t, testKeyHex)

	std, _ := newOutput(t, srv.endpoint(), key)
	start(t, std)
	enh, _ := newOutput(t, srv.endpoint(), key, withLevel("enhanced"), withIdentity)
	start(t, enh)
	identity := map[string]string{telemetry.TagCustomerNumber: "C-0042", telemetry.TagInstallationLabel: "lab-east", telemetry.TagInstallationType: "production"}

	rounds := 150
	if testing.Short() {
		rounds = 30
	}
	planted := 0
	for round := range rounds {
		in, pii := randomMetrics(g, d, legit)
		planted += len(pii)
		before := len(srv.reqs())
		require.NoError(t, std.Write(in))
		require.NoError(t, enh.Write(in))
		reqs := srv.reqs()[before:]
		require.Len(t, reqs, 2, "round %d", round)
		stdReq, enhReq := reqs[0], reqs[1]
		require.Equal(t, "standard", stdReq.header.Get(telemetry.HeaderLevel))

		for _, r := range reqs {
			wire := string(r.body) + " " + r.query.Encode()
			for name, vals := range r.header {
				wire += " " + name + ": " + strings.Join(vals, ",")
			}
			for _, v := range pii {
				require.False(t, strings.Contains(wire, v), "round %d: %s payload contains %q", round, r.header.Get(telemetry.HeaderLevel), v)
				for _, h := range unkeyedHashes(v) {
					require.False(t, strings.Contains(wire, h), "round %d: payload contains the unkeyed SHA-256 of %q", round, v)
				}
			}
		}
		for _, v := range identity {
			require.False(t, strings.Contains(string(stdReq.body), v), "standard carries identity %q", v)
		}

		// Enhanced = standard + identity tags.
		require.Len(t, enhReq.metrics, len(stdReq.metrics))
		stripped := make([]telegraf.Metric, 0, len(enhReq.metrics))
		for _, m := range enhReq.metrics {
			for k, v := range identity {
				got, ok := m.GetTag(k)
				require.True(t, ok, "enhanced metric %s lacks %s", m.Name(), k)
				require.Equal(t, v, got)
			}
			c := m.Copy()
			for k := range identity {
				c.RemoveTag(k)
			}
			stripped = append(stripped, c)
		}
		testutil.RequireMetricsEqual(t, stdReq.metrics, stripped)
	}
	t.Logf("%d rounds, %d PII values planted, none sent", rounds, planted)
}

// versionPosition is a tag or field the dictionary reads with a version
// scheme.
type versionPosition struct {
	measurement, key string
	tag              bool
}

// versionPositions is every position of every scheme;
// TestVersionPositionsCoverDictionary keeps it complete.
var versionPositions = map[string][]versionPosition{
	"kubernetes": {{"kube_telemetry_cluster", "server_version", false}, {"kube_telemetry_node", "kubelet_version", true}},
	"kernel":     {{"kube_telemetry_node", "kernel_version", true}},
	"runtime":    {{"kube_telemetry_node", "container_runtime_version", true}},
	"os_image":   {{"kube_telemetry_node", "os_image", true}},
	"image_tag":  {{"kube_telemetry_addon", "version", true}},
}

func TestVersionPositionsCoverDictionary(t *testing.T) {
	d := telemetry.DefaultDictionary()
	got := map[string][]versionPosition{}
	for _, name := range d.MeasurementNames() {
		m := d.Measurements[name]
		for _, k := range m.TagKeys() {
			if s := m.Tags[k].Version; s != "" {
				got[s] = append(got[s], versionPosition{name, k, true})
			}
		}
		for _, k := range m.FieldKeys() {
			if s := m.Fields[k].Version; s != "" {
				got[s] = append(got[s], versionPosition{name, k, false})
			}
		}
	}
	require.Len(t, got, len(versionPositions))
	for s, ps := range got {
		require.ElementsMatch(t, versionPositions[s], ps, s)
	}
}

func (p versionPosition) value(m telegraf.Metric) (string, bool) {
	if p.tag {
		return m.GetTag(p.key)
	}
	v, ok := m.GetField(p.key)
	s, _ := v.(string)
	return s, ok
}

func (p versionPosition) set(m telegraf.Metric, v string) {
	if p.tag {
		m.AddTag(p.key, v)
		return
	}
	m.AddField(p.key, v)
}

// plantedWrite is one metric the version test writes and what it expects.
type plantedWrite struct {
	pos       versionPosition
	planted   string
	word      string
	core      string // "" when the core need not survive (a prefix, an address-like core)
	wantExact string // the corpus string's expected value, when nothing is planted
}

// The privacy property for version strings, end to end through the
// output: every real-world string of the corpus is sent as it is (core and
// vendor token), and with customer words planted into it in every position
// and form, at standard, no planted word is in the bytes the output sends
// (decompressed body, query, headers), the core still is, and the test
// server's listener check accepts every metric.
func TestPrivacyVersionStrings(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0x7e52))
	d := telemetry.DefaultDictionary()
	legit := legitByName()
	srv := newServer(t, "")
	out, _ := newOutput(t, srv.endpoint(), writeKey(t, testKeyHex))
	start(t, out)

	words := 6
	if testing.Short() {
		words = 2
	}
	var writes []plantedWrite
	for _, v := range testversions.Corpus() {
		s := d.Versions[v.Scheme]
		core, _, _, ok := s.Split(v.Value)
		require.True(t, ok, "versions.txt:%d", v.Line)
		for _, p := range versionPositions[v.Scheme] {
			writes = append(writes, plantedWrite{pos: p, planted: v.Value, wantExact: v.Sent})
			// Without its vendor token a core that looks like an address
			// (Azure Linux's kernel 6.6.130.1-3) is not sent either.
			bare := legit[p.measurement].Copy()
			p.set(bare, core)
			bareKept := d.Check(bare, telemetry.LevelStandard) == nil
			for _, word := range testversions.Words(r, words) {
				for _, pl := range testversions.Plant(v, core, word) {
					w := plantedWrite{pos: p, planted: pl.Value, word: word}
					if pl.KeepsCore && bareKept {
						w.core = core
					}
					writes = append(writes, w)
				}
			}
		}
	}

	const perWrite = 2000
	checked, planted := 0, 0
	for start := 0; start < len(writes); start += perWrite {
		batch := writes[start:min(start+perWrite, len(writes))]
		in := make([]telegraf.Metric, len(batch))
		for i, w := range batch {
			m := legit[w.pos.measurement].Copy()
			w.pos.set(m, w.planted)
			in[i] = m
		}
		before := len(srv.reqs())
		require.NoError(t, out.Write(in))
		var got []telegraf.Metric
		var wire strings.Builder
		for _, req := range srv.reqs()[before:] {
			require.Equal(t, http.StatusCreated, req.status)
			got = append(got, req.metrics...)
			wire.Write(req.body)
			wire.WriteString(" " + req.query.Encode())
			for name, vals := range req.header {
				wire.WriteString(" " + name + ": " + strings.Join(vals, ","))
			}
		}
		sent := strings.ToLower(wire.String())
		require.Len(t, got, len(batch), "every metric is sent, in order")
		for i, w := range batch {
			value, ok := w.pos.value(got[i])
			require.True(t, ok, "%s.%s missing", w.pos.measurement, w.pos.key)
			if w.word == "" {
				require.Equal(t, w.wantExact, value, "corpus string %q", w.planted)
				continue
			}
			planted++
			require.NotContains(t, strings.ToLower(value), strings.ToLower(w.word), "%q sent as %q", w.planted, value)
			if w.core != "" {
				require.True(t, strings.HasPrefix(value, w.core), "%q sent as %q: core %q lost", w.planted, value, w.core)
			}
			checked++
		}
		// And nowhere else in what left: words that are part of the
		// legitimate payload ("kernel") prove nothing and are skipped.
		seen := map[string]bool{}
		for _, w := range batch {
			if w.word == "" || seen[w.word] {
				continue
			}
			seen[w.word] = true
			if !legitContains(legit, w.word) {
				require.NotContains(t, sent, strings.ToLower(w.word), "planted in %q", w.planted)
			}
		}
	}
	t.Logf("%d corpus strings and %d planted strings written; 0 planted words sent, every core kept where expected", len(writes)-planted, planted)
}

// legitContains reports whether word is in the legitimate metrics' names,
// keys or values, as sent.
func legitContains(legit map[string]telegraf.Metric, word string) bool {
	word = strings.ToLower(word)
	for name, m := range legit {
		if strings.Contains(name, word) {
			return true
		}
		for _, tg := range m.TagList() {
			if strings.Contains(strings.ToLower(tg.Key+"="+tg.Value), word) {
				return true
			}
		}
		for _, f := range m.FieldList() {
			if strings.Contains(strings.ToLower(fmt.Sprint(f.Key, "=", f.Value)), word) {
				return true
			}
		}
	}
	return false
}
