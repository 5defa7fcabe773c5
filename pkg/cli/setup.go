package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/spf13/cobra"

	"github.com/spotmax/spotmax/pkg/eventsetup"
)

// SetupEventsOptions are the inputs of `spotmax setup events`.
type SetupEventsOptions struct {
	IO        *IOStreams
	Output    string
	QueueName string
	DryRun    bool
	Yes       bool

	SQS     eventsetup.SQSAPI
	Events  eventsetup.EventsAPI
	confirm func(string) error
}

func newSetupCmd(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Create the AWS resources that spotmax run needs",
		Long: `Create, idempotently, the AWS resources that 'spotmax run' relies on. Each subcommand
shows what it would change with --dry-run and changes nothing that is already right.`,
	}
	cmd.AddCommand(newSetupEventsCmd(f, nil))
	return cmd
}

func newSetupEventsCmd(f *Factory, runF func(context.Context, *SetupEventsOptions) error) *cobra.Command {
	opts := &SetupEventsOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Create the SQS queue and EventBridge rules that bring EC2 events to spotmax run",
		Long: `Create the SQS queue that 'spotmax run --queue-url' consumes, its access policy, and one
EventBridge rule per event type that spotmax acts on, each delivering to the queue:

  <queue>-spot-interruption     EC2 Spot Instance Interruption Warning
  <queue>-rebalance             EC2 Instance Rebalance Recommendation
  <queue>-state-change          EC2 Instance State-change Notification (stopping, stopped,
                                shutting-down, terminated)
  <queue>-launch-unsuccessful   EC2 Instance Launch Unsuccessful (Auto Scaling)

The queue keeps messages for 5 minutes (a notice is worthless after its 2 minutes) and is
encrypted with SQS-managed keys. Its policy lets events.amazonaws.com send from these rules
only; other statements of an existing policy are kept. EventBridge cannot filter by tag, so the
rules cover every instance of the region: 'spotmax run' deletes the messages about instances
outside spotmax groups.

Running it again changes nothing; --dry-run prints what would be created or changed.`,
		Example: `  spotmax setup events --dry-run
  spotmax setup events --yes
  spotmax run --queue-url "$(spotmax setup events --yes -o json | jq -r .queue_url)"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Output = f.Output
			if err := eventsetup.CheckQueueName(opts.QueueName); err != nil {
				return flagErrorf("invalid --queue-name: %v", err)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			cfg, err := f.AWSConfig(cmd.Context())
			if err != nil {
				return err
			}
			opts.SQS, opts.Events = sqs.NewFromConfig(cfg), eventbridge.NewFromConfig(cfg)
			return setupEventsRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.QueueName, "queue-name", eventsetup.DefaultQueueName, "name of the SQS queue; the rules are named after it")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "print what would be created or changed without changing anything")
	fl.BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	opts.confirm = f.confirm
	return cmd
}

// setupEventsRun plans with a dry run, asks, then applies and prints the result.
func setupEventsRun(ctx context.Context, o *SetupEventsOptions) error {
	s := &eventsetup.Setup{SQS: o.SQS, Events: o.Events}
	res, err := s.Ensure(ctx, eventsetup.Options{QueueName: o.QueueName, DryRun: true})
	if err != nil {
		return err
	}
	if changes := res.Changed(); len(changes) > 0 && !o.DryRun {
		if !o.Yes && o.confirm != nil {
			printSetupChanges(o.IO.ErrOut, changes)
			if err := o.confirm(fmt.Sprintf("Make %d change(s) to create the event queue %s and its rules?", len(changes), o.QueueName)); err != nil {
				return err
			}
		}
		if res, err = s.Ensure(ctx, eventsetup.Options{QueueName: o.QueueName}); err != nil {
			return err
		}
	}
	if err := printData(o.IO.Out, o.Output, res, func(w io.Writer) error {
		changed := res.Changed()
		if len(changed) == 0 {
			fmt.Fprintf(w, "queue %s and its %d rules are already set up, nothing to change\n", o.QueueName, len(res.RuleARNs))
		} else {
			printSetupChanges(w, res.Changes)
			if res.DryRun {
				fmt.Fprintf(w, "dry run: %d change(s) not made\n", len(changed))
			} else {
				fmt.Fprintf(w, "%d change(s) made\n", len(changed))
			}
		}
		if res.QueueURL != "" {
			fmt.Fprintf(w, "queue URL: %s\n", res.QueueURL)
		}
		return nil
	}); err != nil {
		return err
	}
	if res.QueueURL != "" && o.Output == OutputTable {
		fmt.Fprintf(o.IO.ErrOut, "next: spotmax run --queue-url %s\n", res.QueueURL)
	}
	return nil
}

func printSetupChanges(w io.Writer, changes []eventsetup.Change) {
	t := NewTable("RESOURCE", "NAME", "ACTION", "DETAIL")
	for _, c := range changes {
		t.Row(c.Resource, c.Name, c.Action, c.Detail)
	}
	_ = t.Write(w)
}
