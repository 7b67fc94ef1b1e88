package kube_telemetry

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ktesting "k8s.io/client-go/testing"

	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/testutil"
)

// pager serves a pod list page by page the way the API server does (limit,
// continue token), records the options of every request and answers 410
// Expired to the continue tokens listed in expire, each once per listing.
type pager struct {
	mu      sync.Mutex
	pods    []corev1.Pod
	expire  map[string]int // continue token -> how many more times it expires
	fail    map[string]error
	options []metav1.ListOptions
}

func (p *pager) react(action ktesting.Action) (bool, runtime.Object, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	opts := action.(ktesting.ListActionImpl).ListOptions
	p.options = append(p.options, opts)
	if err := p.fail[opts.Continue]; err != nil {
		return true, nil, err
	}
	if err := p.fail["unpaginated"]; err != nil && opts.Limit == 0 {
		return true, nil, err
	}
	if n := p.expire[opts.Continue]; n > 0 {
		p.expire[opts.Continue] = n - 1
		return true, nil, apierrors.NewResourceExpired("The provided continue parameter is too old to display a consistent list result.")
	}
	start := 0
	if opts.Continue != "" {
		start, _ = strconv.Atoi(opts.Continue)
	}
	end := len(p.pods)
	if opts.Limit > 0 {
		end = min(start+int(opts.Limit), end)
	}
	l := &corev1.PodList{Items: p.pods[start:end]}
	if end < len(p.pods) {
		l.Continue = strconv.Itoa(end)
	}
	return true, l, nil
}

func manyPods(n int) []corev1.Pod {
	pods := make([]corev1.Pod, 0, n)
	for i := range n {
		phase := corev1.PodRunning
		if i%4 == 0 {
			phase = corev1.PodPending
		}
		pods = append(pods, *pod("default", "p"+strconv.Itoa(i), phase, corev1.PodQOSBestEffort, 2, 1))
	}
	return pods
}

func TestPagination(t *testing.T) {
	tests := []struct {
		name         string
		pods         int
		pageSize     int64
		strategy     string  // list_strategy; paginated if empty
		server       string  // the API server's gitVersion; v1.36.3 if empty
		wantLimit    int64   // limit of every request; pageSize if not unpaginated
		wantLimits   []int64 // limits of the requests, in order, when they differ
		expire       map[string]int
		fail         map[string]error
		wantPages    int64
		wantRestarts int64
		wantRequests int
		wantError    string
	}{
		{name: "unpaginated: the whole list in one request", pods: 31, pageSize: 10, strategy: strategyUnpaginated,
			wantPages: 1, wantRequests: 1},
		{name: "auto on a streaming server: unpaginated", pods: 31, pageSize: 10, strategy: strategyAuto,
			server: "v1.33.0", wantPages: 1, wantRequests: 1},
		{name: "auto on an older server: paginated", pods: 31, pageSize: 10, strategy: strategyAuto,
			server: "v1.30.14+vmware.1", wantLimit: 10, wantPages: 4, wantRequests: 4},
		{name: "unpaginated breaks off: starts over in pages", pods: 25, pageSize: 10, strategy: strategyUnpaginated,
			fail:       map[string]error{"unpaginated": apierrors.NewTimeoutError("request did not complete within 1m0s", 0)},
			wantLimits: []int64{0, 10, 10, 10}, wantPages: 3, wantRestarts: 1, wantRequests: 4},
		{name: "unpaginated forbidden: no second try", pods: 25, pageSize: 10, strategy: strategyUnpaginated,
			fail:      map[string]error{"unpaginated": apierrors.NewForbidden(corev1.Resource("pods"), "", errors.New("no rule"))},
			wantPages: 0, wantRequests: 1,
			wantError: `listing pods failed: forbidden: grant "list" on "pods" (all namespaces, apiGroup "") to the agent's ServiceAccount: pods is forbidden: no rule`},
		{name: "unpaginated and its pages fail: one fallback only", pods: 25, pageSize: 10, strategy: strategyUnpaginated,
			fail:       map[string]error{"": apierrors.NewInternalError(errors.New("etcd leader changed"))},
			wantLimits: []int64{0, 10}, wantPages: 0, wantRestarts: 1, wantRequests: 2,
			wantError: "listing pods failed: Internal error occurred: etcd leader changed"},
		{name: "one page", pods: 7, pageSize: 10, wantPages: 1, wantRequests: 1},
		{name: "exact pages", pods: 30, pageSize: 10, wantPages: 3, wantRequests: 3},
		{name: "partial last page", pods: 31, pageSize: 10, wantPages: 4, wantRequests: 4},
		{name: "expired once mid-list", pods: 31, pageSize: 10, expire: map[string]int{"20": 1},
			// 2 pages, a 410, then 4 pages from the start
			wantPages: 6, wantRestarts: 1, wantRequests: 7},
		{name: "expired twice", pods: 25, pageSize: 10, expire: map[string]int{"10": 1, "20": 1},
			wantPages: 1 + 2 + 3, wantRestarts: 2, wantRequests: 8},
		{name: "expires every time", pods: 25, pageSize: 10, expire: map[string]int{"10": 100},
			wantPages: maxRestarts + 1, wantRestarts: maxRestarts, wantRequests: 2 * (maxRestarts + 1),
			wantError: "listing pods failed: gone: the list outlived its continue token (etcd compaction) on every try; " +
				"it is too slow: raise page_size or check the API server's load: continue token expired again after 3 restarts: " +
				"The provided continue parameter is too old to display a consistent list result."},
		{name: "fails half-way", pods: 25, pageSize: 10,
			fail:      map[string]error{"20": apierrors.NewInternalError(errors.New("etcd leader changed"))},
			wantPages: 2, wantRequests: 3,
			wantError: "listing pods failed: Internal error occurred: etcd leader changed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			if tt.server != "" {
				fx.kube.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion.GitVersion = tt.server
			}
			strategy, limit := tt.strategy, tt.wantLimit
			if strategy == "" {
				strategy, limit = strategyPaginated, tt.pageSize
			}
			p := &pager{pods: manyPods(tt.pods), expire: tt.expire, fail: tt.fail}
			fx.kube.PrependReactor("list", "pods", p.react)
			k := fx.plugin(t, func(k *KubeTelemetry) {
				k.PageSize = tt.pageSize
				k.ListStrategy = strategy
				k.ResourceInclude = []string{"pods"}
			})
			var acc testutil.Accumulator
			require.NoError(t, k.Gather(&acc))

			// Every request: limit = page_size or none, resourceVersion
			// unset (a consistent read; "0" may be stale and ignores the
			// limit).
			require.Len(t, p.options, tt.wantRequests)
			for i, o := range p.options {
				if tt.wantLimits != nil {
					limit = tt.wantLimits[i]
				}
				require.Equal(t, limit, o.Limit)
				require.Empty(t, o.ResourceVersion)
				require.Empty(t, o.ResourceVersionMatch)
			}

			res := findMetric(t, &acc, "kube_telemetry_resource", "resource", "pods")
			require.Equal(t, tt.wantPages, res.Fields["pages"])
			require.Equal(t, tt.wantRestarts, res.Fields["restarts"])
			if tt.wantError != "" {
				require.Len(t, acc.Errors, 1)
				require.EqualError(t, acc.Errors[0], tt.wantError)
				require.Equal(t, int64(1), res.Fields["errors"])
				require.Equal(t, int64(0), res.Fields["items"])
				require.False(t, acc.HasMeasurement("kube_telemetry_pods"))
				return
			}
			require.Empty(t, acc.Errors)
			// After a restart the counters hold the list once, not the
			// pages before the restart as well.
			require.Equal(t, int64(tt.pods), res.Fields["items"])
			pods, ok := acc.Get("kube_telemetry_pods")
			require.True(t, ok)
			require.Equal(t, int64(tt.pods), pods.Fields["total"])
			require.Equal(t, int64((tt.pods+3)/4), pods.Fields["pending"])
			require.Equal(t, int64(2*tt.pods), pods.Fields["containers"])
			require.Equal(t, int64(tt.pods), pods.Fields["init_containers"])
		})
	}
}

