package kube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/kubectl/pkg/drain"
)

// DrainOptions tune a drain. The zero value drains with the pods' own grace periods, no timeout
// and no Force.
type DrainOptions struct {
	// GracePeriod is the termination grace given to evicted pods; negative = each pod's own
	// terminationGracePeriodSeconds; 0 = immediately.
	GracePeriod time.Duration
	// Timeout bounds the evictions and the wait for the evicted pods to go; 0 = none. A
	// PodDisruptionBudget that refuses an eviction is retried until then.
	Timeout time.Duration
	// Force evicts pods that no controller will recreate (bare pods). Without it such a pod makes
	// the drain fail before anything is changed.
	Force bool
	// EvictRetry is the wait before retrying an eviction that a PodDisruptionBudget refused;
	// default 5s (kubectl's).
	EvictRetry time.Duration
	// Progress, when set, is called as pods go and every ProgressEvery (default 2s) meanwhile.
	Progress      func(DrainProgress)
	ProgressEvery time.Duration
}

// DrainProgress is the state of a drain in progress.
type DrainProgress struct {
	Node    string
	Total   int // pods to evict
	Left    int // of which still there
	Elapsed time.Duration
}

// PodRef names a pod.
type PodRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// String renders "namespace/name".
func (p PodRef) String() string { return p.Namespace + "/" + p.Name }

// DrainPlan is what a drain of a node would do.
type DrainPlan struct {
	Node string `json:"node"`
	// Evict are the pods that would be evicted.
	Evict []PodRef `json:"evict"`
	// Warnings are kubectl's notes on pods left alone or evicted despite a concern, e.g.
	// "ignoring DaemonSet-managed Pods: kube-system/aws-node-x".
	Warnings string `json:"warnings,omitempty"`
	// Refused lists why the drain cannot go ahead, e.g. bare pods without Force; empty when it
	// can.
	Refused []string `json:"refused,omitempty"`
}

// DrainResult is what a drain did.
type DrainResult struct {
	Node     string        `json:"node"`
	Evicted  []PodRef      `json:"evicted"`
	Warnings string        `json:"warnings,omitempty"`
	Elapsed  time.Duration `json:"-"`
}

// ErrDrainTimeout is matched by the error of a drain that ran out of DrainOptions.Timeout.
var ErrDrainTimeout = errors.New("drain timed out")

// BlockedPod is a pod that was still on the node when a drain gave up, and why.
type BlockedPod struct {
	Pod PodRef `json:"pod"`
	Why string `json:"why"`
}

// DrainError is a drain that did not complete.
type DrainError struct {
	Node string
	Err  error
	// Blocked are the pods left (at most maxExplained, More counts the others).
	Blocked []BlockedPod
	More    int
	// Cordoned is true when the node stays cordoned; Uncordoned when it was uncordoned after the
	// failure (the replacement step does that when it aborts a proactive replacement).
	Cordoned, Uncordoned bool
}

// Error implements error.
func (e *DrainError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "draining node %s: %v", e.Node, e.Err)
	if n := len(e.Blocked) + e.More; n > 0 {
		fmt.Fprintf(&b, "; %d pod(s) left: ", n)
		for i, p := range e.Blocked {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s (%s)", p.Pod, p.Why)
		}
		if e.More > 0 {
			fmt.Fprintf(&b, " and %d more", e.More)
		}
	}
	switch {
	case e.Uncordoned:
		fmt.Fprintf(&b, "; node %s was uncordoned and keeps serving the pods left on it", e.Node)
	case e.Cordoned:
		fmt.Fprintf(&b, "; node %s stays cordoned (undo with 'kubectl uncordon %s')", e.Node, e.Node)
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *DrainError) Unwrap() error { return e.Err }

// maxExplained bounds the dry-run evictions made to explain a failed drain.
const maxExplained = 20

func (c *Client) helper(ctx context.Context, opts DrainOptions) *drain.Helper {
	grace := -1
	if opts.GracePeriod >= 0 {
		grace = int(opts.GracePeriod / time.Second)
	}
	retry := opts.EvictRetry
	if retry <= 0 {
		retry = 5 * time.Second
	}
	return &drain.Helper{
		Ctx:                  ctx,
		Client:               c.Kube,
		Force:                opts.Force,
		GracePeriodSeconds:   grace,
		IgnoreAllDaemonSets:  true,
		DeleteEmptyDirData:   true,
		ChunkSize:            500,
		EvictErrorRetryDelay: retry,
		Out:                  &logWriter{log: c.Log, level: slog.LevelDebug},
		ErrOut:               &logWriter{log: c.Log, level: slog.LevelInfo},
	}
}

