package telemetry_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testversions"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// position is a tag or field of the dictionary that a version scheme
// governs, with a field the line needs to be sent at all.
type position struct {
	measurement, key string
	tag              bool
	filler           string // an int or bool field of the measurement
	fillerValue      any
}

// versionPositions lists, per scheme, every tag and field that uses it.
func versionPositions(t *testing.T, d *telemetry.Dictionary) map[string][]position {
	t.Helper()
	out := map[string][]position{}
	for _, name := range d.MeasurementNames() {
		m := d.Measurements[name]
		p := position{measurement: name}
		for _, k := range m.FieldKeys() {
			switch m.Fields[k].Type {
			case telemetry.TypeInt:
				p.filler, p.fillerValue = k, int64(1)
			case telemetry.TypeBool:
				p.filler, p.fillerValue = k, true
			default:
				continue
			}
			break
		}
		require.NotEmpty(t, p.filler, "measurement %s has no int or bool field", name)
		for _, k := range m.TagKeys() {
			if s := m.Tags[k].Version; s != "" {
				p.key, p.tag = k, true
				out[s] = append(out[s], p)
			}
		}
		for _, k := range m.FieldKeys() {
			if s := m.Fields[k].Version; s != "" {
				p.key, p.tag = k, false
				out[s] = append(out[s], p)
			}
		}
	}
	return out
}

func (p position) metric(value string) telegraf.Metric {
	tags := map[string]string{}
	fields := map[string]any{p.filler: p.fillerValue}
	if p.tag {
		tags[p.key] = value
	} else {
		fields[p.key] = value
	}
	return metric.New(p.measurement, tags, fields, time.Unix(1700000000, 0))
}

// wire runs m through the agent's policy and encoder, as the output does,
// and returns the line protocol bytes sent and the value sent at p.
func wire(t *testing.T, pol *telemetry.Policy, p position, m telegraf.Metric) ([]byte, string) {
	t.Helper()
	var v telemetry.View
	require.Equal(t, telemetry.Sent, pol.View(m, &v))
	enc := telemetry.NewEncoder()
	require.NoError(t, enc.AppendView(&v))
	sent := ""
	for _, tg := range v.Tags {
		if p.tag && tg.Key == p.key {
			sent = tg.Value
		}
	}
	for _, f := range v.Fields {
		if !p.tag && f.Key == p.key {
			sent = f.Value.(string)
		}
	}
	return bytes.Clone(enc.Bytes()), sent
}

// listener decodes bytes as the listener does and checks them against the
// dictionary at standard.
type listener struct {
	dict *telemetry.Dictionary
	dec  *telemetry.Decoder
}

func newListener(t *testing.T, d *telemetry.Dictionary) *listener {
	t.Helper()
	dec, err := telemetry.NewDecoder(1<<20, 64<<10)
	require.NoError(t, err)
	return &listener{dict: d, dec: dec}
}

func (l *listener) accepts(t *testing.T, data []byte) error {
	t.Helper()
	metrics, _, err := l.dec.Decode(data, telemetry.EncodingIdentity, time.Now())
	require.NoError(t, err)
	return l.dict.NewBatchChecker().Check(metrics, telemetry.LevelStandard)
}

func standardPolicy(t *testing.T, d *telemetry.Dictionary) *telemetry.Policy {
	t.Helper()
	ps, err := telemetry.NewPseudonymizer(bytes.Repeat([]byte{7}, 32))
	require.NoError(t, err)
	pol, err := telemetry.NewPolicy(d, telemetry.LevelStandard, ps, telemetry.Identity{})
	require.NoError(t, err)
	return pol
}

