package e2e_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testbin"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testkube"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testnats"
	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testpki"
	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// jetstreamFixture runs the shipped JetStream roles (server-jetstream.conf,
// lake-jetstream.conf, relay-jetstream.conf) on a real three-node NATS
// cluster, each with the environment its deployment gives it.
type jetstreamFixture struct {
	*fixture
	cluster    *testnats.Cluster
	pki        *testpki.PKI
	root       string
	agentToken string
	env        []string
}

func newJetStreamFixture(t *testing.T, agentToken, eventsToken string) *jetstreamFixture {
	j := &jetstreamFixture{
		fixture:    &fixture{t: t, bin: testbin.Path(t), dir: t.TempDir()},
		cluster:    testnats.Start(t),
		pki:        testpki.New(t),
		root:       testkube.RepoRoot(),
		agentToken: agentToken,
	}
	j.env = append(os.Environ(),
		"TELEMETRY_TOKEN="+agentToken,
		"TELEMETRY_EVENTS_TOKEN="+eventsToken,
		"TELEMETRY_TLS_CERT="+j.pki.CertFile,
		"TELEMETRY_TLS_KEY="+j.pki.KeyFile,
		"TELEMETRY_NATS_SERVERS="+strings.Join(j.cluster.URLs(), ","),
		"TELEMETRY_STATE_DIR="+j.dir,
	)
	return j
}

// run starts the shipped configs/<conf> with the fixture's environment and
// extra variables.
func (j *jetstreamFixture) run(name, conf string, extra ...string) *process {
	cmd := exec.Command(j.bin, "--config", filepath.Join(j.root, "configs", conf))
	cmd.Env = append(append([]string{}, j.env...), extra...)
	return j.launch(name, cmd)
}

// replica starts one listener replica on free ports and returns its
// batch endpoint's port once it listens.
func (j *jetstreamFixture) replica(name string) (*process, int) {
	port, metricsPort := freePort(j.t), freePort(j.t)
	p := j.run(name, "server-jetstream.conf",
		fmt.Sprintf("TELEMETRY_LISTEN=127.0.0.1:%d", port),
		fmt.Sprintf("TELEMETRY_METRICS_LISTEN=127.0.0.1:%d", metricsPort))
	waitPort(j.t, port)
	return p, port
}

// lake starts the lake consumer; its lake file is lakeFile.
func (j *jetstreamFixture) lake(name string) *process {
	metricsPort := freePort(j.t)
	p := j.run(name, "lake-jetstream.conf", fmt.Sprintf("TELEMETRY_METRICS_LISTEN=127.0.0.1:%d", metricsPort))
	waitPort(j.t, metricsPort)
	return p
}

// lakeWith starts the lake consumer with extra variables and returns its
// prometheus_client port too.
func (j *jetstreamFixture) lakeWith(name string, extra ...string) (*process, int) {
	metricsPort := freePort(j.t)
	p := j.run(name, "lake-jetstream.conf", append([]string{fmt.Sprintf("TELEMETRY_METRICS_LISTEN=127.0.0.1:%d", metricsPort)}, extra...)...)
	waitPort(j.t, metricsPort)
	return p, metricsPort
}

// scrape reads a role's prometheus_client on port: each metric's samples
// summed by name.
func scrape(port int) (map[string]float64, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return sampleSums(resp.Body)
}

func (j *jetstreamFixture) lakeFile() string {
	return filepath.Join(j.dir, "telemetry.jsonl")
}

// client trusts the fixture's server certificate.
func (j *jetstreamFixture) client(idlePerHost int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: j.pki.Pool, MinVersion: tls.VersionTLS12},
			MaxIdleConnsPerHost: idlePerHost,
		},
	}
}

// postBatch posts one zstd batch as an agent does and returns the status,
// 0 when no answer came.
func postBatch(client *http.Client, url, token, key string, body []byte) int {
	return postAs(client, url, token, key, telemetry.ContentType, body)
}

// postAs posts one zstd body of contentType: a batch, or events as the
// platform API posts them.
func postAs(client *http.Client, url, token, key, contentType string, body []byte) int {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Content-Encoding", telemetry.EncodingZstd)
	req.Header.Set(telemetry.HeaderLevel, string(telemetry.LevelStandard))
	req.Header.Set(telemetry.HeaderIdempotencyKey, key)
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body) //nolint:errcheck // draining for keep-alive
	resp.Body.Close()
	return resp.StatusCode
}

// postUntilStored posts one batch until the server answers 201 or 200.
func postUntilStored(client *http.Client, url, token, key string, body []byte) error {
	return postAsUntilStored(client, url, token, key, telemetry.ContentType, body)
}

// postAsUntilStored posts one body of contentType until the server
// answers 201 or 200.
func postAsUntilStored(client *http.Client, url, token, key, contentType string, body []byte) error {
	deadline := time.Now().Add(2 * time.Minute)
	last := 0
	for time.Now().Before(deadline) {
		switch last = postAs(client, url, token, key, contentType, body); last {
		case http.StatusCreated, http.StatusOK:
			return nil
		case http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusUnauthorized:
			return fmt.Errorf("batch %s refused %d", key, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("batch %s: no 2xx within 2m (last %d)", key, last)
}
