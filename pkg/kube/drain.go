package kube

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
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
	// Warnings are notes on pods left alone or evicted despite a concern, in kubectl's words,
	// e.g. "ignoring DaemonSet-managed Pods: kube-system/aws-node-x".
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

// What a drain says about pods it leaves or evicts despite a concern; kubectl's words, so that
// operators recognise them.
const (
	daemonSetWarning = "ignoring DaemonSet-managed Pods"
	unmanagedFatal   = "Pods that declare no controller (use --force to override)"
	unmanagedWarning = "deleting Pods that declare no controller"
	// mirrorAnnotation marks the API's copy of a static pod, which the kubelet owns: evicting
	// it does nothing.
	mirrorAnnotation = "kubernetes.io/config.mirror"
)

// podVerdict is what a drain does with one pod of the node.
type podVerdict struct {
	pod      Pod
	evict    bool
	warnings []string
	fatal    string
}

// verdicts holds the pods of a node and what a drain does with each.
type verdicts []podVerdict

func (vs verdicts) evict() []Pod {
	var out []Pod
	for _, v := range vs {
		if v.evict && v.fatal == "" {
			out = append(out, v.pod)
		}
	}
	return out
}

// group joins the pods by message: "msg: ns/a, ns/b", sorted.
func group(vs verdicts, msgs func(podVerdict) []string) []string {
	byMsg := map[string][]string{}
	for _, v := range vs {
		for _, m := range msgs(v) {
			byMsg[m] = append(byMsg[m], v.pod.Namespace+"/"+v.pod.Name)
		}
	}
	out := make([]string, 0, len(byMsg))
	for m, pods := range byMsg {
		out = append(out, m+": "+strings.Join(pods, ", "))
	}
	sort.Strings(out)
	return out
}

func (vs verdicts) warnings() string {
	return strings.Join(group(vs, func(v podVerdict) []string { return v.warnings }), "; ")
}

// refused lists why the drain cannot go ahead: "cannot delete <why>: ns/a, ns/b".
func (vs verdicts) refused() []string {
	out := group(vs, func(v podVerdict) []string {
		if v.fatal == "" {
			return nil
		}
		return []string{v.fatal}
	})
	for i := range out {
		out[i] = "cannot delete " + out[i]
	}
	return out
}

// dsCache remembers, within one drain, whether the DaemonSets of the node's pods exist.
type dsCache map[string]error

// judge lists the pods of node and decides, like kubectl drain with --ignore-daemonsets and
// --delete-emptydir-data: DaemonSet pods stay (unless their DaemonSet is gone and Force is
// set), mirror pods stay, pods with emptyDir volumes go, pods without a controller go only with
// Force; finished pods always go.
func (c *Client) judge(ctx context.Context, node string, force bool, ds dsCache) (verdicts, error) {
	pods, err := c.podsOn(ctx, node)
	if err != nil {
		return nil, fmt.Errorf("listing the pods of node %s: %w", node, err)
	}
	out := make(verdicts, 0, len(pods))
	for _, p := range pods {
		v := podVerdict{pod: p, evict: true}
		ctrl := p.ControllerOf()
		switch {
		case ctrl != nil && ctrl.Kind == "DaemonSet" && !p.Finished():
			err := c.daemonSetExists(ctx, p.Namespace, ctrl.Name, ds)
			switch {
			case err == nil:
				v.evict, v.warnings = false, []string{daemonSetWarning}
			case IsNotFound(err) && force:
				// An orphan of a deleted DaemonSet: nothing recreates it.
				v.warnings = []string{err.Error()}
			default:
				v.fatal = err.Error()
			}
		case p.Annotations[mirrorAnnotation] != "":
			v.evict = false
		}
		// Pods with emptyDir volumes go (kubectl's --delete-emptydir-data); kubectl's own
		// warning about them is overwritten by its next filter and never shown, so neither is
		// it here: the output stays what operators know.
		if v.evict && v.fatal == "" && !p.Finished() {
			if ctrl == nil {
				if force {
					v.warnings = append(v.warnings, unmanagedWarning)
				} else {
					v.fatal = unmanagedFatal
				}
			}
		}
		out = append(out, v)
	}
	return out, nil
}

