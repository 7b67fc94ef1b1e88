package e2e_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/nodebatch"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

const (
	relayAgentToken          = "relay-e2e-agent-token"
	relayEventsToken         = "relay-e2e-events-token"
	relayUpstreamToken       = "relay-e2e-upstream-token"
	relayUpstreamEventsToken = "relay-e2e-upstream-events"
	relayEventsPath          = "/ph/api/hyper/events" // server.conf's events_path, the listener's default
	platformCollector        = "tkgi-api"
	platformInstance         = "api-1"
)

// relayRig is the relay as TKGI runs it: the installation's server
// (configs/server-jetstream.conf on a real three-node NATS cluster), the
// upstream (vendor's) server (configs/server.conf with its embedded
// de-duplication and file lake, ports moved off the defaults since both
// run here) and configs/relay-jetstream.conf between them.
type relayRig struct {
	*jetstreamFixture
	installPort, upPort, upMetrics int
	upDir, upConf                  string
}

// newRelayRig starts the installation's server; upstream lines are added
// to the upstream listener's settings (a smaller limit, say).
func newRelayRig(t *testing.T, upstream ...string) *relayRig {
	r := &relayRig{jetstreamFixture: newJetStreamFixture(t, relayAgentToken, relayEventsToken)}
	r.installPort, r.upPort, r.upMetrics = freePort(t), freePort(t), freePort(t)
	r.upDir = filepath.Join(r.dir, "upstream")
	require.NoError(t, os.MkdirAll(r.upDir, 0o700))
	shipped, err := os.ReadFile(filepath.Join(r.root, "configs", "server.conf"))
	require.NoError(t, err)
	conf := strings.Replace(string(shipped), `service_address = ":8443"`,
		fmt.Sprintf("service_address = \"127.0.0.1:%d\"\n%s", r.upPort, strings.Join(upstream, "\n")), 1)
	conf = strings.Replace(conf, `listen = ":9273"`, fmt.Sprintf(`listen = "127.0.0.1:%d"`, r.upMetrics), 1)
	require.NotEqual(t, string(shipped), conf)
	r.upConf = filepath.Join(r.dir, "upstream.conf")
	require.NoError(t, os.WriteFile(r.upConf, []byte(conf), 0o600))

	installMetrics := freePort(t)
	r.run("installation", "server-jetstream.conf",
		fmt.Sprintf("TELEMETRY_LISTEN=127.0.0.1:%d", r.installPort),
		fmt.Sprintf("TELEMETRY_METRICS_LISTEN=127.0.0.1:%d", installMetrics))
	waitPort(t, r.installPort)
	return r
}

func (r *relayRig) startUpstream(name string) *process {
	cmd := exec.Command(r.bin, "--config", r.upConf)
	cmd.Env = append(os.Environ(),
		"TELEMETRY_TOKEN="+relayUpstreamToken,
		"TELEMETRY_EVENTS_TOKEN="+relayUpstreamEventsToken,
		"TELEMETRY_TLS_CERT="+r.pki.CertFile,
		"TELEMETRY_TLS_KEY="+r.pki.KeyFile,
		"TELEMETRY_STATE_DIR="+r.upDir,
	)
	p := r.launch(name, cmd)
	waitPort(r.t, r.upPort)
	return p
}

// startRelay starts relay-jetstream.conf relaying batches and events to
// the upstream endpoints at base (the upstream, or a proxy in front of
// it), with the environment's extra variables.
func (r *relayRig) startRelay(name, base string, extra ...string) *process {
	metricsPort := freePort(r.t)
	p := r.run(name, "relay-jetstream.conf", append([]string{
		"TELEMETRY_UPSTREAM_URL=" + base + telemetry.DefaultPath,
		"TELEMETRY_UPSTREAM_TOKEN=" + relayUpstreamToken,
		"TELEMETRY_UPSTREAM_EVENTS_URL=" + base + relayEventsPath,
		"TELEMETRY_UPSTREAM_EVENTS_TOKEN=" + relayUpstreamEventsToken,
		"TELEMETRY_UPSTREAM_CA=" + r.pki.CertFile,
		fmt.Sprintf("TELEMETRY_METRICS_LISTEN=127.0.0.1:%d", metricsPort),
	}, extra...)...)
	waitPort(r.t, metricsPort)
	return p
}

func (r *relayRig) upstreamLake() string { return filepath.Join(r.upDir, "telemetry.jsonl") }

