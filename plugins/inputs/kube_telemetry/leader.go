package kube_telemetry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/selfstat"
)

// Leader election lets two or more replicas run while exactly one collects:
// the holder of a coordination.k8s.io Lease, through client-go's elector.
// The others gather nothing and take over within lease_duration once the
// holder stops renewing. The defaults are client-go's own.
const (
	defaultLeaseName     = "telegraf-tkgi-kube-telemetry"
	defaultLeaseDuration = config.Duration(15 * time.Second)
	defaultRenewDeadline = config.Duration(10 * time.Second)
	defaultRetryPeriod   = config.Duration(2 * time.Second)

	// serviceAccountNamespaceFile holds the pod's namespace, mounted with
	// the in-cluster ServiceAccount.
	serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
)

// toggle is a boolean setting that also takes a string holding true or
// false, so an environment variable can switch it: Telegraf replaces
// "${VAR}" only inside strings unless run with --non-strict-env-handling.
// An empty string is false.
type toggle bool

// UnmarshalText rather than UnmarshalTOML: Telegraf's strict environment
// handling substitutes into the string's value, while UnmarshalTOML would
// see the raw source, "${VAR}" and all. A TOML boolean arrives as its
// source, true or false.
func (t *toggle) UnmarshalText(data []byte) error {
	s := strings.TrimSpace(string(data))
	if unquoted, err := strconv.Unquote(s); err == nil {
		s = strings.TrimSpace(unquoted)
	} else if len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		s = s[1 : len(s)-1]
	}
	switch strings.ToLower(s) {
	case "true":
		*t = true
	case "false", "":
		*t = false
	default:
		return fmt.Errorf("%q is neither true nor false", s)
	}
	return nil
}