// Every real-world version string of the corpus is sent as the corpus says
// (as is, with its vendor token, for all but developers' own builds) at
// every position of its scheme, through the policy and encoder; the
// listener accepts what was sent, and refuses the raw string exactly when
// it was not sent as is.
func TestVersionCorpusKept(t *testing.T) {
	d := telemetry.DefaultDictionary()
	pol := standardPolicy(t, d)
	lis := newListener(t, d)
	positions := versionPositions(t, d)
	corpus := testversions.Corpus()
	require.GreaterOrEqual(t, len(corpus), 200)

	perScheme := map[string]int{}
	tokensSeen := map[string]map[int]bool{}
	for _, v := range corpus {
		s := d.Versions[v.Scheme]
		require.NotNil(t, s, "versions.txt:%d: scheme %q not in the dictionary", v.Line, v.Scheme)
		require.NotEmpty(t, positions[v.Scheme], "scheme %s is used by no tag or field", v.Scheme)
		perScheme[v.Scheme]++
		for i, tok := range s.Tokens {
			if _, rest, _, ok := s.Split(v.Value); ok && rest != "" && regexpFull(tok.Token, rest) {
				if tokensSeen[v.Scheme] == nil {
					tokensSeen[v.Scheme] = map[int]bool{}
				}
				tokensSeen[v.Scheme][i] = true
			}
		}
		for _, p := range positions[v.Scheme] {
			raw := p.metric(v.Value)
			data, sent := wire(t, pol, p, raw)
			require.Equal(t, v.Sent, sent, "versions.txt:%d %s %s: %q", v.Line, p.measurement, p.key, v.Value)
			require.NoError(t, lis.accepts(t, data), "versions.txt:%d: the listener refuses what the agent sent: %s", v.Line, data)
			if v.Sent == v.Value {
				require.NoError(t, d.Check(raw, telemetry.LevelStandard), "versions.txt:%d", v.Line)
			} else {
				require.ErrorIs(t, d.Check(raw, telemetry.LevelStandard), telemetry.ErrNotAllowed, "versions.txt:%d", v.Line)
			}
		}
	}
	for _, name := range d.VersionSchemeNames() {
		require.NotZero(t, perScheme[name], "the corpus has no string of scheme %s", name)
		var unseen []string
		for i, tok := range d.Versions[name].Tokens {
			if !tokensSeen[name][i] {
				unseen = append(unseen, tok.Token)
			}
		}
		t.Logf("%s: %d corpus strings, %d of %d tokens seen in them; not in the corpus: %q",
			name, perScheme[name], len(tokensSeen[name]), len(d.Versions[name].Tokens), unseen)
	}
}

func regexpFull(pattern, s string) bool {
	return regexp.MustCompile(`^(?:` + pattern + `)$`).MatchString(s)
}

// The privacy property for versions: customer words planted into every
// corpus string, in every position and form a build suffix allows, are
// never in the bytes the agent sends at standard, while the string's core
// still is; the listener accepts what the agent sends and refuses the
// planted strings themselves.
func TestVersionPlantedWordsNeverSent(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0x7e51))
	d := telemetry.DefaultDictionary()
	pol := standardPolicy(t, d)
	lis := newListener(t, d)
	positions := versionPositions(t, d)

	words := 12
	if testing.Short() {
		words = 1
	}
	planted, refused, coresKept := 0, 0, 0
	for _, v := range testversions.Corpus() {
		s := d.Versions[v.Scheme]
		core, _, _, ok := s.Split(v.Value)
		require.True(t, ok, "versions.txt:%d: %q has no core", v.Line, v.Value)
		for _, p := range positions[v.Scheme] {
			clean, _ := wire(t, pol, p, p.metric(v.Value))
			clean = bytes.ToLower(clean)
			// Without its vendor token a core that looks like an address
			// (Azure Linux's kernel 6.6.130.1-3) is not sent either.
			_, bare := wire(t, pol, p, p.metric(core))
			bareKept := bare == core
			for _, word := range testversions.Words(r, words) {
				if bytes.Contains(clean, []byte(strings.ToLower(word))) {
					continue // the word is part of the legitimate line ("kernel"); proves nothing
				}
				for _, pl := range testversions.Plant(v, core, word) {
					raw := p.metric(pl.Value)
					data, sent := wire(t, pol, p, raw)
					planted++
					msg := fmt.Sprintf("versions.txt:%d %s.%s, %s: %q sent as %q", v.Line, p.measurement, p.key, pl.Form, pl.Value, sent)
					require.NotContains(t, strings.ToLower(string(data)), strings.ToLower(word), msg)
					if pl.KeepsCore && bareKept {
						require.True(t, strings.HasPrefix(sent, core) && sent != telemetry.OtherValue, "core lost: "+msg)
						coresKept++
					} else {
						require.Equal(t, telemetry.OtherValue, sent, msg)
					}
					require.NoError(t, lis.accepts(t, data), msg)
					require.ErrorIs(t, d.Check(raw, telemetry.LevelStandard), telemetry.ErrNotAllowed, "the listener accepts the planted string: "+msg)
					refused++
				}
			}
		}
	}
	require.Greater(t, planted, 5000*words/3, "too few planted strings to mean anything")
	t.Logf("%d planted strings: 0 words sent, %d cores kept, %d refused as received raw by the listener's check", planted, coresKept, refused)
}
