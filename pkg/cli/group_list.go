package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
)

// GroupListOptions are the inputs of `spotmax group list`.
type GroupListOptions struct {
	IO     *IOStreams
	Output string
	ASG    inventory.AutoScalingReader
	EC2    inventory.EC2InstanceReader
}

// groupJSON is the stable JSON shape of one group in `spotmax group list -o json`.
type groupJSON struct {
	Name              string            `json:"name"`
	Min               int32             `json:"min"`
	Desired           int32             `json:"desired"`
	Max               int32             `json:"max"`
	Instances         int               `json:"instances"`
	Spot              int               `json:"spot"`
	OnDemand          int               `json:"on_demand"`
	Managed           bool              `json:"managed"`
	Ignored           bool              `json:"ignored"`
	Valid             bool              `json:"valid"`
	CapacityRebalance bool              `json:"capacity_rebalance"`
	LaunchTemplate    string            `json:"launch_template"`
	Summary           string            `json:"summary"`
	Settings          map[string]string `json:"settings"`
	Problems          []string          `json:"problems"`
	Warnings          []string          `json:"warnings"`
	// NotManaged says why spotmax does not act on the group (no spotmax:group tag, or
	// spotmax:ignore_tag=true) and how to change that; absent when the group is managed or
	// its tags do not validate (Problems says why).
	NotManaged string `json:"not_managed,omitempty"`
}

func newGroupListCmd(f *Factory, runF func(context.Context, *GroupListOptions) error) *cobra.Command {
	opts := &GroupListOptions{IO: f.IO}
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the spotmax groups of the region",
		Long: `List every Auto Scaling group with a spotmax:group tag: size, spot and on-demand counts and a
one-line summary of its configuration. Groups whose tags do not validate are flagged INVALID
with the first problem; spotmax leaves them alone until they are fixed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Output = f.Output
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			l, err := f.Lister(cmd.Context())
			if err != nil {
				return err
			}
			opts.ASG, opts.EC2 = l.ASG, l.EC2
			return groupListRun(cmd.Context(), opts)
		},
	}
}

func groupListRun(ctx context.Context, o *GroupListOptions) error {
	lister := inventory.Lister{ASG: o.ASG, EC2: o.EC2}
	groups, err := lister.List(ctx, inventory.Options{Members: true})
	if err != nil {
		return err
	}
	out := make([]groupJSON, 0, len(groups))
	for _, g := range groups {
		out = append(out, toGroupJSON(g))
	}
	return printData(o.IO.Out, o.Output, out, func(w io.Writer) error {
		if len(out) == 0 {
			_, err := fmt.Fprintln(w, "no spotmax groups in this region (tag one with 'spotmax group tag ASG ...')")
			return err
		}
		t := NewTable("NAME", "MIN/DESIRED/MAX", "SPOT", "ON-DEMAND", "CONFIGURATION")
		for _, g := range out {
			conf := g.Summary
			switch {
			case !g.Valid:
				conf = "INVALID: " + g.Problems[0]
				if len(g.Problems) > 1 {
					conf += fmt.Sprintf(" (+%d more)", len(g.Problems)-1)
				}
			case g.Ignored:
				conf = "IGNORED (spotmax:ignore_tag=true)"
			}
			if g.CapacityRebalance {
				conf += " [capacity rebalancing ON: turn it off]"
			}
			t.Row(g.Name, fmt.Sprintf("%d/%d/%d", g.Min, g.Desired, g.Max), fmt.Sprint(g.Spot), fmt.Sprint(g.OnDemand), conf)
		}
		return t.Write(w)
	})
}

func toGroupJSON(g *inventory.Group) groupJSON {
	j := groupJSON{
		Name: g.Name, Min: g.Min, Desired: g.Desired, Max: g.Max, Instances: len(g.Members),
		CapacityRebalance: g.CapacityRebalance, LaunchTemplate: g.LaunchTemplate,
		Settings: map[string]string{}, Problems: []string{}, Warnings: []string{},
	}
	for _, m := range g.Members {
		switch m.Market {
		case "spot":
			j.Spot++
		case "on-demand":
			j.OnDemand++
		}
	}
	if g.Config != nil {
		j.Valid = true
		j.Ignored = g.Config.Ignore
		j.Managed = g.Managed()
		j.Summary = g.Config.Summary()
		j.Warnings = append(j.Warnings, g.Config.Warnings...)
		for _, t := range g.Config.Tags() {
			j.Settings[t.Key] = t.Value
		}
	}
	if g.ConfigErr == nil {
		if err := g.CheckManaged(); err != nil {
			j.NotManaged = err.Error()
		}
	}
	var verr *groupconfig.ValidationError
	if errors.As(g.ConfigErr, &verr) {
		for _, p := range verr.Problems {
			j.Problems = append(j.Problems, p.String())
		}
	} else if g.ConfigErr != nil {
		j.Problems = append(j.Problems, g.ConfigErr.Error())
	}
	return j
}

// age renders a duration for tables: 3d4h, 2h05m, 14m, 40s.
func age(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	case d >= time.Minute:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	}
	return fmt.Sprintf("%ds", int(d.Seconds()))
}
