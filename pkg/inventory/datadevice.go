package inventory

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/awsapi"
	"github.com/spotmax/spotmax/pkg/groupconfig"
)

// LaunchTemplateReader is what reading a group's launch template needs from EC2.
type LaunchTemplateReader interface {
	DescribeLaunchTemplateVersions(ctx context.Context, in *ec2.DescribeLaunchTemplateVersionsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplateVersionsOutput, error)
}

var _ LaunchTemplateReader = (*ec2.Client)(nil)

// ReadTemplate returns the data of the launch template version t names (its default version
// when t.Version is empty) in one DescribeLaunchTemplateVersions call.
func ReadTemplate(ctx context.Context, api LaunchTemplateReader, t *TemplateRef) (*ec2types.ResponseLaunchTemplateData, error) {
	in := &ec2.DescribeLaunchTemplateVersionsInput{}
	name := t.ID
	if t.ID != "" {
		in.LaunchTemplateId = aws.String(t.ID)
	} else {
		in.LaunchTemplateName = aws.String(t.Name)
		name = t.Name
	}
	version := t.Version
	if version == "" {
		version = "$Default"
	}
	in.Versions = []string{version}
	out, err := api.DescribeLaunchTemplateVersions(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("reading launch template %s version %s: %w", name, version, err)
	}
	if len(out.LaunchTemplateVersions) == 0 || out.LaunchTemplateVersions[0].LaunchTemplateData == nil {
		return nil, &awsapi.NotFoundError{Kind: "launch template version", Name: name + " " + version}
	}
	return out.LaunchTemplateVersions[0].LaunchTemplateData, nil
}

// CheckDataDevice checks dev, the group's spotmax:persistence_dev — one device or a comma list
// of them (g.Config's when dev is "") — before tags are written and before a replacement is
// planned: no device may be the root device of any member (EC2's RootDeviceName; g listed with
// Members) nor one of the names AWS reserves for root volumes, and the launch template (tmpl,
// its data; may be nil) must not map one to an instance-store volume, which cannot be moved. The
// error is a *groupconfig.ValidationError naming the group, the tag, the device and the reason,
// one problem per device.
func CheckDataDevice(g *Group, dev string, tmpl *ec2types.ResponseLaunchTemplateData) error {
	devs := strings.Split(dev, ",")
	if dev == "" {
		devs = nil
		if g.Config != nil {
			devs = g.Config.PersistenceDevs
		}
	}
	roots := make([]groupconfig.RootDevice, 0, len(g.Members))
	for _, m := range g.Members {
		roots = append(roots, groupconfig.RootDevice{Name: m.RootDevice, Where: "instance " + m.ID})
	}
	var problems []groupconfig.Problem
	for _, d := range devs {
		if d = strings.TrimSpace(d); d == "" {
			continue
		}
		if err := groupconfig.CheckDataDevice(g.Name, d, roots); err != nil {
			var ve *groupconfig.ValidationError
			if !errors.As(err, &ve) {
				return err
			}
			problems = append(problems, ve.Problems...)
			continue
		}
		if tmpl == nil {
			continue
		}
		for _, m := range tmpl.BlockDeviceMappings {
			if !groupconfig.SameDevice(aws.ToString(m.DeviceName), d) {
				continue
			}
			if v := aws.ToString(m.VirtualName); v != "" {
				problems = append(problems, groupconfig.Problem{
					Group: g.Name, Tag: groupconfig.TagPersistenceDev, Value: d,
					Reason: fmt.Sprintf("the launch template maps %s to instance-store volume %s, which cannot be moved", aws.ToString(m.DeviceName), v),
					Hint:   "map an EBS volume there, or pick another device"})
			}
		}
	}
	if len(problems) > 0 {
		return &groupconfig.ValidationError{Group: g.Name, Problems: problems}
	}
	return nil
}

// CheckGroupDataDevice is CheckDataDevice with the group's launch template read from EC2 (when
// it has one).
func CheckGroupDataDevice(ctx context.Context, api LaunchTemplateReader, g *Group, dev string) error {
	var tmpl *ec2types.ResponseLaunchTemplateData
	if g.Template != nil {
		var err error
		if tmpl, err = ReadTemplate(ctx, api, g.Template); err != nil {
			return err
		}
	}
	return CheckDataDevice(g, dev, tmpl)
}
