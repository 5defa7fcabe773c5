// Package cli implements the spotmax command line: one cobra command per file, a Factory with
// lazy clients, data on stdout and progress on stderr, and the one mapping from errors to exit
// codes.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/spotmax/spotmax/pkg/version"
)

// Main runs the spotmax command with the process's arguments and streams and returns the exit
// code.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, NewFactory(System()), os.Args[1:])
}

// Run runs the spotmax command with args and returns the exit code.
func Run(ctx context.Context, f *Factory, args []string) int {
	cmd := NewRootCmd(f)
	cmd.SetArgs(args)
	cmd.SetIn(f.IO.In)
	cmd.SetOut(f.IO.Out)
	cmd.SetErr(f.IO.ErrOut)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code := exitCode(err)
	if code != ExitCancelled || !errors.Is(err, ErrCancelled) {
		fmt.Fprintln(f.IO.ErrOut, "spotmax: "+errorLine(err))
	}
	var flagErr *FlagError
	if errors.As(err, &flagErr) {
		fmt.Fprintln(f.IO.ErrOut, "Run 'spotmax --help' for usage.")
	}
	return code
}

// NewRootCmd returns the spotmax command tree.
func NewRootCmd(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "spotmax",
		Short: "Keep EC2 Auto Scaling groups on spot without losing data, traffic or sleep",
		Long: `spotmax keeps the Auto Scaling groups you tag with spotmax:* tags on spot instances.
When a spot instance is interrupted, reaches its guaranteed lifetime or stands in as on-demand,
spotmax launches a replacement, retires the old instance gracefully and moves its EBS data
volume to the replacement.

AWS configuration comes from the standard chain (environment, profiles, SSO, IAM role);
AWS_ENDPOINT_URL points every client elsewhere, e.g. at 'spotmax sim serve'.

Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 invalid group configuration, 5 no AWS
credentials or region, 6 group not managed by spotmax (no spotmax:group tag, or
spotmax:ignore_tag=true), 7 instance busy (another spotmax process holds its replacement's
lease), 8 untrusted journal (nothing done), 130 cancelled.`,
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return validOutput(f.Output)
		},
	}
	// No SetVersionTemplate: a template makes text/template reachable, whose MethodByName stops
	// the linker from dropping any unused exported method (all of the AWS SDK clients' operations),
	// which made every command start slower and larger. `spotmax --version` prints cobra's
	// "spotmax version X"; `spotmax version` prints the commit and date too.
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &FlagError{err: err} })
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.Region, "region", "", "AWS region (default: from AWS_REGION or the profile)")
	pf.StringVar(&f.Profile, "profile", "", "AWS shared-config profile (default: AWS_PROFILE)")
	pf.StringVarP(&f.Output, "output", "o", OutputTable, "output format: table, json or yaml")
	pf.StringVar(&f.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	pf.DurationVar(&f.PollInterval, "poll-interval", time.Second, "first interval of AWS status polls (they back off to 15×); lower it only against a simulator")
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{OutputTable, OutputJSON, OutputYAML}, cobra.ShellCompDirectiveNoFileComp
	})

	cmd.AddCommand(newVersionCmd(f))
	cmd.AddCommand(newGroupCmd(f))
	cmd.AddCommand(newReplaceCmd(f, nil))
	cmd.AddCommand(newRunCmd(f))
	cmd.AddCommand(newDemoCmd(f))
	cmd.AddCommand(newSimCmd(f))
	cmd.AddCommand(newDrainCmd(f))
	cmd.AddCommand(newHistoryCmd(f, nil))
	cmd.AddCommand(newSavingsCmd(f))
	cmd.AddCommand(newVolumesCmd(f))
	cmd.AddCommand(newIAMPolicyCmd(f, nil))
	cmd.AddCommand(newDashboardCmd(f, nil))
	cmd.AddCommand(newSetupCmd(f))
	return cmd
}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return flagErrorf("%s expects %s", cmd.CommandPath(), what)
		}
		return nil
	}
}

func newVersionCmd(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v := struct {
				Version string `json:"version"`
				Commit  string `json:"commit"`
				Date    string `json:"date"`
			}{version.Version, version.Commit(), version.Date()}
			return printData(f.IO.Out, f.Output, v, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "spotmax %s\n", version.String())
				return err
			})
		},
	}
}