func (c *Client) daemonSetExists(ctx context.Context, ns, name string, cache dsCache) error {
	key := ns + "/" + name
	if err, ok := cache[key]; ok {
		return err
	}
	err := c.t.do(ctx, http.MethodGet, "/apis/apps/v1/namespaces/"+url.PathEscape(ns)+"/daemonsets/"+url.PathEscape(name), nil, nil, "", nil)
	if err != nil && !IsNotFound(err) {
		// Not cached: a passing failure should not decide the next listing.
		return err
	}
	cache[key] = err
	return err
}

// podsOn lists the pods bound to node, 500 a page.
func (c *Client) podsOn(ctx context.Context, node string) ([]Pod, error) {
	q := url.Values{"fieldSelector": {"spec.nodeName=" + node}, "limit": {"500"}}
	var pods []Pod
	for {
		var list podList
		if err := c.t.do(ctx, http.MethodGet, "/api/v1/pods", q, nil, "", &list); err != nil {
			return nil, err
		}
		pods = append(pods, list.Items...)
		if list.Metadata.Continue == "" {
			return pods, nil
		}
		q.Set("continue", list.Metadata.Continue)
	}
}

// getPod reads a pod.
func (c *Client) getPod(ctx context.Context, ns, name string) (*Pod, error) {
	var p Pod
	if err := c.t.do(ctx, http.MethodGet, "/api/v1/namespaces/"+url.PathEscape(ns)+"/pods/"+url.PathEscape(name), nil, nil, "", &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// evict asks the API to evict the pod with that UID (a pod re-created under the same name is
// not evicted: the API answers 409). grace < 0 = the pod's own grace period.
func (c *Client) evict(ctx context.Context, p *Pod, grace int64, dryRun bool) error {
	opts := map[string]any{"preconditions": map[string]string{"uid": p.UID}}
	if grace >= 0 {
		opts["gracePeriodSeconds"] = grace
	}
	if dryRun {
		opts["dryRun"] = []string{"All"}
	}
	body := map[string]any{"apiVersion": "policy/v1", "kind": "Eviction",
		"metadata": map[string]string{"name": p.Name, "namespace": p.Namespace}, "deleteOptions": opts}
	return c.t.do(ctx, http.MethodPost, "/api/v1/namespaces/"+url.PathEscape(p.Namespace)+"/pods/"+url.PathEscape(p.Name)+"/eviction",
		nil, body, jsonBody, nil)
}

// PlanDrain lists what a drain of node would evict, changing nothing.
func (c *Client) PlanDrain(ctx context.Context, node string, opts DrainOptions) (*DrainPlan, error) {
	return c.plan(ctx, node, opts, dsCache{})
}

func (c *Client) plan(ctx context.Context, node string, opts DrainOptions, ds dsCache) (*DrainPlan, error) {
	vs, err := c.judge(ctx, node, opts.Force, ds)
	if err != nil {
		return nil, err
	}
	return &DrainPlan{Node: node, Evict: podRefs(vs.evict()), Warnings: vs.warnings(), Refused: vs.refused()}, nil
}

// Drain cordons the node and evicts its pods the way kubectl drain does: DaemonSet and mirror
// pods stay, pods with emptyDir volumes go, bare pods only with opts.Force,
// PodDisruptionBudgets are honoured (an eviction refused with 429 is retried every
// opts.EvictRetry until opts.Timeout), and each evicted pod is waited for until it is gone (by
// UID: a pod re-created under the same name is not the one evicted). When the pods cannot all
// be evicted the error is a *DrainError listing the pods left and why, and the node stays
// cordoned; a drain refused before cordoning (bare pods without Force) changes nothing.
func (c *Client) Drain(ctx context.Context, n *Node, opts DrainOptions) (*DrainResult, error) {
	start := time.Now()
	ds := dsCache{}
	plan, err := c.plan(ctx, n.Name, opts, ds)
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
	dctx, cancel := ctx, context.CancelFunc(func() {})
	if opts.Timeout > 0 {
		dctx, cancel = context.WithTimeout(ctx, opts.Timeout)
	}
	defer cancel()
	// Pods may have landed between the plan and the cordon: list again now that none can.
	vs, err := c.judge(dctx, n.Name, opts.Force, ds)
	if err != nil {
		return nil, &DrainError{Node: n.Name, Cordoned: true, Err: err}
	}
	if refused := vs.refused(); len(refused) > 0 {
		return nil, &DrainError{Node: n.Name, Cordoned: true, Err: errors.New(strings.Join(refused, "; "))}
	}
	pods := vs.evict()
	res := &DrainResult{Node: n.Name, Evicted: []PodRef{}, Warnings: vs.warnings()}
	if res.Warnings != "" {
		c.Log.Info("draining node: "+res.Warnings, "node", n.Name)
	}
	prog := &progress{fn: opts.Progress, p: DrainProgress{Node: n.Name, Total: len(pods), Left: len(pods)}, start: start}
	prog.report()
	stop := prog.heartbeat(opts.ProgressEvery)
	c.Log.Info("draining node", "node", n.Name, "pods", len(pods), "grace", opts.GracePeriod, "timeout", opts.Timeout)
	errs := c.evictAll(dctx, pods, opts, prog)
	stop()
	res.Evicted = prog.evicted()
	res.Elapsed = time.Since(start)
	if len(errs) == 0 && dctx.Err() == nil {
		prog.report()
		return res, nil
	}
	switch {
	case ctx.Err() != nil:
		err = fmt.Errorf("%w (after %s)", context.Cause(ctx), time.Since(start).Round(time.Second))
	case dctx.Err() != nil || timedOut(errs):
		err = fmt.Errorf("%w after %s", ErrDrainTimeout, opts.Timeout)
	default:
		err = summarize(errs)
	}
	derr := &DrainError{Node: n.Name, Err: err, Cordoned: true}
	var listed bool
	derr.Blocked, derr.More, listed = c.explain(context.WithoutCancel(ctx), n.Name, opts, ds)
	if listed && len(derr.Blocked) == 0 && ctx.Err() == nil {
		// Every pod went; what failed was only the wait for it (e.g. the client's rate limit
		// ran into the deadline). The node is drained.
		c.Log.Warn("drain reported an error but no pod is left on the node", "node", n.Name, "error", err)
		res.Evicted = podRefs(pods)
		return res, nil
	}
	return res, derr
}

// evictAll evicts every pod at once (one goroutine each, bounded by the client's rate limit,
// as kubectl does) and waits until each is gone; it returns the errors of the pods that did not
// go.
func (c *Client) evictAll(ctx context.Context, pods []Pod, opts DrainOptions, prog *progress) []error {
	grace := int64(-1)
	if opts.GracePeriod >= 0 {
		grace = int64(opts.GracePeriod / time.Second)
	}
	retry := opts.EvictRetry
	if retry <= 0 {
		retry = 5 * time.Second
	}
	errc := make(chan error, len(pods))
	for i := range pods {
		go func(p *Pod) {
			err := c.evictAndWait(ctx, p, grace, retry)
			if err == nil {
				prog.gone(PodRef{Namespace: p.Namespace, Name: p.Name})
			}
			errc <- err
		}(&pods[i])
	}
	var errs []error
	for range pods {
		if err := <-errc; err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// evictPoll is how often an evicted pod is checked until it is gone (kubectl's interval).
const evictPoll = time.Second

// NamespaceTerminatingCause is the cause of a 403 to an eviction in a namespace being deleted.
const namespaceTerminatingCause = "NamespaceTerminating"

func (c *Client) evictAndWait(ctx context.Context, p *Pod, grace int64, retry time.Duration) error {
	ref := p.Namespace + "/" + p.Name
	for {
		if ctx.Err() != nil {
			return fmt.Errorf("evicting pod %s: %w", ref, ErrDrainTimeout)
		}
		err := c.evict(ctx, p, grace, false)
		var apiErr *APIError
		errors.As(err, &apiErr)
		switch {
		case err == nil:
		case IsNotFound(err) || IsConflict(err):
			// Gone already, or the name is another pod's now (the UID precondition failed).
			return nil
		case IsTooManyRequests(err):
			// A PodDisruptionBudget allows no disruption now (or the server is busy): retry
			// until the drain's timeout, as kubectl does.
			why := err.Error()
			if causes := apiErr.Causes(); len(causes) > 0 {
				why += " (" + strings.Join(causes, "; ") + ")"
			}
			c.Log.Info("eviction refused, retrying", "pod", ref, "retry", retry, "error", why)
			if sleep(ctx, retry) != nil {
				return fmt.Errorf("evicting pod %s: %w: %s", ref, ErrDrainTimeout, why)
			}
			continue
		case IsForbidden(err) && apiErr.HasCause(namespaceTerminatingCause):
			// Its namespace is being deleted: evictions are refused until the pod is marked
			// deleted, then the pod goes with the namespace.
			fresh, gerr := c.getPod(ctx, p.Namespace, p.Name)
			if IsNotFound(gerr) || (gerr == nil && fresh.UID != p.UID) {
				return nil
			}
			if gerr == nil && fresh.DeletionTimestamp != nil {
				break
			}
			c.Log.Info("eviction refused in a terminating namespace, retrying", "pod", ref, "retry", retry)
			if sleep(ctx, retry) != nil {
				return fmt.Errorf("evicting pod %s: %w", ref, ErrDrainTimeout)
			}
			continue
		case errors.Is(err, context.DeadlineExceeded):
			// The request (or the client's rate limit) ran into the drain's timeout.
			return fmt.Errorf("evicting pod %s: %w: %w", ref, ErrDrainTimeout, err)
		default:
			// e.g. 500 "This pod has more than one PodDisruptionBudget, which the eviction
			// subresource does not support.": retrying does not help.
			return fmt.Errorf("evicting pod %s: %w", ref, err)
		}
		c.Log.Debug("evicted pod", "pod", ref)
		return c.waitGone(ctx, p)
	}
}

// waitGone polls until the pod of that UID no longer exists.
func (c *Client) waitGone(ctx context.Context, p *Pod) error {
	for {
		cur, err := c.getPod(ctx, p.Namespace, p.Name)
		switch {
		case IsNotFound(err), err == nil && cur.UID != p.UID:
			return nil
		case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("waiting for pod %s/%s to terminate: %w", p.Namespace, p.Name, ErrDrainTimeout)
		case err != nil:
			return fmt.Errorf("waiting for pod %s/%s to terminate: %w", p.Namespace, p.Name, err)
		}
		if sleep(ctx, evictPoll) != nil {
			return fmt.Errorf("waiting for pod %s/%s to terminate: %w", p.Namespace, p.Name, ErrDrainTimeout)
		}
	}
}

func podRefs(pods []Pod) []PodRef {
	out := make([]PodRef, 0, len(pods))
	for _, p := range pods {
		out = append(out, PodRef{Namespace: p.Namespace, Name: p.Name})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// timedOut reports whether a pod's eviction or wait ran into the drain's timeout (a request
// the rate limiter would not start before the deadline fails before the deadline has passed).
func timedOut(errs []error) bool {
	for _, err := range errs {
		if errors.Is(err, ErrDrainTimeout) {
			return true
		}
	}
	return false
}

// summarize joins the errors of the pods that did not go, the first three in full.
func summarize(errs []error) error {
	if len(errs) <= 3 {
		return errors.Join(errs...)
	}
	return fmt.Errorf("%w; %w; %w; and %d more errors", errs[0], errs[1], errs[2], len(errs)-3)
}

// explain lists the pods still on the node and why each is there: terminating, or what a
// dry-run eviction answers (the PodDisruptionBudget that refuses it).
func (c *Client) explain(ctx context.Context, node string, opts DrainOptions, ds dsCache) (blocked []BlockedPod, more int, listed bool) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	vs, err := c.judge(ctx, node, opts.Force, ds)
	if err != nil {
		c.Log.Warn("listing the pods left on the node", "node", node, "error", err)
		return nil, 0, false
	}
	pods := vs.evict()
	for i := range pods {
		if i == maxExplained {
			return blocked, len(pods) - maxExplained, true
		}
		blocked = append(blocked, BlockedPod{Pod: PodRef{Namespace: pods[i].Namespace, Name: pods[i].Name}, Why: c.why(ctx, &pods[i])})
	}
	return blocked, 0, true
}

func (c *Client) why(ctx context.Context, pod *Pod) string {
	if ts := pod.DeletionTimestamp; ts != nil {
		grace := int64(0)
		if pod.DeletionGracePeriodSeconds != nil {
			grace = *pod.DeletionGracePeriodSeconds
		}
		return fmt.Sprintf("terminating since %s with a grace period of %ds", ts.UTC().Format(time.RFC3339), grace)
	}
	err := c.evict(ctx, pod, -1, true)
	if err == nil {
		return "evictable now, the drain ran out of time"
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		// The causes name the budget ("The disruption budget web needs 2 healthy pods and has 2
		// currently"); the message only says that one refused.
		if causes := apiErr.Causes(); len(causes) > 0 {
			return strings.Join(causes, "; ")
		}
		return strings.TrimSuffix(apiErr.Error(), ".")
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
