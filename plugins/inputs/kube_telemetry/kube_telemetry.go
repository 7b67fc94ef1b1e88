// Package kube_telemetry provides inputs.kube_telemetry: a small, fixed set
// of aggregate telemetry metrics about one Kubernetes cluster (identity,
// version, nodes, pods, objects, storage, add-ons), collected with lists
// streamed and folded item by item, so memory grows neither with the
// cluster nor with the size of a response.
package kube_telemetry

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/filter"
	"github.com/influxdata/telegraf/plugins/common/tls"
	"github.com/influxdata/telegraf/plugins/inputs"
	"github.com/influxdata/telegraf/selfstat"
)

//go:embed sample.conf
var sampleConfig string

const (
	defaultPageSize        = 500
	maxPageSize            = 5000
	defaultResponseTimeout = config.Duration(10 * time.Second)
	// firstByteFactor times response_timeout is the wait for an
	// unpaginated list's first byte: 60 s at the default, the API server's
	// own default request timeout, after which it gives up on the list.
	firstByteFactor = 6
)

// defaultAddonNamespaces are where TKGI and upstream clusters run their
// add-ons: kube-system, the NSX-T container plugin's node agent
// (nsx-system), TKGI's own system workloads (pks-system) and the vSphere CSI
// driver (vmware-system-csi).
var defaultAddonNamespaces = []string{"kube-system", "nsx-system", "pks-system", "vmware-system-csi"}

type KubeTelemetry struct {
	URL             string          `toml:"url"`
	BearerToken     config.Secret   `toml:"bearer_token"`
	BearerTokenFile string          `toml:"bearer_token_file"`
	Kubeconfig      string          `toml:"kubeconfig"`
	Context         string          `toml:"context"`
	ClusterName     string          `toml:"cluster_name"`
	ClusterID       string          `toml:"cluster_id"`
	ResponseTimeout config.Duration `toml:"response_timeout"`
	PageSize        int64           `toml:"page_size"`
	ListStrategy    string          `toml:"list_strategy"`
	ResourceInclude []string        `toml:"resource_include"`
	ResourceExclude []string        `toml:"resource_exclude"`
	AddonNamespaces []string        `toml:"addon_namespaces"`
	HTTPProxyURL    string          `toml:"http_proxy_url"`
	tls.ClientConfig

	LeaderElection toggle          `toml:"leader_election"`
	LeaseNamespace string          `toml:"lease_namespace"`
	LeaseName      string          `toml:"lease_name"`
	LeaseDuration  config.Duration `toml:"lease_duration"`
	RenewDeadline  config.Duration `toml:"renew_deadline"`
	RetryPeriod    config.Duration `toml:"retry_period"`

	Log        telegraf.Logger     `toml:"-"`
	Statistics *selfstat.Collector `toml:"-"`

	selected []resource
	addonNS  map[string]bool
	clients  *clients
	ctx      context.Context
	cancel   context.CancelFunc
	requests atomic.Int64
	strategy string // the last list strategy used, logged when it changes

	// wrapTransport lets tests wrap the HTTP transport (to fake a 410).
	wrapTransport func(http.RoundTripper) http.RoundTripper

	elector *elector
	// leases is the Lease client of the election; tests set a fake one.
	leases coordinationv1client.LeasesGetter
	// namespaceFile replaces the ServiceAccount's namespace file in tests.
	namespaceFile string
}

func (*KubeTelemetry) SampleConfig() string {
	return sampleConfig
}

