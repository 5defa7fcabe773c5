package sim_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/sim"
)

func TestEC2CreateLaunchTemplate(t *testing.T) {
	_, c := ec2Start(t, sim.Options{})
	ctx := context.Background()
	data := spotTemplateData()
	data.InstanceMarketOptions.SpotOptions = &types.LaunchTemplateSpotMarketOptionsRequest{MaxPrice: aws.String("0.05"),
		InstanceInterruptionBehavior: types.InstanceInterruptionBehaviorTerminate}
	data.UserData = aws.String("IyEvYmluL3NoCg==")
	data.KeyName = aws.String("ops")
	data.SecurityGroupIds = []string{"sg-0123456789abcdef0"}
	out, err := c.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("web"), LaunchTemplateData: data,
		VersionDescription: aws.String("first"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeLaunchTemplate,
			Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("ops")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	lt := out.LaunchTemplate
	if *lt.LaunchTemplateName != "web" || *lt.DefaultVersionNumber != 1 || *lt.LatestVersionNumber != 1 || tagMap(lt.Tags)["team"] != "ops" {
		t.Errorf("template = %s default %d latest %d tags %v", *lt.LaunchTemplateName, *lt.DefaultVersionNumber, *lt.LatestVersionNumber, tagMap(lt.Tags))
	}
	_, err = c.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("web"), LaunchTemplateData: data})
	ec2WantErr(t, err, "InvalidLaunchTemplateName.AlreadyExistsException", "already in use")
	_, err = c.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("a b"), LaunchTemplateData: data})
	ec2WantErr(t, err, "InvalidLaunchTemplateName.MalformedException", "3 and 128 characters")

	vers, err := c.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: lt.LaunchTemplateId})
	if err != nil {
		t.Fatal(err)
	}
	v := vers.LaunchTemplateVersions[0]
	d := v.LaunchTemplateData
	got := fmt.Sprintf("%s %s %s %s %v %s/%s/%s %s/%s",
		*d.ImageId, d.InstanceType, *d.KeyName, *d.UserData, d.SecurityGroupIds,
		d.InstanceMarketOptions.MarketType, *d.InstanceMarketOptions.SpotOptions.MaxPrice, d.InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior,
		d.MetadataOptions.HttpTokens, d.MetadataOptions.InstanceMetadataTags)
	want := "ami-0123456789abcdef0 m5.large ops IyEvYmluL3NoCg== [sg-0123456789abcdef0] spot/0.05/terminate required/enabled"
	if got != want {
		t.Errorf("template data = %s\nwant             %s", got, want)
	}
	bd := d.BlockDeviceMappings[0]
	if *bd.DeviceName != "/dev/sdf" || *bd.Ebs.VolumeSize != 20 || bd.Ebs.VolumeType != types.VolumeTypeGp3 || *bd.Ebs.DeleteOnTermination {
		t.Errorf("block device = %s %d %s %v", *bd.DeviceName, *bd.Ebs.VolumeSize, bd.Ebs.VolumeType, *bd.Ebs.DeleteOnTermination)
	}
	if len(d.TagSpecifications) != 1 || d.TagSpecifications[0].ResourceType != types.ResourceTypeInstance ||
		tagMap(d.TagSpecifications[0].Tags)["spotmax:group"] != "web" {
		t.Errorf("tag specifications = %+v", d.TagSpecifications)
	}
	if !*v.DefaultVersion || *v.VersionNumber != 1 || *v.VersionDescription != "first" {
		t.Errorf("version = %d default %v %q", *v.VersionNumber, *v.DefaultVersion, *v.VersionDescription)
	}
}

