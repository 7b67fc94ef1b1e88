package vmware_telemetry

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

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

// embeddable returns a PII value of a kind that fits the character set of
// the version-like keep patterns, so that appended to a legitimate value it
// still matches the pattern: host names, addresses and UIDs. (Bare words
// cannot be told from build tags; the README says so.)
func (g piiGen) embeddable() string {
	for {
		kind, v := g.value()
		switch kind {
		case "hostname", "ipv4", "ipv6", "email", "uid":
			return v
		}
	}
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
	// A legitimate value as is, or with PII hidden in a suffix that the
	// value's pattern accepts ("v1.36.3+node-17.corp.example.com").
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

	const rounds = 150
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
