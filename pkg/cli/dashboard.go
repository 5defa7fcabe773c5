package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/spf13/cobra"

	"github.com/spotmax/spotmax/pkg/metrics"
)

// DashboardOptions are the inputs of `spotmax dashboard`.
type DashboardOptions struct {
	IO     *IOStreams
	Output string
	Group  string
	Name   string
	Region string
	DryRun bool
	Yes    bool
	CW     metrics.DashboardAPI
	// confirm asks before overwriting; tests replace it.
	confirm func(string) error
}

// dashboardJSON is the JSON shape of `spotmax dashboard -o json` (without --dry-run).
type dashboardJSON struct {
	Name     string   `json:"name"`
	Group    string   `json:"group"`
	Messages []string `json:"messages"`
}

func newDashboardCmd(f *Factory, runF func(context.Context, *DashboardOptions) error) *cobra.Command {
	opts := &DashboardOptions{IO: f.IO, confirm: f.confirm}
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Write a CloudWatch dashboard of what spotmax does for a group",
		Long: `Write a CloudWatch dashboard (PutDashboard) with spotmax's event counts, the average
durations of replacements, volume moves, drains and deregistrations, and, for a group, its
instances by market. The dashboard is named SpotMax-GROUP (SpotMax for the region-wide totals);
the controller's IAM policy allows writing dashboards whose names start with SpotMax.
--dry-run prints the dashboard body instead of writing it. An existing dashboard of the same
name is replaced: on a terminal spotmax asks first, elsewhere pass --yes.`,
		Example: `  spotmax dashboard --group web --dry-run
  spotmax dashboard --group web --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Output = f.Output
			if opts.Name == "" {
				opts.Name = metrics.DashboardName(opts.Group)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			cfg, err := f.AWSConfig(cmd.Context())
			if err != nil {
				return err
			}
			opts.Region = cfg.Region
			opts.CW = cloudwatch.NewFromConfig(cfg)
			return dashboardRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Group, "group", "", "Auto Scaling group (default: the region-wide totals)")
	fl.StringVar(&opts.Name, "name", "", "dashboard name (default: SpotMax-GROUP, or SpotMax)")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "print the dashboard body instead of writing it")
	fl.BoolVar(&opts.Yes, "yes", false, "do not ask before replacing the dashboard")
	return cmd
}

func dashboardRun(ctx context.Context, o *DashboardOptions) error {
	body, err := metrics.DashboardBody(o.Group, o.Region)
	if err != nil {
		return err
	}
	if o.DryRun {
		_, err := fmt.Fprintf(o.IO.Out, "%s\n", body)
		return err
	}
	if !o.Yes {
		if err := o.confirm(fmt.Sprintf("Write CloudWatch dashboard %s (replacing it if it exists)?", o.Name)); err != nil {
			return err
		}
	}
	out, err := o.CW.PutDashboard(ctx, &cloudwatch.PutDashboardInput{DashboardName: aws.String(o.Name), DashboardBody: aws.String(string(body))})
	if err != nil {
		return fmt.Errorf("writing CloudWatch dashboard %s: %w", o.Name, err)
	}
	res := dashboardJSON{Name: o.Name, Group: o.Group, Messages: []string{}}
	for _, m := range out.DashboardValidationMessages {
		res.Messages = append(res.Messages, strings.TrimSpace(aws.ToString(m.DataPath)+" "+aws.ToString(m.Message)))
	}
	return printData(o.IO.Out, o.Output, res, func(w io.Writer) error {
		fmt.Fprintf(w, "wrote CloudWatch dashboard %s\n", o.Name)
		for _, m := range res.Messages {
			fmt.Fprintf(w, "  CloudWatch: %s\n", m)
		}
		return nil
	})
}
