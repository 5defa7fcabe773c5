package replace_test

import (
	"sync"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/replace"
)

// TestPodDelayDetaching: with Kubernetes drain configured, pod_delay_detaching_secs is waited
// after the pre-detach steps and before the detach; without a kubeconfig it is not.
func TestPodDelayDetaching(t *testing.T) {
	for _, k8s := range []bool{true, false} {
		tags := map[string]string{groupconfig.TagPodDelayDetachingSecs: "20", groupconfig.TagPreactionDetachDelaySeconds: "0"}
		if k8s {
			tags[groupconfig.TagK8sConfigFilePath] = "/data/spotmax/k8sconfig"
		}
		f := newFixture(t, fixtureOpts{noVolume: true, tags: tags})
		w := f.workflow()
		var mu sync.Mutex
		var delays []replace.Progress
		w.OnProgress = func(p replace.Progress) {
			mu.Lock()
			defer mu.Unlock()
			if p.Step == "pod-delay" || p.Step == "detach" {
				delays = append(delays, p)
			}
		}
		if _, err := f.replace(t, w, replace.Request{InstanceID: f.members[0], Reason: replace.ReasonManual}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		got := delays
		mu.Unlock()
		waited := len(got) > 0 && got[0].Step == "pod-delay" && got[0].Detail == (20*time.Second).String()
		if waited != k8s {
			t.Errorf("kubeconfig %v: progress %+v; want pod-delay 20s before the detach = %v", k8s, got, k8s)
		}
		f.checkInvariants(t)
	}
}