// PlanDrain lists what a drain of node would evict, changing nothing.
func (c *Client) PlanDrain(ctx context.Context, node string, opts DrainOptions) (*DrainPlan, error) {
	ctx = withLog(ctx, c.Log)
	list, errs := c.helper(ctx, opts).GetPodsForDeletion(node)
	if list == nil {
		return nil, fmt.Errorf("listing the pods of node %s: %w", node, errors.Join(errs...))
	}
	p := &DrainPlan{Node: node, Evict: []PodRef{}, Warnings: list.Warnings()}
	for _, pod := range list.Pods() {
		p.Evict = append(p.Evict, PodRef{Namespace: pod.Namespace, Name: pod.Name})
	}
	for _, err := range errs {
		p.Refused = append(p.Refused, err.Error())
	}
	sort.Strings(p.Refused)
	return p, nil
}

// Drain cordons the node and evicts its pods with kubectl's drain: DaemonSet pods stay, pods with
// emptyDir volumes go, bare pods only with opts.Force, PodDisruptionBudgets are honoured (a
// refused eviction is retried until opts.Timeout). When the pods cannot all be evicted the error
// is a *DrainError listing the pods left and why, and the node stays cordoned; a drain refused
// before cordoning (bare pods without Force) changes nothing.
func (c *Client) Drain(ctx context.Context, n *corev1.Node, opts DrainOptions) (*DrainResult, error) {
	start := time.Now()
	ctx = withLog(ctx, c.Log)
	plan, err := c.PlanDrain(ctx, n.Name, opts)
	if err != nil {
		return nil, err
	}
	if len(plan.Refused) > 0 {
		return nil, &DrainError{Node: n.Name, Cordoned: n.Spec.Unschedulable,
			Err: fmt.Errorf("refused, nothing evicted: %s", strings.Join(plan.Refused, "; "))}
	}
	if err := c.Cordon(ctx, n); err != nil {
		return nil, err
	}
	// Pods may have landed between the plan and the cordon: list again now that none can.
	dctx, cancel := ctx, context.CancelFunc(func() {})
	if opts.Timeout > 0 {
		dctx, cancel = context.WithTimeout(ctx, opts.Timeout)
	}
	defer cancel()
	h := c.helper(dctx, opts)
	list, errs := h.GetPodsForDeletion(n.Name)
	if len(errs) > 0 {
		return nil, &DrainError{Node: n.Name, Cordoned: true, Err: errors.Join(errs...)}
	}
	pods := list.Pods()
	res := &DrainResult{Node: n.Name, Evicted: []PodRef{}, Warnings: list.Warnings()}
	if res.Warnings != "" {
		c.Log.Info("draining node: "+res.Warnings, "node", n.Name)
	}
	prog := &progress{fn: opts.Progress, p: DrainProgress{Node: n.Name, Total: len(pods), Left: len(pods)}, start: start}
	h.OnPodDeletionOrEvictionFinished = func(pod *corev1.Pod, _ bool, err error) {
		if err == nil {
			prog.gone(PodRef{Namespace: pod.Namespace, Name: pod.Name})
		}
	}
	prog.report()
	stop := prog.heartbeat(opts.ProgressEvery)
	c.Log.Info("draining node", "node", n.Name, "pods", len(pods), "grace", opts.GracePeriod, "timeout", opts.Timeout)
	err = h.DeleteOrEvictPods(pods)
	stop()
	res.Evicted = prog.evicted()
	res.Elapsed = time.Since(start)
	if err == nil && dctx.Err() == nil {
		prog.report()
		return res, nil
	}
	switch {
	case ctx.Err() != nil:
		err = fmt.Errorf("%w (after %s)", context.Cause(ctx), time.Since(start).Round(time.Second))
	// client-go's rate limiter gives up early when a request could not start before the
	// deadline.
	case dctx.Err() != nil || strings.Contains(err.Error(), "would exceed context deadline"):
		err = fmt.Errorf("%w after %s", ErrDrainTimeout, opts.Timeout)
	default:
		err = summarize(err)
	}
	derr := &DrainError{Node: n.Name, Err: err, Cordoned: true}
	var listed bool
	derr.Blocked, derr.More, listed = c.explain(context.WithoutCancel(ctx), n.Name, opts)
	if listed && len(derr.Blocked) == 0 && ctx.Err() == nil {
		// Every pod went; what failed was only the wait for it (e.g. the client's rate limit
		// ran into the deadline). The node is drained.
		c.Log.Warn("drain reported an error but no pod is left on the node", "node", n.Name, "error", err)
		res.Evicted = podRefs(pods)
		return res, nil
	}
	return res, derr
}