// checkLeaderElection validates the lease settings and fills in the lease's
// namespace: lease_namespace, else the pod's own.
func (k *KubeTelemetry) checkLeaderElection() error {
	if !k.LeaderElection {
		return nil
	}
	if k.LeaseNamespace == "" {
		file := k.namespaceFile
		if file == "" {
			file = serviceAccountNamespaceFile
		}
		data, err := os.ReadFile(file)
		if err != nil || strings.TrimSpace(string(data)) == "" {
			return fmt.Errorf("lease_namespace is required with leader_election outside a pod "+
				"(no ServiceAccount namespace in %s)", file)
		}
		k.LeaseNamespace = strings.TrimSpace(string(data))
	}
	if errs := validation.IsDNS1123Label(k.LeaseNamespace); len(errs) > 0 {
		return fmt.Errorf("lease_namespace %q is not a namespace name: %s", k.LeaseNamespace, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(k.LeaseName); len(errs) > 0 {
		return fmt.Errorf("lease_name %q is not a Lease name: %s", k.LeaseName, strings.Join(errs, "; "))
	}
	for key, d := range map[string]config.Duration{
		"lease_duration": k.LeaseDuration, "renew_deadline": k.RenewDeadline, "retry_period": k.RetryPeriod,
	} {
		if d <= 0 {
			return fmt.Errorf("%s must be positive, got %s", key, time.Duration(d))
		}
	}
	if k.RenewDeadline >= k.LeaseDuration {
		return fmt.Errorf("renew_deadline (%s) must be shorter than lease_duration (%s): "+
			"the leader must give up before a standby may take over",
			time.Duration(k.RenewDeadline), time.Duration(k.LeaseDuration))
	}
	// client-go retries with up to 20% jitter within the renew deadline.
	if float64(k.RenewDeadline) <= leaderelection.JitterFactor*float64(k.RetryPeriod) {
		return fmt.Errorf("retry_period (%s) must be shorter than renew_deadline (%s) divided by %.1f",
			time.Duration(k.RetryPeriod), time.Duration(k.RenewDeadline), leaderelection.JitterFactor)
	}
	return nil
}

// elector runs the election for one plugin instance and tells the gathers
// whether, and in which term, this replica leads.
type elector struct {
	lease    string // namespace/name, for logs
	identity string
	log      telegraf.Logger
	config   leaderelection.LeaderElectionConfig

	mu sync.Mutex
	// term is the context of the current term, cancelled when it ends;
	// nil while another replica leads.
	term   context.Context
	leader string
	// decided is closed once the first attempt knows who leads, so the
	// first gather (--once, --test) does not miss a lease it could hold.
	decided     chan struct{}
	decidedOnce sync.Once
	done        chan struct{}
	// stopping is done once Stop began: the term's end is then a release.
	stopping context.Context

	isLeader selfstat.Stat
	acquired selfstat.Stat
}

// newIdentity is the pod's name (HOSTNAME in a pod) with a random suffix,
// so a restarted container never mistakes its predecessor's lease for its
// own.
func newIdentity() string {
	host := os.Getenv("HOSTNAME")
	if host == "" {
		host, _ = os.Hostname()
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	return host + "_" + hex.EncodeToString(suffix)
}

func (k *KubeTelemetry) newElector(leases coordinationv1client.LeasesGetter) (*elector, error) {
	e := &elector{
		lease:    k.LeaseNamespace + "/" + k.LeaseName,
		identity: newIdentity(),
		log:      k.Log,
		decided:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	stats := k.Statistics
	if stats == nil {
		stats = selfstat.NewCollector(nil)
	}
	tags := map[string]string{"lease": e.lease}
	e.isLeader = stats.Register("kube_telemetry", "leader", tags)
	e.acquired = stats.Register("kube_telemetry", "leadership_acquired", tags)
	e.config = leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: k.LeaseNamespace, Name: k.LeaseName},
			Client:     leases,
			LockConfig: resourcelock.ResourceLockConfig{Identity: e.identity},
		},
		LeaseDuration: time.Duration(k.LeaseDuration),
		RenewDeadline: time.Duration(k.RenewDeadline),
		RetryPeriod:   time.Duration(k.RetryPeriod),
		// Stop runs after the last gather has returned, so releasing the
		// lease then lets a standby take over at once, not a lease later.
		ReleaseOnCancel: true,
		Name:            e.lease,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: e.startedLeading,
			OnStoppedLeading: e.stoppedLeading,
			OnNewLeader:      e.newLeader,
		},
	}
	// Checked here too, so a setting Init let through is never a panic.
	if _, err := leaderelection.NewLeaderElector(e.config); err != nil {
		return nil, fmt.Errorf("leader election on lease %s: %w", e.lease, err)
	}
	return e, nil
}

// startElection stands for leader in the background; gathers collect only
// while this replica holds the lease.
func (k *KubeTelemetry) startElection() error {
	if k.leases == nil {
		cfg, err := k.restConfig()
		if err != nil {
			return err
		}
		// The election's requests are not the collection's: they are
		// neither counted in api_requests nor held up by a collection's
		// share of the rate limit, and each is bounded by the renew
		// deadline rather than response_timeout.
		cfg.WrapTransport = nil
		cfg.RateLimiter = nil
		cfg.Timeout = time.Duration(k.RenewDeadline)
		leases, err := coordinationv1client.NewForConfig(cfg)
		if err != nil {
			return fmt.Errorf("creating the Lease client for %s failed: %w", cfg.Host, err)
		}
		k.leases = leases
	}
	e, err := k.newElector(k.leases)
	if err != nil {
		return err
	}
	k.elector = e
	go e.run(k.ctx)
	return nil
}

// stop waits for the election to end after its context was cancelled:
// the lease is released, bounded by the renew deadline.
func (e *elector) stop(wait time.Duration) {
	select {
	case <-e.done:
	case <-time.After(wait + time.Second):
		e.log.Warnf("Leader election on lease %s did not end within %s", e.lease, wait)
	}
}

