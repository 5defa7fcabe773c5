package inventory_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// region creates g spotmax groups of n instances each, plus one group without spotmax tags.
func region(t testing.TB, groups, n int) *simtest.Env {
	t.Helper()
	lat := sim.FastLatencies()
	lat.Pending, lat.ASGCheck = time.Millisecond, time.Second
	env := simtest.Start(t, sim.Options{Latencies: &lat})
	env.Populate(t, groups+1, n, func(i int, name string) []sim.ASGTag {
		if i == groups {
			return nil // not a spotmax group
		}
		return []sim.ASGTag{{Key: groupconfig.TagGroup, Value: name, PropagateAtLaunch: true},
			{Key: groupconfig.TagPersistenceDev, Value: "/dev/sdf"}}
	})
	return env
}

func lister(env *simtest.Env) *inventory.Lister {
	return &inventory.Lister{ASG: autoscaling.NewFromConfig(env.Config), EC2: ec2.NewFromConfig(env.Config)}
}

// countCalls lists with clients that never retry, so that the simulator's count is exactly the
// calling pattern. A transient transport error on a loaded machine (which the SDK would
// otherwise retry, adding a call) makes it list again.
func countCalls(t testing.TB, env *simtest.Env) int {
	t.Helper()
	cfg := env.Config
	cfg.RetryMaxAttempts = 1
	l := &inventory.Lister{ASG: autoscaling.NewFromConfig(cfg), EC2: ec2.NewFromConfig(cfg)}
	for attempt := 0; ; attempt++ {
		env.Region().ResetCalls()
		_, err := l.List(context.Background(), inventory.Options{Members: true})
		if err == nil {
			return env.Region().CallsTotal()
		}
		if attempt == 5 {
			t.Fatal(err)
		}
	}
}

func TestListReadsGroupsMembersAndVolumes(t *testing.T) {
	env := region(t, 3, 2)
	groups, err := lister(env).List(context.Background(), inventory.Options{Members: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 3 {
		t.Fatalf("groups = %d, want the 3 spotmax groups", len(groups))
	}
	for _, g := range groups {
		if !g.Managed() || len(g.Members) != 2 || g.Template == nil {
			t.Errorf("group %s: managed %v, members %d, template %v", g.Name, g.Managed(), len(g.Members), g.Template)
		}
		for _, m := range g.Members {
			v, ok := m.VolumeAt("/dev/sdf")
			if m.Market != "spot" || m.State != "running" || !ok || !v.DeleteOnTermination || m.LaunchTime.IsZero() {
				t.Errorf("member %+v", m)
			}
		}
	}
	if _, err := lister(env).Group(context.Background(), "missing"); err == nil {
		t.Error("Group(missing) succeeded")
	}
}

// TestListCallsGrowWithPages checks the calling pattern: the number of calls grows with result
// pages, not with groups × instances.
func TestListCallsGrowWithPages(t *testing.T) {
	for _, tc := range []struct{ groups, n int }{{10, 3}, {250, 4}} {
		env := region(t, tc.groups, tc.n)
		got := countCalls(t, env)
		asgPages := (tc.groups + 99) / 100
		chunks := (tc.groups + 199) / 200
		instPages := 0
		for c := 0; c < chunks; c++ {
			inChunk := min(200, tc.groups-c*200) * tc.n
			instPages += max(1, (inChunk+999)/1000)
		}
		want := asgPages + instPages
		if got != want {
			t.Errorf("%d groups × %d: %d calls (%v), want %d", tc.groups, tc.n, got, env.Region().Calls(), want)
		}
	}
}

// BenchmarkListCalls reports the API calls of one inventory of G groups × 10 instances, and of a
// per-group/per-instance calling pattern (the baseline), as calls/op.
func BenchmarkListCalls(b *testing.B) {
	for _, groups := range []int{10, 100, 1000} {
		env := region(b, groups, 10)
		l := lister(env)
		b.Run(fmt.Sprintf("groups=%d/paged", groups), func(b *testing.B) {
			env.Region().ResetCalls()
			for i := 0; i < b.N; i++ {
				if _, err := l.List(context.Background(), inventory.Options{Members: true}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(env.Region().CallsTotal())/float64(b.N), "calls/op")
		})
		b.Run(fmt.Sprintf("groups=%d/per-instance-baseline", groups), func(b *testing.B) {
			asg := autoscaling.NewFromConfig(env.Config)
			ec2c := ec2.NewFromConfig(env.Config)
			names, err := l.List(context.Background(), inventory.Options{})
			if err != nil {
				b.Fatal(err)
			}
			env.Region().ResetCalls()
			for i := 0; i < b.N; i++ {
				for _, g := range names {
					out, err := asg.DescribeAutoScalingGroups(context.Background(), &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{g.Name}})
					if err != nil {
						b.Fatal(err)
					}
					for _, m := range out.AutoScalingGroups[0].Instances {
						if _, err := ec2c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{aws.ToString(m.InstanceId)}}); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			b.ReportMetric(float64(env.Region().CallsTotal())/float64(b.N), "calls/op")
		})
	}
}