func podRefs(pods []corev1.Pod) []PodRef {
	out := make([]PodRef, 0, len(pods))
	for _, p := range pods {
		out = append(out, PodRef{Namespace: p.Namespace, Name: p.Name})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// summarize shortens kubectl's aggregate of one error per pod to the first few.
func summarize(err error) error {
	var agg utilerrors.Aggregate
	if !errors.As(err, &agg) || len(agg.Errors()) <= 3 {
		return err
	}
	errs := agg.Errors()
	return fmt.Errorf("%w; %w; %w; and %d more errors", errs[0], errs[1], errs[2], len(errs)-3)
}

// explain lists the pods still on the node and why each is there: terminating, or what a
// dry-run eviction answers (the PodDisruptionBudget that refuses it).
func (c *Client) explain(ctx context.Context, node string, opts DrainOptions) (blocked []BlockedPod, more int, listed bool) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	list, errs := c.helper(ctx, opts).GetPodsForDeletion(node)
	if list == nil {
		c.Log.Warn("listing the pods left on the node", "node", node, "error", errors.Join(errs...))
		return nil, 0, false
	}
	pods := list.Pods()
	for i, pod := range pods {
		if i == maxExplained {
			return blocked, len(pods) - maxExplained, true
		}
		blocked = append(blocked, BlockedPod{Pod: PodRef{Namespace: pod.Namespace, Name: pod.Name}, Why: c.why(ctx, &pod)})
	}
	return blocked, 0, true
}

func (c *Client) why(ctx context.Context, pod *corev1.Pod) string {
	if ts := pod.DeletionTimestamp; ts != nil {
		grace := int64(0)
		if pod.DeletionGracePeriodSeconds != nil {
			grace = *pod.DeletionGracePeriodSeconds
		}
		return fmt.Sprintf("terminating since %s with a grace period of %ds", ts.UTC().Format(time.RFC3339), grace)
	}
	ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace},
		DeleteOptions: &metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}}
	err := c.Kube.PolicyV1().Evictions(pod.Namespace).Evict(ctx, ev)
	if err == nil {
		return "evictable now, the drain ran out of time"
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		// The causes name the budget ("The disruption budget web needs 2 healthy pods and has 2
		// currently"); the message only says that one refused.
		s := status.Status()
		var causes []string
		if s.Details != nil {
			for _, cause := range s.Details.Causes {
				if cause.Message != "" {
					causes = append(causes, strings.TrimSuffix(cause.Message, "."))
				}
			}
		}
		if len(causes) == 0 {
			return strings.TrimSuffix(s.Message, ".")
		}
		return strings.Join(causes, "; ")
	}
	return err.Error()
}

// progress counts the pods of a drain as they go and reports, serialised.
type progress struct {
	mu    sync.Mutex
	fn    func(DrainProgress)
	p     DrainProgress
	start time.Time
	gonep []PodRef
}

func (p *progress) gone(pod PodRef) {
	p.mu.Lock()
	p.p.Left--
	p.gonep = append(p.gonep, pod)
	p.mu.Unlock()
	p.report()
}

func (p *progress) evicted() []PodRef {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := append([]PodRef{}, p.gonep...)
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

func (p *progress) report() {
	if p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.p
	s.Elapsed = time.Since(p.start)
	p.fn(s)
}

// heartbeat reports every d until the returned stop is called.
func (p *progress) heartbeat(d time.Duration) (stop func()) {
	if p.fn == nil {
		return func() {}
	}
	if d <= 0 {
		d = 2 * time.Second
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p.report()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// logWriter turns kubectl's progress lines ("evicting pod ns/x", "error when evicting ... (will
// retry after 5s)") into log records.
type logWriter struct {
	mu    sync.Mutex
	log   *slog.Logger
	level slog.Level
	buf   []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		if line := strings.TrimSpace(string(w.buf[:i])); line != "" {
			w.log.Log(context.Background(), w.level, "kubectl drain: "+line)
		}
		w.buf = w.buf[i+1:]
	}
}
