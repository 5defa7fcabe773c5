package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spotmax/spotmax/pkg/inventory"
)

// GroupStatusOptions are the inputs of `spotmax group status`.
type GroupStatusOptions struct {
	IO     *IOStreams
	Output string
	Group  string
	ASG    inventory.AutoScalingReader
	EC2    inventory.EC2InstanceReader
	// Now is the time ages are measured against; tests fix it.
	Now func() time.Time
}

// statusJSON is the stable JSON shape of `spotmax group status -o json`.
type statusJSON struct {
	Group     groupJSON        `json:"group"`
	Instances []instanceStatus `json:"instances"`
}

type instanceStatus struct {
	ID             string `json:"id"`
	Type           string `json:"type"`
	Market         string `json:"market"`
	AZ             string `json:"az"`
	State          string `json:"state"`
	LifecycleState string `json:"lifecycle_state"`
	LaunchTime     string `json:"launch_time"`
	AgeSeconds     int64  `json:"age_seconds"`
	// LifetimeLeftSeconds is the time until the guaranteed lifetime ends and spotmax replaces the
	// instance; null when the group has no guaranteed lifetime.
	LifetimeLeftSeconds *int64 `json:"lifetime_left_seconds"`
	DataVolume          string `json:"data_volume"`
	// DataVolumeDeleteOnTermination is true when the data volume would be deleted with the
	// instance: spotmax turns it off as soon as it manages the instance.
	DataVolumeDeleteOnTermination bool `json:"data_volume_delete_on_termination"`
}

func newGroupStatusCmd(f *Factory, runF func(context.Context, *GroupStatusOptions) error) *cobra.Command {
	opts := &GroupStatusOptions{IO: f.IO, Now: time.Now}
	return &cobra.Command{
		Use:   "status ASG",
		Short: "Show a group's instances: market, AZ, age, lifetime left, data volume",
		Args:  exactArgs(1, "one Auto Scaling group name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Group = args[0]
			opts.Output = f.Output
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			l, err := f.Lister(cmd.Context())
			if err != nil {
				return err
			}
			opts.ASG, opts.EC2 = l.ASG, l.EC2
			return groupStatusRun(cmd.Context(), opts)
		},
	}
}

func groupStatusRun(ctx context.Context, o *GroupStatusOptions) error {
	lister := inventory.Lister{ASG: o.ASG, EC2: o.EC2}
	g, err := lister.Group(ctx, o.Group)
	if err != nil {
		return err
	}
	now := o.Now()
	out := statusJSON{Group: toGroupJSON(g), Instances: []instanceStatus{}}
	for _, m := range g.Members {
		s := instanceStatus{ID: m.ID, Type: m.Type, Market: m.Market, AZ: m.AZ, State: m.State,
			LifecycleState: m.LifecycleState}
		if !m.LaunchTime.IsZero() {
			s.LaunchTime = m.LaunchTime.UTC().Format(time.RFC3339)
			s.AgeSeconds = int64(now.Sub(m.LaunchTime).Seconds())
		}
		if g.Config != nil {
			if deadline := g.Config.ProactiveDeadline(); deadline > 0 && !m.LaunchTime.IsZero() {
				left := int64((deadline - now.Sub(m.LaunchTime)).Seconds())
				s.LifetimeLeftSeconds = &left
			}
			// One entry per data device the member holds (comma-separated for several).
			var ids []string
			for _, d := range g.Config.DataDevices() {
				if v, ok := m.VolumeAt(d.Device); ok {
					ids = append(ids, v.ID)
					s.DataVolumeDeleteOnTermination = s.DataVolumeDeleteOnTermination || v.DeleteOnTermination
				}
			}
			s.DataVolume = strings.Join(ids, ",")
		}
		out.Instances = append(out.Instances, s)
	}
	return printData(o.IO.Out, o.Output, out, func(w io.Writer) error {
		gj := out.Group
		fmt.Fprintf(w, "group %s  min/desired/max %d/%d/%d  spot %d  on-demand %d\n", gj.Name, gj.Min, gj.Desired, gj.Max, gj.Spot, gj.OnDemand)
		switch {
		case gj.NotManaged != "" && !gj.Ignored:
			// No spotmax:group tag: there is no configuration to show.
			fmt.Fprintln(w, "NOT MANAGED: "+gj.NotManaged)
		case !gj.Valid:
			for _, p := range gj.Problems {
				fmt.Fprintln(w, "INVALID: "+p)
			}
		case gj.Summary != "":
			fmt.Fprintln(w, "config: "+gj.Summary)
			if gj.Ignored {
				fmt.Fprintln(w, "NOT MANAGED: "+gj.NotManaged)
			}
		}
		fmt.Fprintln(w)
		t := NewTable("INSTANCE", "TYPE", "MARKET", "AZ", "STATE", "AGE", "LIFETIME LEFT", "DATA VOLUME")
		for _, s := range out.Instances {
			left := ""
			if s.LifetimeLeftSeconds != nil {
				left = age(time.Duration(*s.LifetimeLeftSeconds) * time.Second)
				if *s.LifetimeLeftSeconds <= 0 {
					left = "due"
				}
			}
			vol := s.DataVolume
			if vol != "" && s.DataVolumeDeleteOnTermination {
				vol += " (DELETE ON TERMINATION!)"
			}
			state := s.State
			if s.LifecycleState != "" {
				state += "/" + s.LifecycleState
			}
			t.Row(s.ID, s.Type, s.Market, s.AZ, state, age(time.Duration(s.AgeSeconds)*time.Second), left, vol)
		}
		if t.Len() == 0 {
			_, err := fmt.Fprintln(w, "no instances")
			return err
		}
		return t.Write(w)
	})
}