// postAll posts each body to the installation until it is stored, one
// goroutine per sender (the prefix of its keys before '-').
func (r *relayRig) postAll(client *http.Client, keys []string, post func(key string) error) {
	r.t.Helper()
	bySender := map[string][]string{}
	for _, key := range keys {
		sender, _, _ := strings.Cut(key, "-")
		bySender[sender] = append(bySender[sender], key)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(keys))
	for _, keys := range bySender {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, key := range keys {
				errs <- post(key)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(r.t, err)
	}
}

// relayBatches are the agents' batches of a relay test. Their node series
// name the batch, so a lake whose records carry no batch key (the
// upstream's) can be counted batch by batch.
type relayBatches struct {
	keys      []string
	bodies    map[string][]byte
	instances map[string]string
	batchOf   map[string]string
	metrics   int
}

func newRelayBatches(t *testing.T, agents, perAgent, metrics int) *relayBatches {
	enc, err := zstd.NewWriter(nil)
	require.NoError(t, err)
	rb := &relayBatches{bodies: map[string][]byte{}, instances: map[string]string{}, batchOf: map[string]string{}, metrics: metrics}
	for a := range agents {
		instance := fmt.Sprintf("%0*x", telemetry.InstanceIDLength, 2000+a)
		clusterUID := nodebatch.Pseudonym(uint64(2000 + a))
		for b := range perAgent {
			key := fmt.Sprintf("agent%d-batch%d", a, b)
			node := func(i int) string { return nodebatch.Pseudonym(uint64(a*100000 + b*100 + i + 1)) }
			for i := range metrics {
				rb.batchOf[node(i)] = key
			}
			rb.bodies[key] = enc.EncodeAll(nodebatch.Lines(clusterUID, node, b, metrics), nil)
			rb.instances[key] = instance
			rb.keys = append(rb.keys, key)
		}
	}
	return rb
}

func (rb *relayBatches) post(r *relayRig, client *http.Client, keys []string) {
	r.postAll(client, keys, func(key string) error {
		return postUntilStored(client, fmt.Sprintf("https://127.0.0.1:%d%s?_c=%s&_i=%s", r.installPort, telemetry.DefaultPath, collectorID, rb.instances[key]),
			relayAgentToken, key, rb.bodies[key])
	})
}

// count is the metrics of each batch in a lake.
func (rb *relayBatches) count(t *testing.T, lake string) map[string]int {
	n := map[string]int{}
	for _, m := range readLake(t, lake) {
		if m.Name == "kube_telemetry_node" {
			n[rb.batchOf[m.Tags["node"]]]++
		}
	}
	return n
}

// complete: every batch has all its metrics in counts.
func (rb *relayBatches) complete(counts map[string]int) bool {
	for _, key := range rb.keys {
		if counts[key] < rb.metrics {
			return false
		}
	}
	return true
}

// requireOnce: every batch exactly once in the lake, and nothing else.
func (rb *relayBatches) requireOnce(t *testing.T, lake string) {
	t.Helper()
	got := rb.count(t, lake)
	var wrong []string
	for _, key := range rb.keys {
		if got[key] != rb.metrics {
			wrong = append(wrong, fmt.Sprintf("%s: %d metrics", key, got[key]))
		}
	}
	require.Empty(t, wrong, "each batch in the upstream lake exactly once")
	require.Len(t, got, len(rb.keys), "nothing else in the upstream lake")
}

// platformEvents are the platform API's event requests: JSON arrays of
// events with an attribute of each type, posted with the events token.
type platformEvents struct {
	keys   []string
	bodies map[string][]byte
	// want is each event's lake record (canonical), by event id.
	want map[string]string
}

func newPlatformEvents(t *testing.T, prefix string, requests, perRequest int) *platformEvents {
	enc, err := zstd.NewWriter(nil)
	require.NoError(t, err)
	pe := &platformEvents{bodies: map[string][]byte{}, want: map[string]string{}}
	at := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	for q := range requests {
		key := fmt.Sprintf("%s-events%d", prefix, q)
		var docs []json.RawMessage
		for i := range perRequest {
			id := fmt.Sprintf("%s-%d-%d", prefix, q, i)
			doc := fmt.Sprintf(`{"type":"cluster.update.succeeded","time":%q,"id":%q,"severity":"warning","source":"tkgi-api",`+
				`"attributes":{"plan":"small \"b\" <c> é","worker_nodes":%d,"ratio":%d.0,"share":0.25,"upgrade":%t}}`,
				at.Add(time.Duration(q*perRequest+i)*time.Millisecond).Format(time.RFC3339Nano), id, 3+i, i, i%2 == 0)
			docs = append(docs, json.RawMessage(doc))
			m, err := telemetry.ParseEvent([]byte(doc), time.Time{})
			require.NoError(t, err)
			tags := m.Tags()
			tags["collector"], tags["instance"], tags["level"] = platformCollector, platformInstance, string(telemetry.LevelStandard)
			pe.want[id] = canonical(m.Name(), tags, m.Fields(), m.Time().UnixMilli())
		}
		body, err := json.Marshal(docs)
		require.NoError(t, err)
		pe.bodies[key] = enc.EncodeAll(body, nil)
		pe.keys = append(pe.keys, key)
	}
	return pe
}

func (pe *platformEvents) post(r *relayRig, client *http.Client, keys []string) {
	r.postAll(client, keys, func(key string) error {
		return postAsUntilStored(client, fmt.Sprintf("https://127.0.0.1:%d%s?_c=%s&_i=%s", r.installPort, relayEventsPath, platformCollector, platformInstance),
			relayEventsToken, key, telemetry.EventContentType, pe.bodies[key])
	})
}

// records is each event's records in a lake (canonical, without the
// receive time and the stream's batch key), by event id.
func (pe *platformEvents) records(t *testing.T, lake string) map[string][]string {
	out := map[string][]string{}
	for _, m := range readLake(t, lake) {
		if m.Name != telemetry.EventMeasurement {
			continue
		}
		fields := map[string]any{}
		for k, v := range m.RawFields {
			if k != telemetry.StampReceiveTime && k != telemetry.StampBatchKey {
				fields[k] = v
			}
		}
		id, _ := m.RawFields[telemetry.EventFieldID].(string)
		out[id] = append(out[id], canonical(m.Name, m.Tags, fields, m.Timestamp))
	}
	return out
}

// requireOnce: every event exactly once in the lake, as the installation's
// listener made it from the platform API's document, and nothing else.
func (pe *platformEvents) requireOnce(t *testing.T, lake string) {
	t.Helper()
	got := pe.records(t, lake)
	for id, want := range pe.want {
		require.Equal(t, []string{want}, got[id], "event %s once in %s, attributes intact", id, lake)
	}
	require.Len(t, got, len(pe.want), "no other events in %s", lake)
}

// TestRelayForwardsEachBatchOnceThroughProxy: the relay forwards every
// stored batch, and the platform API's events, through Debian's tinyproxy
// to the upstream. The upstream is down when the first batches are stored,
// is stopped and started again mid-run, and the relay is killed (SIGKILL)
// and started again: every batch the installation acknowledged is in the
// upstream lake exactly once, every event too with its attributes intact
// (as in the installation's own lake), and every relayed request went
// through the proxy.
func TestRelayForwardsEachBatchOnceThroughProxy(t *testing.T) {
	r := newRelayRig(t)

	proxyDir := filepath.Join(r.dir, "proxy")
	script := filepath.Join(r.root, "scripts", "tinyproxy.sh")
	out, err := exec.Command(script, "start", proxyDir, "allow").Output()
	require.NoError(t, err, "scripts/tinyproxy.sh start")
	t.Cleanup(func() { _ = exec.Command(script, "stop", proxyDir).Run() })
	proxyAddr := strings.TrimSpace(string(out))

	r.lake("installation-lake")
	upstream := fmt.Sprintf("https://127.0.0.1:%d", r.upPort)
	startRelay := func(name string) *process {
		return r.startRelay(name, upstream, "TELEMETRY_PROXY_URL=http://"+proxyAddr)
	}
	relay := startRelay("relay")

	batches := newRelayBatches(t, 4, 30, 20)
	events := newPlatformEvents(t, "platform", 6, 4)
	client := r.client(2)
	lake := r.upstreamLake()
	keys, third := batches.keys, len(batches.keys)/3
	evThird := len(events.keys) / 3

	// The upstream down: the relay keeps the batches in the stream.
	batches.post(r, client, keys[:third])
	events.post(r, client, events.keys[:evThird])
	require.Eventually(t, func() bool { return strings.Contains(relay.logText(), "Relaying batch") }, time.Minute, 200*time.Millisecond,
		"the relay reports the upstream failing")
	up := r.startUpstream("upstream")
	require.Eventually(t, func() bool { return len(batches.count(t, lake)) >= third/2 }, 3*time.Minute, 200*time.Millisecond)

	// The relay killed mid-stream, batches stored meanwhile, started again.
	relay.kill()
	batches.post(r, client, keys[third:2*third])
	events.post(r, client, events.keys[evThird:2*evThird])
	relay = startRelay("relay-2")
	// What the killed relay held comes again after ack_wait (1m).
	require.Eventually(t, func() bool { return len(batches.count(t, lake)) >= 2*third-third/2 }, 3*time.Minute, 200*time.Millisecond)

	// The upstream stopped and started again while batches keep coming.
	up.stop()
	batches.post(r, client, keys[2*third:])
	events.post(r, client, events.keys[2*evThird:])
	r.startUpstream("upstream-2")

	require.Eventually(t, func() bool {
		return batches.complete(batches.count(t, lake)) && len(events.records(t, lake)) >= len(events.want)
	}, 3*time.Minute, 500*time.Millisecond, "every acknowledged batch and event reaches the upstream lake")
	time.Sleep(3 * time.Second) // a late second copy would land within the lake's flush_interval
	batches.requireOnce(t, lake)
	events.requireOnce(t, lake)
	events.requireOnce(t, r.lakeFile())

	proxyLog, err := os.ReadFile(filepath.Join(proxyDir, "tinyproxy.log"))
	require.NoError(t, err)
	require.Contains(t, string(proxyLog), fmt.Sprintf("CONNECT 127.0.0.1:%d", r.upPort), "the relay went through the proxy")
	require.Contains(t, relay.logText(), "Relaying stream")
	require.Contains(t, relay.logText(), "Relaying platform events to "+upstream+relayEventsPath)
}

// fault is what faultProxy does with one try.
type fault int

const (
	faultNone    fault = iota
	faultRefused       // answered 503 + Retry-After, never forwarded
	faultLost          // forwarded (the upstream stores it), its answer replaced by 503 + Retry-After
)

type faultKey struct{}

// faultProxy is an HTTPS reverse proxy between the relay and the upstream,
// as a load balancer in front of the vendor's server that sheds load or
// loses answers. The first try of each request (by endpoint and
// Idempotency-Key) is, in turn, refused, lost, or passed; later tries pass.
type faultProxy struct {
	*httptest.Server
	mu      sync.Mutex
	plan    map[string]fault // first try's fault, by path and key
	tries   map[string]int
	counts  map[fault]int
	lost    map[string]bool // lost tries, by path and key
	dupLost map[string]bool // lost ones a later try was answered 200 duplicate
}

func newFaultProxy(t *testing.T, r *relayRig) *faultProxy {
	target, err := url.Parse(fmt.Sprintf("https://127.0.0.1:%d", r.upPort))
	require.NoError(t, err)
	fp := &faultProxy{plan: map[string]fault{}, tries: map[string]int{}, counts: map[fault]int{},
		lost: map[string]bool{}, dupLost: map[string]bool{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: r.pki.Pool, MinVersion: tls.VersionTLS12},
		},
		ModifyResponse: func(resp *http.Response) error {
			id := resp.Request.URL.Path + " " + resp.Request.Header.Get(telemetry.HeaderIdempotencyKey)
			fp.mu.Lock()
			defer fp.mu.Unlock()
			if resp.Request.Context().Value(faultKey{}) == faultLost {
				if resp.StatusCode != http.StatusCreated {
					return nil // not stored: nothing to lose
				}
				fp.counts[faultLost]++
				fp.lost[id] = true
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				resp.StatusCode = http.StatusServiceUnavailable
				resp.Header = http.Header{"Retry-After": {"1"}, "Content-Type": {"text/plain"}}
				resp.Body = io.NopCloser(strings.NewReader("the answer was lost\n"))
				resp.ContentLength = -1
				return nil
			}
			if fp.lost[id] && resp.StatusCode == http.StatusOK && resp.Header.Get(telemetry.HeaderDuplicate) == "true" {
				fp.dupLost[id] = true
			}
			return nil
		},
	}
	fp.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		id := req.URL.Path + " " + req.Header.Get(telemetry.HeaderIdempotencyKey)
		fp.mu.Lock()
		if _, ok := fp.plan[id]; !ok {
			fp.plan[id] = []fault{faultRefused, faultLost, faultNone}[len(fp.plan)%3]
		}
		fp.tries[id]++
		f := faultNone
		if fp.tries[id] == 1 {
			f = fp.plan[id]
		}
		if f == faultRefused {
			fp.counts[faultRefused]++
		}
		fp.mu.Unlock()
		if f == faultRefused {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "overloaded, retry later", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), faultKey{}, f)))
	}))
	fp.TLS = &tls.Config{Certificates: []tls.Certificate{r.pki.Cert}, MinVersion: tls.VersionTLS12}
	fp.StartTLS()
	t.Cleanup(fp.Close)
	return fp
}