func TestEC2LaunchTemplateVersions(t *testing.T) {
	_, c := ec2Start(t, sim.Options{})
	ctx := context.Background()
	id := ec2Template(t, c, "web", spotTemplateData())
	// A new version from version 1 inherits everything but the instance type.
	out, err := c.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{LaunchTemplateName: aws.String("web"),
		SourceVersion: aws.String("1"), LaunchTemplateData: &types.RequestLaunchTemplateData{InstanceType: types.InstanceTypeC5Large}})
	if err != nil {
		t.Fatal(err)
	}
	v2 := out.LaunchTemplateVersion
	if *v2.VersionNumber != 2 || *v2.DefaultVersion || v2.LaunchTemplateData.InstanceType != types.InstanceTypeC5Large ||
		len(v2.LaunchTemplateData.BlockDeviceMappings) != 1 || v2.LaunchTemplateData.InstanceMarketOptions == nil {
		t.Errorf("version 2 = %d default %v data %+v", *v2.VersionNumber, *v2.DefaultVersion, v2.LaunchTemplateData)
	}
	// Without a source version, only what the request names is in the version.
	out, err = c.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{LaunchTemplateId: aws.String(id),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String("ami-0fedcba9876543210")}})
	if err != nil {
		t.Fatal(err)
	}
	if d := out.LaunchTemplateVersion.LaunchTemplateData; d.InstanceType != "" || len(d.BlockDeviceMappings) != 0 {
		t.Errorf("version 3 data = %+v, want only the image", d)
	}

	versions := func(vs ...string) string {
		t.Helper()
		out, err := c.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(id), Versions: vs})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range out.LaunchTemplateVersions {
			got = append(got, fmt.Sprintf("%d:%s", *v.VersionNumber, v.LaunchTemplateData.InstanceType))
		}
		return fmt.Sprint(got)
	}
	if got := versions(); got != "[3: 2:c5.large 1:m5.large]" {
		t.Errorf("all versions = %s", got)
	}
	if got := versions("$Latest", "$Default"); got != "[3: 1:m5.large]" {
		t.Errorf("$Latest and $Default = %s", got)
	}
	if _, err := c.ModifyLaunchTemplate(ctx, &ec2.ModifyLaunchTemplateInput{LaunchTemplateId: aws.String(id), DefaultVersion: aws.String("2")}); err != nil {
		t.Fatal(err)
	}
	if got := versions("$Default"); got != "[2:c5.large]" {
		t.Errorf("$Default after ModifyLaunchTemplate = %s", got)
	}
	_, err = c.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(id), Versions: []string{"9"}})
	ec2WantErr(t, err, "InvalidLaunchTemplateId.VersionNotFound", "9")

	// RunInstances without a version uses the default version.
	in := ec2Run(t, c, &ec2.RunInstancesInput{LaunchTemplate: &types.LaunchTemplateSpecification{LaunchTemplateId: aws.String(id)}})[0]
	if in.InstanceType != types.InstanceTypeC5Large || tagMap(in.Tags)["aws:ec2launchtemplate:version"] != "2" {
		t.Errorf("instance from default version: %s, tags %v", in.InstanceType, tagMap(in.Tags))
	}
}

func TestEC2DescribeLaunchTemplates(t *testing.T) {
	_, c := ec2Start(t, sim.Options{})
	ctx := context.Background()
	data := &types.RequestLaunchTemplateData{ImageId: aws.String(testAMI)}
	ids := map[string]string{}
	for _, name := range []string{"web", "worker", "batch"} {
		ids[name] = ec2Template(t, c, name, data, types.Tag{Key: aws.String("tier"), Value: aws.String(map[string]string{"web": "front", "worker": "back", "batch": "back"}[name])})
	}
	names := func(in *ec2.DescribeLaunchTemplatesInput) string {
		t.Helper()
		var got []string
		p := ec2.NewDescribeLaunchTemplatesPaginator(c, in)
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, lt := range out.LaunchTemplates {
				got = append(got, *lt.LaunchTemplateName)
			}
		}
		return fmt.Sprint(sortStrings(got))
	}
	for _, tc := range []struct {
		in   *ec2.DescribeLaunchTemplatesInput
		want string
	}{
		{&ec2.DescribeLaunchTemplatesInput{}, "[batch web worker]"},
		{&ec2.DescribeLaunchTemplatesInput{MaxResults: aws.Int32(1)}, "[batch web worker]"},
		{&ec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{"web"}}, "[web]"},
		{&ec2.DescribeLaunchTemplatesInput{LaunchTemplateIds: []string{ids["worker"]}}, "[worker]"},
		{&ec2.DescribeLaunchTemplatesInput{Filters: []types.Filter{ec2Filter("tag:tier", "back")}}, "[batch worker]"},
		{&ec2.DescribeLaunchTemplatesInput{Filters: []types.Filter{ec2Filter("launch-template-name", "w*")}}, "[web worker]"},
	} {
		if got := names(tc.in); got != tc.want {
			t.Errorf("%+v: got %s, want %s", *tc.in, got, tc.want)
		}
	}
	_, err := c.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{"nope"}})
	ec2WantErr(t, err, "InvalidLaunchTemplateName.NotFoundException", "does not exist")
	_, err = c.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateIds: []string{"lt-0123456789abcdef0"}})
	ec2WantErr(t, err, "InvalidLaunchTemplateId.NotFound", "does not exist")

	if _, err := c.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateName: aws.String("batch")}); err != nil {
		t.Fatal(err)
	}
	if got := names(&ec2.DescribeLaunchTemplatesInput{}); got != "[web worker]" {
		t.Errorf("after delete: %s", got)
	}
	_, err = c.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{LaunchTemplateId: aws.String(ids["batch"]),
		LaunchTemplateData: data})
	ec2WantErr(t, err, "InvalidLaunchTemplateId.NotFound", ids["batch"])
}
