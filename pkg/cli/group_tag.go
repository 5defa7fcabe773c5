package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
)

// groupTagAPI is what tagging a group needs from Auto Scaling.
type groupTagAPI interface {
	DescribeAutoScalingGroups(ctx context.Context, in *autoscaling.DescribeAutoScalingGroupsInput, optFns ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
	CreateOrUpdateTags(ctx context.Context, in *autoscaling.CreateOrUpdateTagsInput, optFns ...func(*autoscaling.Options)) (*autoscaling.CreateOrUpdateTagsOutput, error)
	DeleteTags(ctx context.Context, in *autoscaling.DeleteTagsInput, optFns ...func(*autoscaling.Options)) (*autoscaling.DeleteTagsOutput, error)
}

// instanceTagAPI is what copying propagated tags onto current members needs from EC2.
type instanceTagAPI interface {
	CreateTags(ctx context.Context, in *ec2.CreateTagsInput, optFns ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
	DeleteTags(ctx context.Context, in *ec2.DeleteTagsInput, optFns ...func(*ec2.Options)) (*ec2.DeleteTagsOutput, error)
}

// groupTagEC2API is what tagging a group needs from EC2: copying propagated tags, and checking
// a new data device against the members' root devices and the launch template, and new
// alternative types against EC2's offerings.
type groupTagEC2API interface {
	instanceTagAPI
	inventory.EC2InstanceReader
	inventory.LaunchTemplateReader
	inventory.OfferingsReader
}

// GroupTagOptions are the inputs of `spotmax group tag` and `spotmax group untag`.
type GroupTagOptions struct {
	IO     *IOStreams
	Output string
	Group  string
	// Settings are key=value pairs in the order given (flags, then --set).
	Settings [][2]string
	// Unset are keys to remove (untag).
	Unset  []string
	DryRun bool
	Yes    bool

	ASG     groupTagAPI
	EC2     groupTagEC2API
	confirm func(string) error
}

// tagResult is the JSON shape of `spotmax group tag -o json`.
type tagResult struct {
	Group    string               `json:"group"`
	DryRun   bool                 `json:"dry_run"`
	Changes  []groupconfig.Change `json:"changes"`
	Members  int                  `json:"members_tagged"`
	Warnings []string             `json:"warnings"`
}

func newGroupTagCmd(f *Factory, runF func(context.Context, *GroupTagOptions) error) *cobra.Command {
	opts := &GroupTagOptions{IO: f.IO}
	var sets []string
	cmd := &cobra.Command{
		Use:   "tag ASG [flags]",
		Short: "Write spotmax tags on an Auto Scaling group",
		Long: `Write spotmax:* tags on an Auto Scaling group, one flag per tag or --set key=value.

The group's resulting tag set is validated as a whole before anything is written: an invalid
value names the group, the tag and the value, and nothing changes. A data device being set is
checked against the members' root device and the launch template's block-device mappings, and
alternative types being set against EC2's instance type offerings in the group's Availability
Zones. spotmax:group is set to the group's name when it is missing: tagging a group is how it
becomes managed, and with no tag flag that is all it does: the group is managed with every
setting at its default (docs/tags.md). Tags that propagate at launch are also copied onto the group's
current instances, since AWS only copies them onto instances launched later.`,
		Example: `  spotmax group tag web --yes      # manage web with the defaults
  spotmax group tag web --persistence-dev /dev/sdf --persistence-mount-path /data \
      --guarantee-living-mins 50 --alt m5.large,m5a.large --od-fallback
  spotmax group tag web --set spotmax:detaching_delay_seconds=80 --dry-run`,
		Args: exactArgs(1, "one Auto Scaling group name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Group = args[0]
			opts.Output = f.Output
			// Tag flags (a setting each; their order does not matter), then --set in the order given.
			cmd.Flags().Visit(func(fl *pflag.Flag) {
				if d, ok := groupconfig.LookupFlag(fl.Name); ok {
					opts.Settings = append(opts.Settings, [2]string{d.Key, fl.Value.String()})
				}
			})
			for _, s := range sets {
				k, v, ok := strings.Cut(s, "=")
				if !ok || strings.TrimSpace(k) == "" {
					return flagErrorf("invalid --set %q: want key=value, e.g. spotmax:detaching_delay_seconds=80", s)
				}
				opts.Settings = append(opts.Settings, [2]string{strings.TrimSpace(k), v})
			}
			// No tag flag: enable the group (spotmax:group) with every setting at its documented
			// default — the first thing everyone does.
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			if err := opts.clients(cmd.Context(), f); err != nil {
				return err
			}
			return groupTagRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	for _, d := range groupconfig.Defs() {
		if d.Flag == "" || d.Key == groupconfig.TagGroup {
			continue
		}
		help := d.Help
		if d.Default != "" {
			help += fmt.Sprintf(" (default %s)", d.Default)
		}
		if d.Kind == groupconfig.KindBool {
			fl.Bool(d.Flag, false, help)
			continue
		}
		fl.String(d.Flag, "", help)
	}
	fl.StringArrayVar(&sets, "set", nil, "set any spotmax tag: key=value (repeatable)")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "print the tag changes without writing them")
	fl.BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	opts.confirm = f.confirm
	return cmd
}

func newGroupUntagCmd(f *Factory, runF func(context.Context, *GroupTagOptions) error) *cobra.Command {
	opts := &GroupTagOptions{IO: f.IO}
	var all bool
	cmd := &cobra.Command{
		Use:   "untag ASG [KEY...]",
		Short: "Remove spotmax tags from an Auto Scaling group",
		Long: `Remove spotmax:* tags from an Auto Scaling group so their defaults apply again. Keys may be
written with or without the spotmax: prefix. With --all every spotmax tag goes, including
spotmax:group: spotmax stops managing the group.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 {
				return flagErrorf("%s expects an Auto Scaling group name and tag keys", cmd.CommandPath())
			}
			if len(args) == 1 && !all {
				return flagErrorf("name the tags to remove, or pass --all")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Group = args[0]
			opts.Output = f.Output
			for _, k := range args[1:] {
				if !strings.HasPrefix(k, groupconfig.Prefix) {
					k = groupconfig.Prefix + k
				}
				opts.Unset = append(opts.Unset, k)
			}
			if all {
				opts.Unset = append(opts.Unset, "*")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			if err := opts.clients(cmd.Context(), f); err != nil {
				return err
			}
			return groupTagRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "remove every spotmax tag (spotmax stops managing the group)")
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "print the tag changes without writing them")
	cmd.Flags().BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	opts.confirm = f.confirm
	return cmd
}

func (o *GroupTagOptions) clients(ctx context.Context, f *Factory) error {
	asg, err := f.AutoScaling(ctx)
	if err != nil {
		return err
	}
	ec2c, err := f.EC2(ctx)
	if err != nil {
		return err
	}
	o.ASG, o.EC2 = asg, ec2c
	return nil
}

// groupTagRun computes the group's new tag set, validates it as a whole, shows the diff and
// writes only what changes.
func groupTagRun(ctx context.Context, o *GroupTagOptions) error {
	lister := inventory.Lister{ASG: o.ASG, EC2: o.EC2}
	// The members' EC2 view (their root devices) only matters when a data device is set.
	groups, err := lister.List(ctx, inventory.Options{Names: []string{o.Group}, Members: settingsTouch(o.Settings, groupconfig.TagPersistenceDev)})
	if err != nil {
		return err
	}
	g := groups[0]
	current := g.Tags
	desired, err := applySettings(o.Group, current, o.Settings, o.Unset)
	if err != nil {
		return err
	}
	removingAll := len(o.Unset) > 0 && o.Unset[len(o.Unset)-1] == "*"
	var cfg *groupconfig.Config
	if !removingAll {
		if _, ok := tagValue(desired, groupconfig.TagGroup); !ok {
			desired, _ = groupconfig.Set(desired, groupconfig.TagGroup, o.Group)
		}
		cfg, err = groupconfig.Parse(o.Group, desired)
		if err != nil {
			return err
		}
		if err := o.checkAgainstAWS(ctx, g, cfg, desired); err != nil {
			return err
		}
	}
	changes := spotmaxOnly(groupconfig.Diff(current, desired))
	res := tagResult{Group: o.Group, DryRun: o.DryRun, Changes: changes, Warnings: []string{}}
	if cfg != nil {
		res.Warnings = append(res.Warnings, cfg.Warnings...)
	}
	if g.CapacityRebalance && !removingAll {
		res.Warnings = append(res.Warnings, fmt.Sprintf("group %s has Capacity Rebalancing on: AWS will replace and terminate interrupted spot instances on its own, before spotmax has moved their work and data; turn it off with 'aws autoscaling update-auto-scaling-group --auto-scaling-group-name %s --no-capacity-rebalance'", o.Group, o.Group))
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(o.IO.ErrOut, "warning: "+w)
	}
	if len(changes) > 0 && !o.DryRun && !o.Yes && o.confirm != nil {
		printChanges(o.IO.ErrOut, changes)
		if err := o.confirm(fmt.Sprintf("Write %d tag change(s) to group %s?", len(changes), o.Group)); err != nil {
			return err
		}
	}
	if len(changes) > 0 && !o.DryRun {
		if err := writeTagChanges(ctx, o.ASG, o.Group, changes); err != nil {
			return err
		}
		n, err := syncMemberTags(ctx, o.EC2, g, changes)
		if err != nil {
			return err
		}
		res.Members = n
	}
	if res.Changes == nil {
		res.Changes = []groupconfig.Change{}
	}
	return printData(o.IO.Out, o.Output, res, func(w io.Writer) error {
		if len(changes) == 0 {
			_, err := fmt.Fprintf(w, "group %s: tags already as asked, nothing to change\n", o.Group)
			return err
		}
		printChanges(w, changes)
		switch {
		case o.DryRun:
			fmt.Fprintf(w, "dry run: %d change(s) not written\n", len(changes))
		default:
			fmt.Fprintf(w, "group %s: %d change(s) written", o.Group, len(changes))
			if res.Members > 0 {
				fmt.Fprintf(w, ", propagated tags copied to %d instance(s)", res.Members)
			}
			fmt.Fprintln(w)
		}
		return nil
	})
}

// applySettings returns current with settings applied and keys unset ("*" unsets every spotmax
// tag). A value that does not fit its tag is a validation error naming group, tag and value.
func applySettings(group string, current []groupconfig.Tag, settings [][2]string, unset []string) ([]groupconfig.Tag, error) {
	tags := append([]groupconfig.Tag(nil), current...)
	var problems []groupconfig.Problem
	for _, kv := range settings {
		key, value := kv[0], kv[1]
		def, ok := groupconfig.Lookup(key)
		if !ok {
			p := groupconfig.Problem{Group: group, Tag: key, Value: value, Reason: groupconfig.ReasonUnknownTag}
			if s := groupconfig.Suggest(key); s != "" {
				p.Hint = "did you mean " + s + "?"
			}
			problems = append(problems, p)
			continue
		}
		if _, err := def.FormatValue(value); err != nil {
			problems = append(problems, groupconfig.Problem{Group: group, Tag: key, Value: value, Reason: err.Error()})
			continue
		}
		next, err := groupconfig.Set(tags, key, value)
		if err != nil {
			problems = append(problems, groupconfig.Problem{Group: group, Tag: key, Value: value, Reason: err.Error()})
			continue
		}
		tags = next
	}
	if len(problems) > 0 {
		return nil, &groupconfig.ValidationError{Group: group, Problems: problems}
	}
	for _, key := range unset {
		if key == "*" {
			var kept []groupconfig.Tag
			for _, t := range tags {
				// Progress records of replacements in flight stay: removing them could strand one.
				if !strings.HasPrefix(t.Key, groupconfig.Prefix) || strings.HasPrefix(t.Key, groupconfig.StatePrefix) {
					kept = append(kept, t)
				}
			}
			tags = kept
			continue
		}
		tags = groupconfig.Unset(tags, key)
	}
	return tags, nil
}

func tagValue(tags []groupconfig.Tag, key string) (string, bool) {
	for _, t := range tags {
		if t.Key == key {
			return t.Value, true
		}
	}
	return "", false
}

// spotmaxOnly keeps the changes of spotmax tags: other tags of the group are never touched.
func spotmaxOnly(changes []groupconfig.Change) []groupconfig.Change {
	var out []groupconfig.Change
	for _, c := range changes {
		if strings.HasPrefix(c.Key, groupconfig.Prefix) {
			out = append(out, c)
		}
	}
	return out
}

func printChanges(w io.Writer, changes []groupconfig.Change) {
	for _, c := range changes {
		fmt.Fprintln(w, "  "+c.String())
	}
}

// writeTagChanges writes the changes in at most two calls: one CreateOrUpdateTags, one
// DeleteTags.
func writeTagChanges(ctx context.Context, api groupTagAPI, group string, changes []groupconfig.Change) error {
	var put, del []astypes.Tag
	for _, c := range changes {
		if c.New != nil {
			put = append(put, asgTag(group, *c.New))
		} else if c.Old != nil {
			del = append(del, asgTag(group, *c.Old))
		}
	}
	if len(put) > 0 {
		if _, err := api.CreateOrUpdateTags(ctx, &autoscaling.CreateOrUpdateTagsInput{Tags: put}); err != nil {
			return fmt.Errorf("writing %d tag(s) on group %s: %w", len(put), group, err)
		}
	}
	if len(del) > 0 {
		if _, err := api.DeleteTags(ctx, &autoscaling.DeleteTagsInput{Tags: del}); err != nil {
			return fmt.Errorf("removing %d tag(s) from group %s: %w", len(del), group, err)
		}
	}
	return nil
}

func asgTag(group string, t groupconfig.Tag) astypes.Tag {
	return astypes.Tag{ResourceId: aws.String(group), ResourceType: aws.String("auto-scaling-group"),
		Key: aws.String(t.Key), Value: aws.String(t.Value), PropagateAtLaunch: aws.Bool(t.PropagateAtLaunch)}
}

// syncMemberTags copies changed tags that propagate at launch onto the group's current
// members, and removes them when they were removed, in one call each.
func syncMemberTags(ctx context.Context, api instanceTagAPI, g *inventory.Group, changes []groupconfig.Change) (int, error) {
	if len(g.Members) == 0 {
		return 0, nil
	}
	ids := make([]string, 0, len(g.Members))
	for _, m := range g.Members {
		ids = append(ids, m.ID)
	}
	sort.Strings(ids)
	var put, del []ec2types.Tag
	for _, c := range changes {
		switch {
		case c.New != nil && c.New.PropagateAtLaunch:
			put = append(put, ec2types.Tag{Key: aws.String(c.New.Key), Value: aws.String(c.New.Value)})
		case c.Old != nil && c.Old.PropagateAtLaunch:
			del = append(del, ec2types.Tag{Key: aws.String(c.Old.Key)})
		}
	}
	if len(put) > 0 {
		if _, err := api.CreateTags(ctx, &ec2.CreateTagsInput{Resources: ids, Tags: put}); err != nil {
			return 0, fmt.Errorf("copying %d propagated tag(s) to the %d instance(s) of group %s: %w", len(put), len(ids), g.Name, err)
		}
	}
	if len(del) > 0 {
		if _, err := api.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: ids, Tags: del}); err != nil {
			return 0, fmt.Errorf("removing %d propagated tag(s) from the %d instance(s) of group %s: %w", len(del), len(ids), g.Name, err)
		}
	}
	if len(put)+len(del) == 0 {
		return 0, nil
	}
	return len(ids), nil
}

// settingsTouch reports whether settings set key (spotmax:alt<N> for groupconfig.TagAlt).
func settingsTouch(settings [][2]string, key string) bool {
	for _, kv := range settings {
		if kv[0] == key {
			return true
		}
		if _, ok := groupconfig.ParseAltKey(kv[0]); ok && key == groupconfig.TagAlt {
			return true
		}
	}
	return false
}

// checkAgainstAWS checks what only AWS knows about the settings being written: a data device
// must not be the root device of the members or clash with the launch template's mappings, and
// alternative types must be offered in the group's Availability Zones. Only settings given are
// checked, so that editing another tag never fails on something AWS changed meanwhile.
func (o *GroupTagOptions) checkAgainstAWS(ctx context.Context, g *inventory.Group, cfg *groupconfig.Config, desired []groupconfig.Tag) error {
	if settingsTouch(o.Settings, groupconfig.TagPersistenceDev) && cfg.HasDataVolume() {
		if err := inventory.CheckGroupDataDevice(ctx, o.EC2, g, strings.Join(cfg.PersistenceDevs, ",")); err != nil {
			return err
		}
	}
	if settingsTouch(o.Settings, groupconfig.TagAlt) && len(cfg.AltTypes) > 0 {
		if _, err := inventory.CheckTypes(ctx, o.EC2, g, desired); err != nil {
			return err
		}
	}
	return nil
}