// TestRelayRetriesUpstream503s: between the relay and the upstream, a
// proxy answers 503 with Retry-After to some first tries and, for others,
// lets the upstream store the batch and then answers 503 (the answer
// lost): the relay tries each again, the upstream answers the lost ones
// "200 duplicate", and every batch and event is in the upstream lake
// exactly once.
func TestRelayRetriesUpstream503s(t *testing.T) {
	r := newRelayRig(t)
	r.startUpstream("upstream")
	fp := newFaultProxy(t, r)
	// Straight to the fault proxy, whatever proxy the machine has.
	relay := r.startRelay("relay", fp.URL, "TELEMETRY_PROXY_URL=", "HTTPS_PROXY=", "https_proxy=", "NO_PROXY=127.0.0.1", "no_proxy=127.0.0.1")

	batches := newRelayBatches(t, 3, 8, 10)
	events := newPlatformEvents(t, "platform", 3, 2)
	client := r.client(2)
	batches.post(r, client, batches.keys)
	events.post(r, client, events.keys)

	lake := r.upstreamLake()
	require.Eventually(t, func() bool {
		return batches.complete(batches.count(t, lake)) && len(events.records(t, lake)) >= len(events.want)
	}, 45*time.Second, 200*time.Millisecond, "every batch and event reaches the upstream lake")
	// Every lost answer's retry was answered duplicate (the relay then
	// acknowledged it), so nothing else is on its way.
	require.Eventually(t, func() bool {
		fp.mu.Lock()
		defer fp.mu.Unlock()
		return len(fp.dupLost) == len(fp.lost)
	}, 15*time.Second, 100*time.Millisecond, "each lost answer's retry is answered 200 duplicate")
	time.Sleep(2 * time.Second) // a second copy would land within the lake's flush_interval
	batches.requireOnce(t, lake)
	events.requireOnce(t, lake)

	fp.mu.Lock()
	refused, lost := fp.counts[faultRefused], fp.counts[faultLost]
	fp.mu.Unlock()
	t.Logf("injected: %d tries refused with 503, %d stored and answered 503, of %d requests", refused, lost, len(fp.plan))
	require.Positive(t, refused, "tries refused")
	require.Positive(t, lost, "tries stored with their answer lost")
	require.Regexp(t, `Relaying batch \S+ failed: the upstream answered 503: .*; keeping it in the stream, retrying in 1s`, relay.logText(),
		"the operator-facing warning")
}

