package vmware_telemetry_listener

import (
	"crypto/tls"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testpki"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

func TestServesHTTPS(t *testing.T) {
	pki := testpki.New(t)
	ts := startListener(t, func(l *Listener) {
		l.TLSCert, l.TLSKey = pki.CertFile, pki.KeyFile
	})
	ts.url = "https://" + ts.l.Addr().String()

	// Plain HTTP to the TLS port is refused (Go's server answers 400
	// "Client sent an HTTP request to an HTTPS server").
	plain, err := http.Post("http://"+ts.l.Addr().String()+ts.l.Path, telemetry.ContentType, nil)
	require.NoError(t, err)
	plain.Body.Close()
	require.Equal(t, http.StatusBadRequest, plain.StatusCode)
	require.Zero(t, ts.pipe.stored("kube_telemetry_nodes"))

	old := http.DefaultClient
	http.DefaultClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool}}}
	defer func() { http.DefaultClient = old }()
	resp, body := ts.do(post{body: zstdBytes(t, validBatch(2)), encoding: "zstd"})
	require.Equal(t, http.StatusCreated, resp.StatusCode, body)
	require.Equal(t, 2, ts.pipe.stored("kube_telemetry_nodes"))
}
