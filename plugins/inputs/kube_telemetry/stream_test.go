package kube_telemetry

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"
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
