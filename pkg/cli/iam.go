package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/spotmax/spotmax/pkg/iam"
)

// IAMPolicyOptions are the inputs of `spotmax iam-policy`.
type IAMPolicyOptions struct {
	IO      *IOStreams
	Output  string
	Role    iam.Role
	Explain bool
	Policy  iam.Options
}

func newIAMPolicyCmd(f *Factory, runF func(context.Context, *IAMPolicyOptions) error) *cobra.Command {
	opts := &IAMPolicyOptions{IO: f.IO}
	var role string
	cmd := &cobra.Command{
		Use:   "iam-policy",
		Short: "Print the least-privilege IAM policy of the controller or the agent",
		Long: `Print the IAM policy that spotmax needs, for one of its two roles:

  controller  'spotmax run' and the operator commands, on a management host or laptop
  agent       spotmax-agent, in the instance profile of every instance of a spotmax group

Mutating actions are conditioned on the spotmax:group tag wherever AWS evaluates tags for
them; --group narrows them to one group. The output is the policy document (JSON, or YAML with
-o yaml), ready for 'aws iam put-role-policy --policy-document file://...'; --explain prints
why each statement exists instead. docs/iam.md explains the policy and the EKS aws-auth
mapping that Kubernetes drain needs.`,
		Example: `  spotmax iam-policy --role controller --group web > controller.json
  spotmax iam-policy --role agent
  spotmax iam-policy --explain`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Output = f.Output
			r, err := iam.ParseRole(role)
			if err != nil {
				return flagErrorf("invalid --role: %v", err)
			}
			opts.Role = r
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return iamPolicyRun(opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&role, "role", string(iam.Controller), "role: controller or agent")
	fl.StringVar(&opts.Policy.Group, "group", "", "narrow the policy to this spotmax group (default: every spotmax group)")
	fl.StringVar(&opts.Policy.Partition, "partition", "aws", "ARN partition: aws, aws-cn or aws-us-gov")
	fl.StringVar(&opts.Policy.QueueARN, "queue-arn", "", "SQS queue of EC2 interruption events (default: arn:PARTITION:sqs:*:*:spotmax-*)")
	fl.StringVar(&opts.Policy.InstanceRoleARN, "instance-role-arn", "", "role of the launch templates' instance profile (default: any role, passed to EC2 only)")
	fl.BoolVar(&opts.Explain, "explain", false, "print why each statement exists instead of the policy")
	_ = cmd.RegisterFlagCompletionFunc("role", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{string(iam.Controller), string(iam.Agent)}, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

func iamPolicyRun(o *IAMPolicyOptions) error {
	p, err := iam.For(o.Role, o.Policy)
	if err != nil {
		return &FlagError{err: err}
	}
	if o.Explain {
		return writeExplanation(o.IO.Out, o.Role, p)
	}
	if o.Output == OutputYAML {
		return printData(o.IO.Out, OutputYAML, p, nil)
	}
	b, err := p.JSON()
	if err != nil {
		return err
	}
	_, err = o.IO.Out.Write(b)
	return err
}

func writeExplanation(w io.Writer, role iam.Role, p *iam.Policy) error {
	fmt.Fprintf(w, "IAM policy of the spotmax %s role\n", role)
	for _, s := range p.Statement {
		fmt.Fprintf(w, "\n%s: %s\n  on %s\n", s.Sid, strings.Join(s.Action, ", "), strings.Join(s.Resource, ", "))
		for _, op := range slices.Sorted(maps.Keys(s.Condition)) {
			for _, k := range slices.Sorted(maps.Keys(s.Condition[op])) {
				fmt.Fprintf(w, "  if %s %s %v\n", k, op, s.Condition[op][k])
			}
		}
		fmt.Fprintf(w, "  %s\n", s.Why)
	}
	return nil
}
