package cli

import (
	"github.com/spf13/cobra"
)

func newGroupCmd(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "Tag, untag, list and inspect spotmax groups",
		Long: `A spotmax group is an Auto Scaling group with spotmax:* tags. 'spotmax group tag' writes
the tags (validated first), 'spotmax group list' shows every spotmax group of the region and
'spotmax group status' one group's instances.`,
	}
	cmd.AddCommand(newGroupTagCmd(f, nil))
	cmd.AddCommand(newGroupUntagCmd(f, nil))
	cmd.AddCommand(newGroupListCmd(f, nil))
	cmd.AddCommand(newGroupStatusCmd(f, nil))
	return cmd
}