func findMetric(t *testing.T, acc *testutil.Accumulator, name, tag, value string) *testutil.Metric {
	t.Helper()
	for _, m := range acc.Metrics {
		if m.Measurement == name && m.Tags[tag] == value {
			return m
		}
	}
	require.Failf(t, "metric not found", "%s with %s=%s", name, tag, value)
	return nil
}

// TestFoldReset: every fold forgets what it folded on reset, so a
// restarted list never counts twice.
func TestFoldReset(t *testing.T) {
	l := newFixture(t).lister()
	cfg := foldConfig{addonNamespaces: map[string]bool{"kube-system": true, "vmware-system-csi": true}}
	for _, r := range resources {
		t.Run(r.name, func(t *testing.T) {
			f := r.newFold(cfg)
			_, n1, err := l.listPage(t.Context(), r, metav1.ListOptions{}, f.item)
			require.NoError(t, err)
			require.Positive(t, n1)
			want := snapshot(t, f)
			f.reset()
			_, _, err = l.listPage(t.Context(), r, metav1.ListOptions{}, f.item)
			require.NoError(t, err)
			require.Equal(t, want, snapshot(t, f))
		})
	}
}

// snapshot renders what a fold reports.
func snapshot(t *testing.T, f fold) []*testutil.Metric {
	t.Helper()
	var acc testutil.Accumulator
	rep := newReport(&emitter{acc: &acc})
	// Storage rows need volumes or claims: an empty volume list shows
	// what the storage classes folded.
	rep.storage.pvs = &pvTally{}
	f.emit(rep)
	rep.finish()
	require.Empty(t, acc.Errors)
	return acc.Metrics
}

// TestCollectionBound: a list that keeps sending, never stalling, still
// ends with the collection's bound (30 response_timeouts).
func TestCollectionBound(t *testing.T) {
	wire := serverEncoding(t, &corev1.PodList{Items: manyPods(8)})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", protobufMediaType)
		for i := range wire { // a byte every 10 ms: never idle for 200 ms
			_, _ = w.Write(wire[i : i+1])
			w.(http.Flusher).Flush()
			select {
			case <-time.After(10 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	kube, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
	require.NoError(t, err)

	fx := newFixture(t)
	k := fx.plugin(t, func(k *KubeTelemetry) {
		k.ResponseTimeout = config.Duration(200 * time.Millisecond)
		k.ResourceInclude = []string{"pods"}
	})
	k.clients.lister = &restLister{rest: kube.CoreV1().RESTClient(), idle: 200 * time.Millisecond}
	start := time.Now()
	var acc testutil.Accumulator
	require.NoError(t, k.Gather(&acc))
	require.Less(t, time.Since(start), 12*time.Second)
	require.Len(t, acc.Errors, 1)
	require.EqualError(t, acc.Errors[0], "listing pods failed: timed out: the whole collection is bounded; "+
		"raise response_timeout or check the API server's load: the collection took longer than 6s (30 times response_timeout)")
	res := findMetric(t, &acc, "kube_telemetry_resource", "resource", "pods")
	require.Equal(t, int64(1), res.Fields["errors"])
}
