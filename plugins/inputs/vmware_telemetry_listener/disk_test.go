package vmware_telemetry_listener

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/influxdata/telegraf/testutil"
	"github.com/stretchr/testify/require"

	"github.com/telegraf-tkgi/telegraf-tkgi/internal/testdisk"
)

func logSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	require.NoError(t, err)
	return info.Size()
}

// requireWholeRecords checks the log holds the magic and whole records only.
func requireWholeRecords(t *testing.T, path string) {
	t.Helper()
	require.Zero(t, (logSize(t, path)-int64(len(dedupMagic)))%dedupRecordSize,
		"the log ends in a torn record: %d bytes", logSize(t, path))
}

// A full disk under dedup_file (a real tmpfs): a keyed batch is refused
// with 503 + Retry-After before anything is stored, the operator is told
// what to do, the log stays whole, and once space is freed the retry is
// stored once; a restart on the same file remembers every stored batch.
func TestDedupLogOnFullDisk(t *testing.T) {
	dir := testdisk.Mount(t, 256<<10)
	if dir == "" {
		return // passed in a user namespace
	}
	defer func(n int64) { dedupReserveBytes = n }(dedupReserveBytes)
	dedupReserveBytes = 4 * dedupRecordSize // reach the end of the reserve quickly

	path := filepath.Join(dir, "dedup.log")
	log := &testutil.CaptureLogger{}
	ts := startListener(t, func(l *Listener) { l.DedupFile = path; l.Log = log })
	body := zstdBytes(t, validBatch(1))
	resp, msg := ts.do(post{body: body, encoding: "zstd", key: "before-full"})
	require.Equal(t, http.StatusCreated, resp.StatusCode, msg)

	filler := testdisk.Fill(t, dir)
	stored := []string{"before-full"}
	var refused string
	for i := 0; i < 4096/dedupRecordSize+16 && refused == ""; i++ {
		key := fmt.Sprintf("while-full-%d", i)
		resp, msg := ts.do(post{body: body, encoding: "zstd", key: key})
		switch resp.StatusCode {
		case http.StatusCreated:
			stored = append(stored, key) // into room reserved or left in the last page
		case http.StatusServiceUnavailable:
			require.Equal(t, "5", resp.Header.Get("Retry-After"))
			require.Contains(t, msg, "cannot record batch keys right now")
			require.NotContains(t, msg, dir, "a server path in the answer")
			refused = key
		default:
			t.Fatalf("%s: %d %s", key, resp.StatusCode, msg)
		}
	}
	require.NotEmpty(t, refused, "the full disk never refused a batch")
	require.Equal(t, len(stored), ts.pipe.stored("kube_telemetry_nodes"), "the refused batch entered the pipeline")
	requireWholeRecords(t, path)
	require.Len(t, log.Errors(), 1, "the operator is told once")
	require.NoError(t, ts.l.Gather(nil))
	require.Equal(t, int64(1), ts.l.stats.dedupLogErrors.Get())
	require.Contains(t, log.Errors()[0], "no space left on device")
	require.Contains(t, log.Errors()[0], "free space on its filesystem, or point dedup_file elsewhere")

	// Still full: the agent's retry is refused again, without a second
	// error line.
	resp, _ = ts.do(post{body: body, encoding: "zstd", key: refused})
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Len(t, log.Errors(), 1)

	// Space freed: the retry is stored (once), the next retry a duplicate.
	require.NoError(t, os.Remove(filler))
	resp, msg = ts.do(post{body: body, encoding: "zstd", key: refused})
	require.Equal(t, http.StatusCreated, resp.StatusCode, msg)
	stored = append(stored, refused)
	resp, _ = ts.do(post{body: body, encoding: "zstd", key: refused})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, len(stored), ts.pipe.stored("kube_telemetry_nodes"))
	require.True(t, strings.Contains(fmt.Sprint(log.Messages()), "can be written again"))

	ts.l.Stop()
	requireWholeRecords(t, path)
	requireRemembered(t, path, stored)
}

// Without preallocation (a filesystem that has none), a full disk tears a
// record in the middle of write(2): it is cut back so the log stays whole,
// the batch (already written by the outputs) keeps its key in memory, the
// next keyed batch is refused until the log can be rewritten, and after a
// restart every stored batch is still known.
func TestDedupLogTornWriteOnFullDisk(t *testing.T) {
	dir := testdisk.Mount(t, 256<<10)
	if dir == "" {
		return
	}
	path := filepath.Join(dir, "dedup.log")
	log := &testutil.CaptureLogger{}
	ts := startListener(t, func(l *Listener) { l.DedupFile = path; l.Log = log })
	ts.l.dedup.noPrealloc = true
	body := zstdBytes(t, validBatch(1))
	// The log is created by the first keyed batch.
	resp, msg := ts.do(post{body: body, encoding: "zstd", key: "before-full"})
	require.Equal(t, http.StatusCreated, resp.StatusCode, msg)

	testdisk.Fill(t, dir)
	stored := []string{"before-full"}
	torn := ""
	// The log's last page has room for some records; the one crossing
	// into the next page is torn.
	for i := 0; i < 4096/dedupRecordSize+16 && torn == ""; i++ {
		key := fmt.Sprintf("k-%d", i)
		resp, msg := ts.do(post{body: body, encoding: "zstd", key: key})
		require.Equal(t, http.StatusCreated, resp.StatusCode, msg)
		stored = append(stored, key)
		ts.l.dedup.mu.Lock()
		failed := ts.l.dedup.writeErrs > 0
		ts.l.dedup.mu.Unlock()
		if failed {
			torn = key
		}
	}
	require.NotEmpty(t, torn, "no write failed on the full disk")
	requireWholeRecords(t, path)
	require.Len(t, log.Errors(), 1)
	require.Contains(t, log.Errors()[0], "bytes written, cut back")

	// The torn batch is known in memory: its retry is a duplicate.
	resp, _ = ts.do(post{body: body, encoding: "zstd", key: torn})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	// A new batch is refused while the log cannot be rewritten.
	resp, _ = ts.do(post{body: body, encoding: "zstd", key: "next"})
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.NotEmpty(t, resp.Header.Get("Retry-After"))

	require.NoError(t, os.Remove(filepath.Join(dir, "filler")))
	resp, _ = ts.do(post{body: body, encoding: "zstd", key: "next"})
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	stored = append(stored, "next")
	require.Equal(t, len(stored), ts.pipe.stored("kube_telemetry_nodes"))

	ts.l.Stop()
	requireWholeRecords(t, path)
	requireRemembered(t, path, stored)
}

// requireRemembered restarts a listener on the log and checks every key is
// answered as a duplicate.
func requireRemembered(t *testing.T, path string, keys []string) {
	t.Helper()
	again := startListener(t, func(l *Listener) { l.DedupFile = path })
	require.Equal(t, len(keys), again.l.dedup.len())
	body := zstdBytes(t, validBatch(1))
	for _, key := range keys {
		resp, msg := again.do(post{body: body, encoding: "zstd", key: key})
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", key, msg)
	}
	require.Zero(t, again.pipe.stored("kube_telemetry_nodes"))
}
