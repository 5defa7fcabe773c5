package cli

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spotmax/spotmax/pkg/awsapi"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/inventory"
	"github.com/spotmax/spotmax/pkg/replace"
)

// VolumesOptions are the inputs of `spotmax volumes` and its subcommands.
type VolumesOptions struct {
	IO     *IOStreams
	Output string
	Group  string
	AZ     string
	// Volume and Instance are the subcommands' arguments.
	Volume, Instance string
	Force            bool
	DryRun           bool
	Yes              bool

	Lister   func(context.Context) (*inventory.Lister, error)
	Workflow func(context.Context) (*replace.Workflow, error)
	confirm  func(string) error
	Now      func() time.Time
}

// volumesJSON is the stable JSON shape of `spotmax volumes -o json`.
type volumesJSON struct {
	Volumes []replace.PoolVolume `json:"volumes"`
	// Summary counts the volumes per group, AZ and status ("web/us-east-1a/available": 2).
	Summary map[string]int `json:"summary"`
}

// volumeActionJSON is the stable JSON shape of `spotmax volumes adopt|release|delete -o json`.
type volumeActionJSON struct {
	Action   string `json:"action"`
	Volume   string `json:"volume"`
	Group    string `json:"group"`
	Instance string `json:"instance,omitempty"`
	DryRun   bool   `json:"dry_run"`
	// Discarded is the fresh volume an adoption deleted.
	Discarded string `json:"discarded,omitempty"`
}

var volumeIDPattern = regexp.MustCompile(`^vol-[0-9a-f]{8}([0-9a-f]{9})?$`)

func checkVolumeID(id string) error {
	if !volumeIDPattern.MatchString(id) {
		return flagErrorf("%q is not an EBS volume id (vol-0123456789abcdef0)", id)
	}
	return nil
}

