package sim_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/sim"
)

func TestTagWritesByAccessKey(t *testing.T) {
	env, _ := ec2Start(t, sim.Options{})
	ctx := context.Background()
	cfg := env.Config.Copy()
	cfg.Credentials = credentials.NewStaticCredentialsProvider("tagger", "secret", "")
	c := ec2.NewFromConfig(cfg)
	in := ec2Run(t, c, &ec2.RunInstancesInput{})[0]
	id := aws.ToString(in.InstanceId)
	tag := func(k string) types.Tag { return types.Tag{Key: aws.String(k), Value: aws.String("v")} }
	if _, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: []types.Tag{tag("b"), tag("a")}}); err != nil {
		t.Fatal(err)
	}
	// A failed call wrote nothing and is not recorded.
	_, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{"i-0123456789abcdef0"}, Tags: []types.Tag{tag("c")}})
	ec2WantErr(t, err, "InvalidInstanceID.NotFound", "i-0123456789abcdef0")
	if _, err := c.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{id}, Tags: []types.Tag{{Key: aws.String("a")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{id}}); err != nil {
		t.Fatal(err)
	}
	want := []sim.TagWrite{{Action: "CreateTags", Resources: []string{id}, Keys: []string{"a", "b"}},
		{Action: "DeleteTags", Resources: []string{id}, Keys: []string{"a"}},
		{Action: "DeleteTags", Resources: []string{id}}}
	if got := env.Region().TagWritesBy()["tagger"]; !reflect.DeepEqual(got, want) {
		t.Errorf("TagWritesBy()[tagger] = %+v, want %+v", got, want)
	}
}