// An upstream whose limit is smaller than the installation's: it answers
// 413 to the batches and event requests as the agents sent them, and the
// relay sends them in halves (derived keys) until the parts fit; every
// metric and event is in the upstream lake exactly once.
func TestRelaySplitsWhatTheUpstreamFindsTooLarge(t *testing.T) {
	r := newRelayRig(t, "  max_batch_metrics = 4")
	r.startUpstream("upstream")
	direct := []string{"TELEMETRY_PROXY_URL=", "HTTPS_PROXY=", "https_proxy=", "NO_PROXY=127.0.0.1", "no_proxy=127.0.0.1"}
	relay := r.startRelay("relay", fmt.Sprintf("https://127.0.0.1:%d", r.upPort), direct...)

	batches := newRelayBatches(t, 2, 4, 10)
	events := newPlatformEvents(t, "platform", 2, 6)
	client := r.client(2)
	batches.post(r, client, batches.keys)
	events.post(r, client, events.keys)

	lake := r.upstreamLake()
	require.Eventually(t, func() bool {
		return batches.complete(batches.count(t, lake)) && len(events.records(t, lake)) >= len(events.want)
	}, 45*time.Second, 200*time.Millisecond, "every batch and event reaches the upstream lake")
	time.Sleep(2 * time.Second) // a second copy would land within the lake's flush_interval
	batches.requireOnce(t, lake)
	events.requireOnce(t, lake)

	// Each batch of 10 was halved three times (10, then both 5s) into parts
	// of 2 and 3 metrics, each under a key of its own; each event request
	// of 6 once, into two of 3.
	halvings := strings.Count(relay.logText(), "is too large for the upstream (413): relaying it in halves")
	require.Equal(t, len(batches.keys)*3+len(events.keys), halvings, "the halvings")
	require.NotContains(t, relay.logText(), "Dropping")
}