func (k *KubeTelemetry) Init() error {
	if err := k.checkConnection(); err != nil {
		return err
	}
	if k.HTTPProxyURL != "" {
		u, err := url.Parse(k.HTTPProxyURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "socks5") || u.Host == "" {
			return fmt.Errorf("http_proxy_url %q must be an http, https or socks5 URL, e.g. \"http://proxy.example:3128\"", k.HTTPProxyURL)
		}
	}
	if k.PageSize <= 0 || k.PageSize > maxPageSize {
		return fmt.Errorf("page_size must be between 1 and %d, got %d", maxPageSize, k.PageSize)
	}
	if k.ListStrategy == "" {
		k.ListStrategy = strategyAuto
	}
	if err := checkListStrategy(k.ListStrategy); err != nil {
		return err
	}
	if k.ResponseTimeout <= 0 {
		return fmt.Errorf("response_timeout must be positive, got %s", time.Duration(k.ResponseTimeout))
	}
	selected, err := selectResources(k.ResourceInclude, k.ResourceExclude)
	if err != nil {
		return err
	}
	k.selected = selected
	if err := checkClusterID(k.ClusterID); err != nil {
		return err
	}
	if err := k.checkLeaderElection(); err != nil {
		return err
	}
	k.addonNS = make(map[string]bool, len(k.AddonNamespaces))
	for _, ns := range k.AddonNamespaces {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return fmt.Errorf("addon_namespaces: %q is not a namespace name: %s", ns, strings.Join(errs, "; "))
		}
		k.addonNS[ns] = true
	}
	return nil
}

// checkConnection rejects settings that would be silently ignored under the
// connection precedence: url, then kubeconfig, then in-cluster.
func (k *KubeTelemetry) checkConnection() error {
	if k.URL != "" {
		u, err := url.Parse(k.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("url %q must be an http(s) URL of the API server, e.g. \"https://10.0.0.1:6443\"", k.URL)
		}
		if k.Kubeconfig != "" {
			return errors.New("url and kubeconfig are mutually exclusive: set one")
		}
		if !k.BearerToken.Empty() && k.BearerTokenFile != "" {
			return errors.New("bearer_token and bearer_token_file are mutually exclusive: set one")
		}
		return nil
	}
	switch {
	case !k.BearerToken.Empty():
		return errors.New("bearer_token is used only with url: set url, or put the token in the kubeconfig")
	case k.BearerTokenFile != "":
		return errors.New("bearer_token_file is used only with url: set url, or put the token in the kubeconfig")
	case k.TLSCA != "" || k.TLSCert != "" || k.TLSKey != "" || k.InsecureSkipVerify || k.ServerName != "":
		return errors.New("the tls_* and insecure_skip_verify options are used only with url; " +
			"the kubeconfig and the in-cluster ServiceAccount carry their own TLS settings")
	case k.Context != "" && k.Kubeconfig == "":
		return errors.New("context is used only with kubeconfig: set kubeconfig")
	}
	return nil
}

// selectResources applies resource_include/resource_exclude (globs) to the
// known resources. A pattern that matches no resource is an error: it is
// almost always a typo ("pod" for "pods").
func selectResources(include, exclude []string) ([]resource, error) {
	for key, patterns := range map[string][]string{"resource_include": include, "resource_exclude": exclude} {
		for _, p := range patterns {
			f, err := filter.Compile([]string{p})
			if err != nil {
				return nil, fmt.Errorf("%s: invalid pattern %q: %w", key, p, err)
			}
			matched := false
			for _, r := range resources {
				matched = matched || f.Match(r.name)
			}
			if !matched {
				return nil, fmt.Errorf("%s: %q matches no resource; valid resources: %s",
					key, p, strings.Join(resourceNames(), ", "))
			}
		}
	}
	f, err := filter.NewIncludeExcludeFilter(include, exclude)
	if err != nil {
		return nil, fmt.Errorf("resource_include/resource_exclude: %w", err)
	}
	var selected []resource
	for _, r := range resources {
		if f.Match(r.name) {
			selected = append(selected, r)
		}
	}
	if len(selected) == 0 {
		return nil, errors.New("resource_include and resource_exclude leave no resource to collect")
	}
	return selected, nil
}

// Start builds the clients once; every gather reuses them and their
// connections. No request is sent here: an API server that is down at start
// is reported by each gather, not fatal.
func (k *KubeTelemetry) Start(telegraf.Accumulator) error {
	k.ctx, k.cancel = context.WithCancel(context.Background())
	if k.clients == nil {
		c, err := k.newClients()
		if err != nil {
			return err
		}
		k.clients = c
	}
	if k.LeaderElection {
		return k.startElection()
	}
	return nil
}

