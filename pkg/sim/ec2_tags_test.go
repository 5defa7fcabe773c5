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

func TestEC2CreateDeleteDescribeTags(t *testing.T) {
	env, c := ec2Start(t, sim.Options{})
	ctx := context.Background()
	in := ec2Run(t, c, &ec2.RunInstancesInput{})[0]
	vol := ec2NewVolume(t, env, c, "us-east-1a")
	lt := ec2Template(t, c, "web", &types.RequestLaunchTemplateData{ImageId: aws.String(testAMI)})
	tag := func(k, v string) types.Tag { return types.Tag{Key: aws.String(k), Value: aws.String(v)} }

	if _, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{*in.InstanceId, vol, lt},
		Tags: []types.Tag{tag("spotmax:group", "web"), tag("env", "prod"), tag("empty", "")}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := env.Region().Instance(*in.InstanceId); got.Tags["spotmax:group"] != "web" || got.Tags["env"] != "prod" {
		t.Errorf("instance tags = %v", got.Tags)
	}
	if got, _ := env.Region().Volume(vol); got.Tags["spotmax:group"] != "web" {
		t.Errorf("volume tags = %v", got.Tags)
	}

	describe := func(filters ...types.Filter) string {
		t.Helper()
		var got []string
		p := ec2.NewDescribeTagsPaginator(c, &ec2.DescribeTagsInput{Filters: filters, MaxResults: aws.Int32(5)})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range out.Tags {
				got = append(got, fmt.Sprintf("%s/%s=%s", d.ResourceType, *d.Key, *d.Value))
			}
		}
		return fmt.Sprint(sortStrings(got))
	}
	if got, want := describe(types.Filter{Name: aws.String("resource-id"), Values: []string{vol}}),
		"[volume/empty= volume/env=prod volume/spotmax:group=web]"; got != want {
		t.Errorf("tags of the volume = %s, want %s", got, want)
	}
	if got, want := describe(ec2Filter("key", "env"), ec2Filter("resource-type", "instance", "launch-template")),
		"[instance/env=prod launch-template/env=prod]"; got != want {
		t.Errorf("env tags of instances and templates = %s, want %s", got, want)
	}
	if got, want := describe(ec2Filter("value", "web")),
		"[instance/spotmax:group=web launch-template/spotmax:group=web volume/spotmax:group=web]"; got != want {
		t.Errorf("tags with value web = %s, want %s", got, want)
	}
	// Nine tags in all: two pages of at most five.
	pages, total := 0, 0
	for p := ec2.NewDescribeTagsPaginator(c, &ec2.DescribeTagsInput{MaxResults: aws.Int32(5)}); p.HasMorePages(); pages++ {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		total += len(out.Tags)
	}
	if pages != 2 || total != 9 {
		t.Errorf("DescribeTags: %d tags on %d pages, want 9 on 2", total, pages)
	}

	// Without a value, the key goes; with a value, only a matching tag goes.
	if _, err := c.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{*in.InstanceId, vol},
		Tags: []types.Tag{{Key: aws.String("spotmax:group")}, tag("env", "staging")}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := env.Region().Instance(*in.InstanceId); got.Tags["spotmax:group"] != "" || got.Tags["env"] != "prod" {
		t.Errorf("instance tags after DeleteTags = %v, want env kept and spotmax:group gone", got.Tags)
	}
	if _, err := c.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{lt}, Tags: []types.Tag{tag("env", "prod"), tag("empty", "")}}); err != nil {
		t.Fatal(err)
	}
	if got, want := describe(ec2Filter("resource-id", lt)), "[launch-template/spotmax:group=web]"; got != want {
		t.Errorf("template tags after DeleteTags = %s, want %s", got, want)
	}

	_, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{*in.InstanceId}, Tags: []types.Tag{tag("aws:secret", "x")}})
	ec2WantErr(t, err, "InvalidParameterValue", "reserved for internal use")
	_, err = c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{"vol-0123456789abcdef0"}, Tags: []types.Tag{tag("a", "b")}})
	ec2WantErr(t, err, "InvalidVolume.NotFound", "vol-0123456789abcdef0")
	_, err = c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{"foo-1"}, Tags: []types.Tag{tag("a", "b")}})
	ec2WantErr(t, err, "InvalidID", "foo-1")
	var many []types.Tag
	for i := 0; i < 51; i++ {
		many = append(many, tag(fmt.Sprintf("k%d", i), "v"))
	}
	_, err = c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{vol}, Tags: many})
	ec2WantErr(t, err, "TagLimitExceeded", "maximum number of Tags")
}
