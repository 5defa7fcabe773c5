package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/spf13/cobra"

	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/metrics"
	"github.com/spotmax/spotmax/pkg/savings"
)

// SavingsOptions are the inputs of `spotmax savings`.
type SavingsOptions struct {
	IO     *IOStreams
	Output string
	Group  string
	// Since is the length of the period ending now; used when Start is zero.
	Since      time.Duration
	Start, End time.Time
	Lister     *inventory.Lister
	Logs       metrics.ActionQueryAPI
	Prices     savings.Prices
	Now        func() time.Time
}

func newSavingsCmd(f *Factory) *cobra.Command {
	opts := &SavingsOptions{IO: f.IO, Now: time.Now}
	var since, start, end string
	cmd := &cobra.Command{
		Use:   "savings",
		Short: "What spotmax groups really cost over a period, against the same hours on-demand",
		Long: `Report the realised cost of each spotmax group over a period: its instance-hours by market, type
and AZ, priced with the spot price history (DescribeSpotPriceHistory) and the on-demand prices of
the AWS Price List API, against the same hours all on-demand; per group and in total, with a chart
on a terminal.

The hours come from what spotmax saw and did: the groups' current instances (from their launch
time) and the instances spotmax replaced (from the action records in the CloudWatch Logs log group
/spotmax/actions, which keep the old instance's launch time, market, type and AZ until its
replacement ended). Instances that left a group without spotmax are not counted.`,
		Example: `  spotmax savings
  spotmax savings --group web --since 30d
  spotmax savings --start 2026-03-01T00:00:00Z --end 2026-04-01T00:00:00Z -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Output = f.Output
			var err error
			if opts.Since, opts.Start, opts.End, err = parsePeriod(cmd.Flags(), since, start, end); err != nil {
				return err
			}
			cfg, err := f.AWSConfig(cmd.Context())
			if err != nil {
				return err
			}
			lister, err := f.Lister(cmd.Context())
			if err != nil {
				return err
			}
			ec2c, err := f.EC2(cmd.Context())
			if err != nil {
				return err
			}
			pc, err := f.Pricing(cmd.Context())
			if err != nil {
				return err
			}
			opts.Lister, opts.Logs = lister, cloudwatchlogs.NewFromConfig(cfg)
			opts.Prices = &savings.AWSPrices{EC2: ec2c, Pricing: pc, Region: cfg.Region}
			return savingsRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Group, "group", "", "one Auto Scaling group (default: every spotmax group)")
	fl.StringVar(&since, "since", "24h", "length of the period ending now: a duration such as 90m, 24h or 7d")
	fl.StringVar(&start, "start", "", "start of the period, RFC 3339")
	fl.StringVar(&end, "end", "", "end of the period, RFC 3339 (default: now)")
	return cmd
}

func savingsRun(ctx context.Context, o *SavingsOptions) error {
	now := o.Now()
	start, end := o.Start, o.End
	if start.IsZero() {
		start, end = now.Add(-o.Since), now
	}
	if end.IsZero() || end.After(now) {
		end = now
	}
	if !start.Before(end) {
		return flagErrorf("--start %s is not before the end of the period %s", start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
	}
	var names []string
	if o.Group != "" {
		names = []string{o.Group}
	}
	groups, err := o.Lister.List(ctx, inventory.Options{Names: names, Members: true})
	if err != nil {
		return err
	}
	var live []savings.Live
	for _, g := range groups {
		if o.Group == "" && !g.Managed() {
			continue
		}
		for _, m := range g.Members {
			switch m.State {
			case "pending", "running", "stopping", "shutting-down":
			default:
				continue
			}
			live = append(live, savings.Live{Group: g.Name, Instance: m.ID, Market: m.Market, Type: m.Type, AZ: m.AZ, Launched: m.LaunchTime})
		}
	}
	actions, err := metrics.QueryActions(ctx, o.Logs, metrics.ActionQuery{Group: o.Group, Start: start, End: end})
	if err != nil {
		return err
	}
	rep, err := savings.Compute(ctx, savings.Reconstruct(live, actions, start, end), o.Prices, start, end)
	if err != nil {
		return err
	}
	return printData(o.IO.Out, o.Output, rep, func(w io.Writer) error { return WriteSavings(w, rep, o.IO.OutTTY) })
}

// WriteSavings prints a savings report: a table per group and the total, and on a terminal a
// bar chart of each group's cost against all on-demand.
func WriteSavings(w io.Writer, rep *savings.Report, tty bool) error {
	fmt.Fprintf(w, "realised cost %s to %s (instances spotmax knows of; USD)\n", rep.Start.Format("2006-01-02 15:04Z"), rep.End.Format("2006-01-02 15:04Z"))
	if len(rep.Groups) == 0 {
		_, err := fmt.Fprintln(w, "no instance-hours in this period")
		return err
	}
	for _, g := range rep.Groups {
		fmt.Fprintf(w, "\ngroup %s\n", g.Name)
		t := NewTable("MARKET", "TYPE", "AZ", "INSTANCES", "HOURS", "COST", "ON-DEMAND COST")
		for _, l := range g.Lines {
			t.Row(l.Market, l.Type, l.AZ, fmt.Sprint(l.Instances), fmt.Sprintf("%.2f", l.Hours), usd(l.Cost), usd(l.OnDemandCost))
		}
		if err := t.Write(w); err != nil {
			return err
		}
		fmt.Fprintf(w, "%s\n", totalLine(g.Total))
	}
	fmt.Fprintf(w, "\nTOTAL %s\n", totalLine(rep.Total))
	if tty {
		fmt.Fprintln(w)
		writeSavingsChart(w, rep, 40)
	}
	return nil
}

func totalLine(t savings.Total) string {
	share := 0.0
	if t.Hours > 0 {
		share = 100 * t.SpotHours / t.Hours
	}
	return fmt.Sprintf("%.2f instance-hours (%.0f%% spot): cost %s vs %s all on-demand, saved %s (%.1f%%)",
		t.Hours, share, usd(t.Cost), usd(t.OnDemandCost), usd(t.Saved), t.SavedPercent)
}

func usd(v float64) string {
	if v != 0 && v < 0.01 && v > -0.01 {
		return fmt.Sprintf("$%.6f", v)
	}
	return fmt.Sprintf("$%.2f", v)
}

// writeSavingsChart draws each group's realised cost (█) against its all-on-demand cost (░).
func writeSavingsChart(w io.Writer, rep *savings.Report, width int) {
	peak := 0.0
	for _, g := range rep.Groups {
		peak = max(peak, g.Total.OnDemandCost, g.Total.Cost)
	}
	if peak <= 0 {
		return
	}
	name := 0
	for _, g := range rep.Groups {
		name = max(name, len(g.Name))
	}
	for _, g := range rep.Groups {
		paid := int(g.Total.Cost / peak * float64(width))
		od := int(g.Total.OnDemandCost / peak * float64(width))
		bar := strings.Repeat("█", paid) + strings.Repeat("░", max(od-paid, 0))
		fmt.Fprintf(w, "%-*s │%-*s│ %s of %s\n", name, g.Name, width, bar, usd(g.Total.Cost), usd(g.Total.OnDemandCost))
	}
	fmt.Fprintf(w, "%-*s  █ paid  ░ saved against all on-demand\n", name, "")
}
