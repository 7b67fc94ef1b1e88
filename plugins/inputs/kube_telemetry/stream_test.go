package kube_telemetry

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// serverEncoding is a list as the API server writes it: apimachinery's own
// protobuf serializer.
func serverEncoding(t *testing.T, list kruntime.Object) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, protobuf.NewSerializer(scheme.Scheme, scheme.Scheme).Encode(list, &buf))
	return buf.Bytes()
}

func TestDecodeListServerEncoding(t *testing.T) {
	pods := manyPods(7)
	pods[3].Labels = map[string]string{"app": strings.Repeat("x", 5000)} // items larger than the read buffer's start
	tests := []struct {
		name string
		list *corev1.PodList
	}{
		{name: "empty", list: &corev1.PodList{}},
		{name: "last page", list: &corev1.PodList{Items: pods}},
		{name: "with continue", list: &corev1.PodList{
			ListMeta: metav1.ListMeta{ResourceVersion: "42", Continue: "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ", RemainingItemCount: ptr[int64](93)},
			Items:    pods[:3],
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.list.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "PodList"} // as the server sets it
			wire := serverEncoding(t, tt.list)
			// The test's own encoder (used by the fake lister) writes the same bytes.
			mine, err := encodeList(tt.list, "v1", "PodList")
			require.NoError(t, err)
			require.Equal(t, wire, mine)

			var got []corev1.Pod
			next, n, err := decodeList(bytes.NewReader(wire), func(raw []byte) error {
				var p corev1.Pod
				if err := decodeInto(&p, raw); err != nil {
					return err
				}
				got = append(got, p)
				return nil
			})
			require.NoError(t, err)
			require.Equal(t, tt.list.Continue, next)
			require.Equal(t, len(tt.list.Items), n)
			if len(tt.list.Items) == 0 {
				require.Empty(t, got)
				return
			}
			require.Equal(t, tt.list.Items, got)
		})
	}
}

// TestDecodeListReusedObject: strings kept from an item stay valid after
// the next item is decoded into the same object and buffer.
func TestDecodeListReusedObject(t *testing.T) {
	wire := serverEncoding(t, &corev1.PodList{Items: manyPods(50)})
	f := objects(newPodTally)(foldConfig{}).(*objectFold[corev1.Pod, *corev1.Pod])
	var names []string
	_, _, err := decodeList(bytes.NewReader(wire), func(raw []byte) error {
		if err := f.item(raw); err != nil {
			return err
		}
		names = append(names, f.obj.Name)
		return nil
	})
	require.NoError(t, err)
	for i, n := range names {
		require.Equal(t, "p"+fmtInt(i), n)
	}
	require.Equal(t, int64(50), f.tally.(*podTally).total)
}

func fmtInt(i int) string { return strconv.Itoa(i) }

func TestDecodeListErrors(t *testing.T) {
	wire := serverEncoding(t, &corev1.PodList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodList"},
		ListMeta: metav1.ListMeta{Continue: "c"}, Items: manyPods(3)})
	tests := []struct {
		name    string
		body    []byte
		item    func([]byte) error
		wantErr string
	}{
		{name: "JSON", body: []byte(`{"kind":"PodList","apiVersion":"v1","items":[]}`),
			wantErr: `the API server did not answer in protobuf (the response starts with "{\"ki")`},
		{name: "empty body", body: nil, wantErr: "reading the list: EOF"},
		{name: "no list", body: protobufMagic, wantErr: "the API server's answer holds no list"},
		{name: "huge field", body: append(append([]byte{}, protobufMagic...), 0x12, 0x07, 0x12, 0xff, 0xff, 0xff, 0xff, 0x0f),
			wantErr: "corrupt list: a field of "},
		{name: "bad wire type", body: append(append([]byte{}, protobufMagic...), 0x0f),
			wantErr: "corrupt list: wire type 7"},
		{name: "item rejected", body: wire, item: func([]byte) error { return errors.New("nope") },
			wantErr: "decoding item 1: nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			item := tt.item
			if item == nil {
				item = func([]byte) error { return nil }
			}
			_, _, err := decodeList(bytes.NewReader(tt.body), item)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}

	// Every truncation of a valid list is an error, never a short list
	// taken for a whole one, and never a hang. (The last 4 bytes are the
	// envelope's empty contentEncoding and contentType, after the list.)
	require.Equal(t, []byte{0x1a, 0x00, 0x22, 0x00}, wire[len(wire)-4:])
	for cut := len(protobufMagic); cut < len(wire)-4; cut++ {
		_, _, err := decodeList(bytes.NewReader(wire[:cut]), func([]byte) error { return nil })
		require.Error(t, err, "truncated at %d of %d bytes", cut, len(wire))
	}
}