// run takes part in the election until ctx ends: after a term ends
// (renewals failed for renew_deadline) it stands again, so a replica never
// exits and never collects outside a term.
func (e *elector) run(ctx context.Context) {
	defer close(e.done)
	e.stopping = ctx
	ctx = logr.NewContext(ctx, logr.New(&logSink{log: e.log, lease: e.lease}))
	e.log.Infof("Standing for leader of lease %s as %s", e.lease, e.identity)
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(e.config)
		if err != nil {
			e.log.Errorf("Leader election on lease %s stopped: %v", e.lease, err)
			return
		}
		le.Run(ctx)
	}
}

func (e *elector) startedLeading(term context.Context) {
	e.mu.Lock()
	e.term = term
	e.leader = e.identity
	e.mu.Unlock()
	e.isLeader.Set(1)
	e.acquired.Incr(1)
	e.log.Infof("Leading lease %s as %s: this replica collects", e.lease, e.identity)
	e.decidedOnce.Do(func() { close(e.decided) })
}

func (e *elector) stoppedLeading() {
	e.mu.Lock()
	was := e.term != nil
	e.term = nil
	e.mu.Unlock()
	e.isLeader.Set(0)
	switch {
	case was && e.stopping.Err() != nil:
		e.log.Infof("Released lease %s: a standby takes over", e.lease)
	case was:
		e.log.Warnf("Lost lease %s: this replica stops collecting and stands again", e.lease)
	}
}

func (e *elector) newLeader(identity string) {
	e.mu.Lock()
	e.leader = identity
	e.mu.Unlock()
	if identity == e.identity {
		return // startedLeading reports it, once the term is set
	}
	e.log.Infof("Lease %s is held by %s: this replica stands by", e.lease, identity)
	e.decidedOnce.Do(func() { close(e.decided) })
}

// currentTerm returns the context of this replica's term, or nil and the
// leader's identity while another replica leads. Until the first attempt
// has decided, it waits for it, up to wait; after that wait, never again
// (a Lease that cannot be read must not hold up every gather).
func (e *elector) currentTerm(ctx context.Context, wait time.Duration) (context.Context, string) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-e.decided:
	case <-timer.C:
		e.decidedOnce.Do(func() { close(e.decided) })
	case <-ctx.Done():
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.term != nil && e.term.Err() == nil {
		return e.term, e.identity
	}
	return nil, e.leader
}

// logSink passes client-go's election log to the plugin's logger: errors
// as errors (a 403 with the Lease rule to grant), a message repeated
// within logRepeatAfter only once, so a missing rule is one line a minute,
// not one every retry_period; the rest at debug level.
type logSink struct {
	log   telegraf.Logger
	lease string

	mu     sync.Mutex
	last   string
	lastAt time.Time
}

const logRepeatAfter = time.Minute

func (*logSink) Init(logr.RuntimeInfo)  {}
func (*logSink) Enabled(level int) bool { return level == 0 }

func (s *logSink) Info(_ int, msg string, _ ...any) {
	s.mu.Lock()
	if strings.HasPrefix(msg, "Successfully") {
		s.last = ""
	}
	s.mu.Unlock()
	s.log.Debugf("Leader election on lease %s: %s", s.lease, msg)
}

func (s *logSink) Error(err error, msg string, _ ...any) {
	text := msg + ": " + leaseHint(err) + err.Error()
	s.mu.Lock()
	repeated := text == s.last && time.Since(s.lastAt) < logRepeatAfter
	if !repeated {
		s.last, s.lastAt = text, time.Now()
	}
	s.mu.Unlock()
	if !repeated {
		s.log.Errorf("Leader election on lease %s: %s", s.lease, text)
	}
}

func (s *logSink) WithValues(...any) logr.LogSink { return s }
func (s *logSink) WithName(string) logr.LogSink   { return s }

// leaseHint names the rule of the lease Role a 403 says is missing.
func leaseHint(err error) string {
	if !apierrors.IsForbidden(err) {
		return ""
	}
	return "forbidden: the agent's ServiceAccount needs get, update and create on leases (apiGroup \"coordination.k8s.io\") " +
		"in the lease's namespace (configs/kubernetes/ha/lease-role.yaml): "
}
