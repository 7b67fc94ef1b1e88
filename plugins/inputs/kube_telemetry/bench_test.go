package kube_telemetry

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/influxdata/telegraf/testutil"
)

// pageLister serves every list from one page encoded beforehand, as the
// API server encodes it, so a benchmark measures the plugin's decoding,
// folding and emitting and not the fake clientset's copying.
type pageLister struct {
	pages map[string][]byte
}

func (l *pageLister) listPage(_ context.Context, res resource, _ metav1.ListOptions, item func([]byte) error) (string, int, error) {
	wire, ok := l.pages[res.name]
	if !ok {
		return "", 0, fmt.Errorf("no page for %s", res.name)
	}
	return decodeList(bytes.NewReader(wire), item)
}

// BenchmarkGather is one collection of the unit-test cluster grown to
// 1,000 nodes and 10,000 pods, served from encoded pages: decoding,
// folding and emitting, per gather.
func BenchmarkGather(b *testing.B) {
	fx := newFixture(&testing.T{})
	lister := &pageLister{pages: map[string][]byte{}}
	for _, r := range resources {
		wire, err := fx.lister().page(b.Context(), r, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		lister.pages[r.name] = wire
	}
	nodes := &corev1.NodeList{}
	for i := range 1000 {
		n := node("worker-"+strconv.Itoa(i), map[string]string{"node-role.kubernetes.io/worker": ""}, corev1.ConditionTrue)
		nodes.Items = append(nodes.Items, *n)
	}
	var err error
	if lister.pages["nodes"], err = encodeList(nodes, "v1", "NodeList"); err != nil {
		b.Fatal(err)
	}
	if lister.pages["pods"], err = encodeList(&corev1.PodList{Items: manyPods(10000)}, "v1", "PodList"); err != nil {
		b.Fatal(err)
	}

	k := &KubeTelemetry{PageSize: defaultPageSize, ResponseTimeout: defaultResponseTimeout,
		AddonNamespaces: defaultAddonNamespaces, Log: testutil.Logger{}}
	if err := k.Init(); err != nil {
		b.Fatal(err)
	}
	k.clients = &clients{host: "fake", kube: fx.kube, lister: lister, requests: &k.requests}
	if err := k.Start(nil); err != nil {
		b.Fatal(err)
	}
	defer k.Stop()
	var acc testutil.NopAccumulator
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := k.Gather(&acc); err != nil {
			b.Fatal(err)
		}
	}
}