// TestDecodeListMetadata: a metadata-only page is counted without decoding.
func TestDecodeListMetadata(t *testing.T) {
	list := &metav1.PartialObjectMetadataList{ListMeta: metav1.ListMeta{Continue: "next"}}
	for i := range 4 {
		list.Items = append(list.Items, *partial("apps/v1", "ReplicaSet", "default", "rs-"+fmtInt(i)))
	}
	wire, err := encodeList(list, "meta.k8s.io/v1", "PartialObjectMetadataList")
	require.NoError(t, err)
	var items int
	next, n, err := decodeList(bytes.NewReader(wire), func([]byte) error { items++; return nil })
	require.NoError(t, err)
	require.Equal(t, "next", next)
	require.Equal(t, 4, n)
	require.Equal(t, 4, items)
}

// TestRestListerIdleTimeout: response_timeout bounds a response's silence,
// not its length: a slow but steady stream is read to its end, one that
// stops sending fails with a stall.
func TestRestListerIdleTimeout(t *testing.T) {
	const idle = time.Second
	wire := serverEncoding(t, &corev1.PodList{Items: manyPods(8)})
	chunks := func(n int) [][]byte {
		var out [][]byte
		size := (len(wire) + n - 1) / n
		for i := 0; i < len(wire); i += size {
			out = append(out, wire[i:min(i+size, len(wire))])
		}
		return out
	}
	// answerAfter waits, then streams the list steadily.
	answerAfter := func(wait time.Duration) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(wait):
			case <-r.Context().Done():
				return
			}
			w.Header().Set("Content-Type", protobufMediaType)
			for _, c := range chunks(4) {
				_, _ = w.Write(c)
				w.(http.Flusher).Flush()
			}
		}
	}
	tests := []struct {
		name    string
		limit   int64 // 0: unpaginated
		serve   func(w http.ResponseWriter, r *http.Request)
		wantErr string
	}{
		// An unpaginated list may take up to firstByte to start; a page not.
		{name: "unpaginated list starting late", serve: answerAfter(idle * 3 / 2)},
		{name: "page starting late", limit: 500, serve: answerAfter(idle * 3 / 2),
			wantErr: "the API server did not start answering within 1s"},
		{name: "unpaginated list never starting", serve: func(_ http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}, wantErr: "the API server did not start answering within 3s"},
		{name: "steady stream longer than the timeout", serve: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", protobufMediaType)
			for _, c := range chunks(8) { // 8 x 200 ms: over idle in all
				_, _ = w.Write(c)
				w.(http.Flusher).Flush()
				select {
				case <-time.After(idle / 5):
				case <-r.Context().Done():
					return
				}
			}
		}},
		{name: "stops after the first bytes", serve: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", protobufMediaType)
			_, _ = w.Write(chunks(4)[0])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}, wantErr: "the API server sent nothing for 1s"},
		{name: "no answer to a page", limit: 500, serve: func(_ http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}, wantErr: "the API server did not start answering within 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(tt.serve))
			t.Cleanup(srv.Close)
			kube, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
			require.NoError(t, err)
			l := &restLister{rest: kube.CoreV1().RESTClient(), idle: idle, firstByte: 3 * idle}
			start := time.Now()
			_, n, err := l.listPage(context.Background(), resourceByName("pods"), metav1.ListOptions{Limit: tt.limit},
				func([]byte) error { return nil })
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.Equal(t, 8, n)
				require.Greater(t, time.Since(start), idle, "the stream must outlast the idle timeout")
				return
			}
			require.EqualError(t, err, tt.wantErr)
			var stalled *stalledError
			require.ErrorAs(t, err, &stalled)
			require.Less(t, time.Since(start), 10*idle)
		})
	}
}
