package vmware_telemetry_listener

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/selfstat"
	"github.com/influxdata/telegraf/testutil"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// pipeline stands in for Telegraf's processors and outputs in the HTTP
// tests: it accepts (delivers) every tracked metric as soon as it arrives,
// unless held, in which case it keeps them until release or drop.
type pipeline struct {
	*testutil.Accumulator

	mu   sync.Mutex
	held bool
	kept []telegraf.Metric
}

func newPipeline() *pipeline {
	return &pipeline{Accumulator: &testutil.Accumulator{}}
}

func (p *pipeline) WithTracking(n int) telegraf.TrackingAccumulator {
	p.Accumulator.WithTracking(n)
	return p
}

func (p *pipeline) AddTrackingMetricGroup(group []telegraf.Metric) telegraf.TrackingID {
	id := p.Accumulator.AddTrackingMetricGroup(group)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held {
		p.kept = append(p.kept, group...)
		return id
	}
	for _, m := range group {
		m.Accept()
	}
	return id
}

func (p *pipeline) hold() {
	p.mu.Lock()
	p.held = true
	p.mu.Unlock()
}

// release writes what was held (Accept) and stops holding.
func (p *pipeline) release() { p.finish(true) }

// drop discards what was held, as a full output buffer would (Reject).
func (p *pipeline) drop() { p.finish(false) }

func (p *pipeline) finish(accept bool) {
	p.mu.Lock()
	kept := p.kept
	p.kept, p.held = nil, false
	p.mu.Unlock()
	for _, m := range kept {
		if accept {
			m.Accept()
		} else {
			m.Reject()
		}
	}
}

// stored counts the metrics of measurement name in the accumulator.
func (p *pipeline) stored(name string) int {
	n := 0
	for _, m := range p.GetTelegrafMetrics() {
		if m.Name() == name {
			n++
		}
	}
	return n
}

const (
	testToken       = "s3cret-agents-token"
	testEventsToken = "s3cret-events-token"
)

// testInstance is an instance pseudonym, as the output sends in _i.
const testInstance = "0123456789abcdef0123456789abcdef"

type testServer struct {
	t    testing.TB
	l    *Listener
	pipe *pipeline
	url  string
}

// startListener starts the plugin, as Telegraf would, on 127.0.0.1:0.
func startListener(t testing.TB, configure func(*Listener)) *testServer {
	t.Helper()
	l := inputs.Inputs["vmware_telemetry_listener"]().(*Listener)
	l.ServiceAddress = "127.0.0.1:0"
	l.Log = testutil.Logger{Name: "vmware_telemetry_listener", Quiet: true}
	l.Statistics = selfstat.NewCollector(map[string]string{"test": t.Name()})
	l.Tokens = tokens(testToken)
	l.EventsTokens = tokens(testEventsToken)
	l.AllowTokensOverHTTP = true // the tests' clients speak plain HTTP
	l.AckTimeout = configDuration(5 * time.Second)
	if configure != nil {
		configure(l)
	}
	require.NoError(t, l.Init())
	pipe := newPipeline()
	require.NoError(t, l.Start(pipe))
	ts := &testServer{t: t, l: l, pipe: pipe, url: "http://" + l.Addr().String()}
	t.Cleanup(func() {
		pipe.release()
		l.Stop()
		l.Statistics.UnregisterAll()
	})
	return ts
}

// post is one request; opts adjust it before sending.
type post struct {
	path     string // "" is the batches path, "events" the events path
	query    string
	body     []byte
	encoding string
	ctype    string
	level    string
	key      string
	token    string
	method   string
	// chunked hides the length, so only reading finds the body too big.
	chunked bool
}

func (s *testServer) do(p post) (*http.Response, string) {
	s.t.Helper()
	switch p.path {
	case "":
		p.path = s.l.Path
	case "events":
		p.path = s.l.EventsPath
	}
	if p.query == "" {
		p.query = "_c=tkgi-agent&_i=" + testInstance
	}
	if p.method == "" {
		p.method = http.MethodPost
	}
	if p.token == "" {
		p.token = testToken
		if p.path == s.l.EventsPath {
			p.token = testEventsToken
		}
	}
	var body io.Reader = bytes.NewReader(p.body)
	if p.chunked {
		body = io.MultiReader(bytes.NewReader(p.body)) // unknown length
	}
	req, err := http.NewRequest(p.method, s.url+p.path+"?"+p.query, body)
	require.NoError(s.t, err)
	if p.ctype != "-" {
		if p.ctype == "" {
			p.ctype = telemetry.ContentType
			if p.path == s.l.EventsPath {
				p.ctype = "application/json"
			}
		}
		req.Header.Set("Content-Type", p.ctype)
	}
	if p.encoding != "" {
		req.Header.Set("Content-Encoding", p.encoding)
	}
	if p.level != "-" {
		if p.level == "" {
			p.level = "standard"
		}
		req.Header.Set(telemetry.HeaderLevel, p.level)
	}
	if p.key != "" {
		req.Header.Set(telemetry.HeaderIdempotencyKey, p.key)
	}
	if p.token != "-" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return resp, string(b)
}

// requireServing posts a fresh valid batch and expects it stored: the
// server keeps serving after whatever the test did before.
func (s *testServer) requireServing() {
	s.t.Helper()
	before := s.pipe.stored("kube_telemetry_nodes")
	resp, body := s.do(post{body: zstdBytes(s.t, []byte(validLine(999))), encoding: "zstd"})
	require.Equal(s.t, http.StatusCreated, resp.StatusCode, body)
	require.Equal(s.t, before+1, s.pipe.stored("kube_telemetry_nodes"))
}

// validLine is one line protocol metric the dictionary allows at standard.
func validLine(i int) string {
	return fmt.Sprintf("kube_telemetry_nodes,cluster_uid=%s total=3i,ready=3i,not_ready=0i %d\n", pseudonym(i), 1_700_000_000_000_000_000+int64(i))
}

// pseudonym is a value shaped like the output's pseudonyms.
func pseudonym(i int) string {
	return fmt.Sprintf("%0*x", telemetry.PseudonymLength, i)
}

func validBatch(n int) []byte {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(validLine(i))
	}
	return []byte(b.String())
}

func zstdBytes(t testing.TB, data []byte) []byte {
	enc, err := zstd.NewWriter(nil)
	require.NoError(t, err)
	defer enc.Close()
	return enc.EncodeAll(data, nil)
}

func gzipBytes(t testing.TB, data []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, err := w.Write(data)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return buf.Bytes()
}

func zstdWriter(w io.Writer) (*zstd.Encoder, error) {
	return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest))
}

func gzipWriter(w io.Writer) *gzip.Writer {
	gw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	return gw
}