// Stop aborts a gather in flight, ends the election (releasing the lease
// if held, so a standby takes over at once) and closes idle connections.
func (k *KubeTelemetry) Stop() {
	if k.cancel != nil {
		k.cancel()
	}
	if k.elector != nil {
		k.elector.stop(time.Duration(k.RenewDeadline))
	}
	if k.clients != nil {
		k.clients.close()
	}
}

func (k *KubeTelemetry) Gather(acc telegraf.Accumulator) error {
	if k.clients == nil || k.ctx == nil {
		return errors.New("gather before start")
	}
	ctx, c := k.ctx, k.clients
	var term context.Context
	if k.elector != nil {
		var leader string
		term, leader = k.elector.currentTerm(ctx, time.Duration(k.RenewDeadline))
		if term == nil {
			k.Log.Debugf("Not the leader of lease %s (held by %q): collecting nothing", k.elector.lease, leader)
			return nil
		}
		// Losing the lease cancels the collection in flight.
		ctx = term
	}
	ctx, cancel := withCollectionTimeout(ctx, time.Duration(k.ResponseTimeout))
	defer cancel()
	start := time.Now()
	requestsBefore := k.requests.Load()

	// One cheap request first: if the API server is unreachable or rejects
	// the credentials, this is the gather's one error.
	info, err := c.serverVersion(ctx)
	if err != nil {
		if apierrors.IsUnauthorized(err) {
			return fmt.Errorf("kubernetes API server %s rejected the credentials "+
				"(check bearer_token, bearer_token_file or the kubeconfig user): %w", c.host, err)
		}
		return fmt.Errorf("kubernetes API server %s unreachable: %w", c.host, err)
	}
	uid, idErr := k.clusterUID(ctx, c)

	results := collect(ctx, c, k.selected, k.listingFor(info), foldConfig{addonNamespaces: k.addonNS})
	if term != nil && term.Err() != nil {
		// The term ended during the collection: a standby may be leading
		// already, so these results would be a second collection.
		k.Log.Warnf("Lease %s lost during the collection: its results are dropped", k.elector.lease)
		return nil
	}
	if idErr != nil {
		acc.AddError(idErr)
	}

	e := &emitter{acc: acc, ts: start, tags: map[string]string{}}
	if uid != "" {
		e.tags["cluster_uid"] = uid
	}
	if k.ClusterName != "" {
		e.tags["cluster_name"] = k.ClusterName
	}
	rep := newReport(e)
	var pages, failed, ok int64
	for _, r := range results {
		pages += r.pages
		var errs int64
		if r.ok() {
			ok++
		} else {
			errs = 1
			failed++
			acc.AddError(r.err)
		}
		e.add(resourceMetric, map[string]string{"resource": r.res.name}, map[string]any{
			"items":            r.items,
			"pages":            r.pages,
			"duration_seconds": r.duration.Seconds(),
			"errors":           errs,
			"restarts":         r.restarts,
		})
		if !r.ok() {
			continue
		}
		if r.res.objectsField != "" {
			rep.count(r.res.objectsField, r.items)
		}
		r.fold.emit(rep)
	}
	rep.finish()

	elapsed := time.Since(start)
	e.add(clusterMetric, nil, map[string]any{
		"server_version":     info.GitVersion,
		"platform":           info.Platform,
		"cni":                cni(rep.addons),
		"collection_seconds": elapsed.Seconds(),
		"api_requests":       k.requests.Load() - requestsBefore,
		"pages":              pages,
		"errors":             failed,
		"resources":          ok,
	})
	if k.Log != nil {
		k.Log.Debugf("Collected %d resources (%d failed) in %d pages, %d requests, %s",
			ok, failed, pages, k.requests.Load()-requestsBefore, elapsed)
	}
	return nil
}

func init() {
	inputs.Add("kube_telemetry", func() telegraf.Input {
		return &KubeTelemetry{
			PageSize:        defaultPageSize,
			ListStrategy:    strategyAuto,
			ResponseTimeout: defaultResponseTimeout,
			AddonNamespaces: defaultAddonNamespaces,
			LeaseName:       defaultLeaseName,
			LeaseDuration:   defaultLeaseDuration,
			RenewDeadline:   defaultRenewDeadline,
			RetryPeriod:     defaultRetryPeriod,
		}
	})
}
