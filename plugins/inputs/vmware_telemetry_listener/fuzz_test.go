package vmware_telemetry_listener

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/plugins/common/telemetry"
)

// FuzzDecode drives the listener's whole decode path (decompression within
// limits, line protocol, the dictionary check at a level) with arbitrary
// bodies. Seeds: f.Add below and testdata/fuzz/FuzzDecode. Run it with
//
//	go test -run '^$' -fuzz FuzzDecode -fuzztime 60s ./plugins/inputs/vmware_telemetry_listener/
//
// Properties: no panic; every refusal is a status the listener answers for
// bad input (400, 413, 415, 422); no more than the limit is decompressed;
// whatever is accepted passes the dictionary at that level.
func FuzzDecode(f *testing.F) {
	valid := validBatch(3)
	f.Add(valid, "identity", "standard")
	f.Add(zstdBytes(f, valid), "zstd", "standard")
	f.Add(gzipBytes(f, valid), "gzip", "enhanced")
	f.Add([]byte("kube_telemetry_nodes,cluster_uid="+pseudonym(1)+",customer_number=C1 total=1i\n"), "", "enhanced")
	f.Add([]byte("kube_telemetry_nodes,host=h total=1i\n"), "", "standard")
	f.Add([]byte("m f=\"\xff\"\n"), "", "standard")
	f.Add(zstdBytes(f, valid)[:20], "zstd", "standard")

	const limit, line = 1 << 16, 1 << 10
	w, err := newWire("", limit, line)
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, body []byte, encoding, level string) {
		lv, err := telemetry.ParseLevel(level)
		if err != nil || lv == telemetry.LevelNone {
			lv = telemetry.LevelStandard
		}
		metrics, n, err := w.decode(bytes.NewReader(body), encoding, lv, time.Unix(0, 0), nil)
		require.LessOrEqual(t, n, int64(limit+line+1))
		if err != nil {
			require.Contains(t, []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge,
				http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity}, statusOf(err), "%v", err)
			require.Nil(t, metrics)
			return
		}
		for _, m := range metrics {
			require.NoError(t, w.dict.Check(m, lv))
		}
	})
}

// FuzzParseEvents drives the streamed events decoder. Properties: no
// panic; a refusal is 400 or 413; no more events than the cap, each within
// the event size limit's schema.
func FuzzParseEvents(f *testing.F) {
	f.Add([]byte(`{"type":"a"}`))
	f.Add([]byte(`[{"type":"a","attributes":{"n":1,"s":"x","b":true}},{"type":"b"}]`))
	f.Add([]byte(`[{},{},{}]`))
	f.Add([]byte(`[{"type":"a"}] trailing`))
	f.Add([]byte("[\xff]"))
	f.Add([]byte(`[{"type":"a","attributes":{"o":{"x":[1,2]}}}`))
	const maxEvent, maxCount = 256, 8
	f.Fuzz(func(t *testing.T, body []byte) {
		n := 0
		metrics, err := parseEvents(bytes.NewReader(body), time.Unix(0, 0), maxEvent, func(m telegraf.Metric) error {
			n++
			if n > maxCount {
				return errorf(http.StatusRequestEntityTooLarge, "too many")
			}
			return nil
		})
		if err != nil {
			require.Contains(t, []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge}, statusOf(err), "%v", err)
			require.Nil(t, metrics)
			return
		}
		// "[]" decodes to no events; the handler answers that with 400.
		require.LessOrEqual(t, len(metrics), maxCount)
		for _, m := range metrics {
			require.Equal(t, telemetry.EventMeasurement, m.Name())
		}
	})
}