func newVolumesCmd(f *Factory) *cobra.Command {
	opts := &VolumesOptions{IO: f.IO, Now: time.Now}
	wire := func() {
		opts.Output = f.Output
		opts.Lister = f.Lister
		opts.Workflow = f.Workflow
		opts.confirm = f.confirm
	}
	cmd := &cobra.Command{
		Use:   "volumes",
		Short: "List the data volume pool of spotmax groups; adopt, release or delete a pooled volume",
		Long: `List every data volume of the spotmax groups in the region — the group's pool — with where it
is: attached (to an instance), available (attached to nothing, waiting for a member of its group
in its AZ that lacks its data), moving (part of a replacement or an adoption in progress),
orphaned (its group is no longer a spotmax group with a data device) or discarding (a launch's
fresh, provably empty volume being deleted after a pooled volume took its place).

spotmax run re-homes available volumes on its own. The subcommands act on one volume explicitly:
adopt attaches an available volume to a member of its group, release detaches one from its
instance back into the pool, delete deletes an available one.`,
		Example: `  spotmax volumes
  spotmax volumes --group web -o json
  spotmax volumes adopt vol-0123456789abcdef0 i-0123456789abcdef0 --dry-run
  spotmax volumes release vol-0123456789abcdef0 --yes
  spotmax volumes delete vol-0123456789abcdef0 --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			wire()
			return volumesList(cmd.Context(), opts)
		},
	}
	cmd.PersistentFlags().StringVar(&opts.Group, "group", "", "only this group's volumes")
	cmd.Flags().StringVar(&opts.AZ, "az", "", "only volumes in this Availability Zone")
	action := func(use, short, long string, nargs int, run func(context.Context, *VolumesOptions) error) *cobra.Command {
		c := &cobra.Command{Use: use, Short: short, Long: long, Args: exactArgs(nargs, strings.Join(strings.Fields(use)[1:], " ")),
			RunE: func(cmd *cobra.Command, args []string) error {
				wire()
				opts.Volume = args[0]
				if err := checkVolumeID(opts.Volume); err != nil {
					return err
				}
				if nargs > 1 {
					opts.Instance = args[1]
					if !instanceIDPattern.MatchString(opts.Instance) {
						return flagErrorf("%q is not an EC2 instance id (i-0123456789abcdef0)", opts.Instance)
					}
				}
				return run(cmd.Context(), opts)
			}}
		c.Flags().BoolVar(&opts.DryRun, "dry-run", false, "say what would be done and change nothing")
		c.Flags().BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
		return c
	}
	cmd.AddCommand(action("adopt VOLUME INSTANCE", "Attach an available pooled volume to a member of its group that lacks its data",
		`Attach an available pooled volume to a running member of its group in its AZ, at the group's data
device, and assign it for the agent to mount. The member must have nothing at the data device, or
only the fresh volume of its launch proven empty and unused (its agent reports it blank), which is
then deleted. The adoption is claimed on the volume like a replacement's journal: a second actor
is refused (exit 7).`, 2, volumesAdopt))
	release := action("release VOLUME", "Detach a pooled volume from its instance, back into the pool",
		`Detach a data volume from its instance back into the pool, where spotmax run adopts it into the next
member of its group that lacks its data. The instance's agent must have released it
(spotmax:state:volume_released) or the instance must be stopped; --force detaches it anyway
(EC2's forced detach: the file system may be left inconsistent).`, 1, volumesRelease)
	release.Flags().BoolVar(&opts.Force, "force", false, "force-detach a volume that is in use")
	cmd.AddCommand(release)
	cmd.AddCommand(action("delete VOLUME", "Delete an available pooled volume and its data",
		`Delete a pooled data volume that is attached to nothing. Its data is gone for good: snapshot it
first if in doubt ('aws ec2 create-snapshot').`, 1, volumesDelete))
	return cmd
}

// poolOf lists the pool with the groups' configuration.
func poolOf(ctx context.Context, o *VolumesOptions) ([]replace.PoolVolume, []*inventory.Group, error) {
	l, err := o.Lister(ctx)
	if err != nil {
		return nil, nil, err
	}
	groups, err := l.List(ctx, inventory.Options{})
	if err != nil {
		return nil, nil, fmt.Errorf("listing spotmax groups: %w", err)
	}
	w, err := o.Workflow(ctx)
	if err != nil {
		return nil, nil, err
	}
	journals, err := w.InFlight(ctx)
	if err != nil {
		return nil, nil, err
	}
	vols, err := w.Pool(ctx, journals, replace.PoolGroups(groups))
	return vols, groups, err
}

func volumesList(ctx context.Context, o *VolumesOptions) error {
	if err := validOutput(o.Output); err != nil {
		return err
	}
	vols, _, err := poolOf(ctx, o)
	if err != nil {
		return err
	}
	out := volumesJSON{Volumes: []replace.PoolVolume{}, Summary: map[string]int{}}
	for _, v := range vols {
		if (o.Group != "" && v.Group != o.Group) || (o.AZ != "" && v.AZ != o.AZ) {
			continue
		}
		out.Volumes = append(out.Volumes, v)
		out.Summary[v.Group+"/"+v.AZ+"/"+string(v.Status)]++
	}
	return printData(o.IO.Out, o.Output, out, func(w io.Writer) error {
		if len(out.Volumes) == 0 {
			msg := "no data volumes: none of the region's volumes carries " + groupconfig.TagGroup
			if o.Group != "" || o.AZ != "" {
				msg = "no data volumes of group " + orDash(o.Group) + " in AZ " + orDash(o.AZ)
			}
			_, err := fmt.Fprintln(w, msg)
			return err
		}
		t := NewTable("VOLUME", "GROUP", "AZ", "STATUS", "INSTANCE", "DEVICE", "SIZE", "UNUSED FOR")
		now := o.Now()
		for _, v := range out.Volumes {
			unused := ""
			if !v.AvailableSince.IsZero() && v.Instance == "" {
				unused = now.Sub(v.AvailableSince).Round(time.Second).String()
			}
			inst := v.Instance
			if v.AdoptedBy != "" {
				inst = "→ " + v.AdoptedBy
			}
			t.Row(v.VolumeID, v.Group, v.AZ, string(v.Status), inst, v.Device, strconv.Itoa(int(v.Size))+" GiB", unused)
		}
		return t.Write(w)
	})
}

// pooled finds one volume of the pool, named by the command.
func pooled(ctx context.Context, o *VolumesOptions) (replace.PoolVolume, []*inventory.Group, error) {
	vols, groups, err := poolOf(ctx, o)
	if err != nil {
		return replace.PoolVolume{}, nil, err
	}
	for _, v := range vols {
		if v.VolumeID == o.Volume {
			if o.Group != "" && v.Group != o.Group {
				return v, nil, fmt.Errorf("volume %s belongs to group %s, not %s", v.VolumeID, v.Group, o.Group)
			}
			return v, groups, nil
		}
	}
	return replace.PoolVolume{}, nil, &awsapi.NotFoundError{Kind: "pooled data volume (a volume tagged " + groupconfig.TagGroup + ")", Name: o.Volume}
}

func (o *VolumesOptions) ask(question string) error {
	if o.Yes || o.DryRun {
		return nil
	}
	return o.confirm(question)
}

func (o *VolumesOptions) report(r volumeActionJSON, line string) error {
	return printData(o.IO.Out, o.Output, r, func(w io.Writer) error {
		_, err := fmt.Fprintln(w, line)
		return err
	})
}

func volumesAdopt(ctx context.Context, o *VolumesOptions) error {
	v, groups, err := pooled(ctx, o)
	if err != nil {
		return err
	}
	var g *inventory.Group
	for _, x := range groups {
		if x.Name == v.Group {
			g = x
		}
	}
	if g == nil || !g.Config.HasDataVolume() {
		return fmt.Errorf("volume %s belongs to group %q, which is not a spotmax group with a data device (%s): nothing to adopt it into",
			v.VolumeID, v.Group, groupconfig.TagPersistenceDev)
	}
	// The volume goes back to its own device (spotmax:state:device); one without a device tag to
	// the group's only data device.
	dev, ok := groupconfig.DataDevice{}, false
	if v.Device == "" && len(g.Config.PersistenceDevs) == 1 {
		dev, ok = g.Config.DataDevices()[0], true
	} else if v.Device != "" {
		dev, ok = g.Config.DataDevice(v.Device)
	}
	if !ok {
		return fmt.Errorf("volume %s was the data volume at %s, which is not one of group %s's data devices (%s=%s): nothing to adopt it into",
			v.VolumeID, orDash(v.Device), v.Group, groupconfig.TagPersistenceDev, strings.Join(g.Config.PersistenceDevs, ","))
	}
	if v.Status != replace.PoolAvailable && v.Status != replace.PoolOrphaned {
		return fmt.Errorf("volume %s is %s (instance %s): only an available volume can be adopted", v.VolumeID, v.Status, orDash(v.Instance+v.AdoptedBy))
	}
	r := volumeActionJSON{Action: "adopt", Volume: v.VolumeID, Group: v.Group, Instance: o.Instance, DryRun: o.DryRun}
	if o.DryRun {
		return o.report(r, fmt.Sprintf("would attach %s (group %s, %s) to %s at %s", v.VolumeID, v.Group, v.AZ, o.Instance, dev.Device))
	}
	if err := o.ask(fmt.Sprintf("Attach %s to %s at %s?", v.VolumeID, o.Instance, dev.Device)); err != nil {
		return err
	}
	w, err := o.Workflow(ctx)
	if err != nil {
		return err
	}
	res, err := w.Adopt(ctx, replace.Adoption{Group: v.Group, Volume: v.VolumeID, Instance: o.Instance,
		Device: dev.Device, MountPath: dev.MountPath})
	if err != nil {
		return err
	}
	r.Discarded = res.Discarded
	line := fmt.Sprintf("attached %s to %s at %s", v.VolumeID, o.Instance, dev.Device)
	if res.Discarded != "" {
		line += "; its blank fresh volume " + res.Discarded + " was deleted"
	}
	return o.report(r, line)
}

func volumesRelease(ctx context.Context, o *VolumesOptions) error {
	v, _, err := pooled(ctx, o)
	if err != nil {
		return err
	}
	r := volumeActionJSON{Action: "release", Volume: v.VolumeID, Group: v.Group, Instance: v.Instance, DryRun: o.DryRun}
	if v.Instance == "" {
		return o.report(r, v.VolumeID+" is attached to nothing already")
	}
	if v.Status == replace.PoolMoving {
		return fmt.Errorf("volume %s is moving (a replacement or an adoption is in progress): leave it to that actor", v.VolumeID)
	}
	if o.DryRun {
		return o.report(r, fmt.Sprintf("would detach %s from %s back into the pool of group %s", v.VolumeID, v.Instance, v.Group))
	}
	if err := o.ask(fmt.Sprintf("Detach %s from %s?", v.VolumeID, v.Instance)); err != nil {
		return err
	}
	w, err := o.Workflow(ctx)
	if err != nil {
		return err
	}
	if err := w.Release(ctx, v.VolumeID, o.Force); err != nil {
		return err
	}
	return o.report(r, fmt.Sprintf("detached %s from %s: it waits in the pool of group %s", v.VolumeID, v.Instance, v.Group))
}

func volumesDelete(ctx context.Context, o *VolumesOptions) error {
	v, _, err := pooled(ctx, o)
	if err != nil {
		return err
	}
	if v.Instance != "" || (v.Status != replace.PoolAvailable && v.Status != replace.PoolOrphaned && v.Status != replace.PoolDiscarding &&
		v.Status != replace.PoolSuperseded) {
		return fmt.Errorf("volume %s is %s (instance %s): only a volume attached to nothing can be deleted; release it first", v.VolumeID, v.Status, orDash(v.Instance))
	}
	r := volumeActionJSON{Action: "delete", Volume: v.VolumeID, Group: v.Group, DryRun: o.DryRun}
	if o.DryRun {
		return o.report(r, fmt.Sprintf("would delete %s (group %s, %s, %d GiB) and its data", v.VolumeID, v.Group, v.AZ, v.Size))
	}
	if err := o.ask(fmt.Sprintf("Delete %s and all its data?", v.VolumeID)); err != nil {
		return err
	}
	w, err := o.Workflow(ctx)
	if err != nil {
		return err
	}
	if err := w.DeleteVolume(ctx, v.VolumeID); err != nil {
		return err
	}
	return o.report(r, "deleted "+v.VolumeID)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
