package sim_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/spotmax/spotmax/pkg/sim"
)

// Conformance of EBS snapshots through aws-sdk-go-v2: states and progress, the restore into
// another AZ carrying the data, tags and filters, paging, and EC2's errors.

func ec2Snapshot(t *testing.T, c *ec2.Client, id string) types.Snapshot {
	t.Helper()
	out, err := c.DescribeSnapshots(context.Background(), &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
	if err != nil {
		t.Fatalf("DescribeSnapshots %s: %v", id, err)
	}
	if len(out.Snapshots) != 1 {
		t.Fatalf("DescribeSnapshots %s returned %d snapshots", id, len(out.Snapshots))
	}
	return out.Snapshots[0]
}

func TestEC2SnapshotRestoresTheDataInAnotherAZ(t *testing.T) {
	env, c := ec2Start(t, sim.Options{})
	ctx := context.Background()
	lat := sim.FastLatencies()
	vol := ec2NewVolume(t, env, c, "us-east-1a")
	src, _ := env.Region().Volume(vol)

	out, err := c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(vol), Description: aws.String("move"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSnapshot,
			Tags: []types.Tag{{Key: aws.String("token"), Value: aws.String("t-1")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	snap := aws.ToString(out.SnapshotId)
	if out.State != types.SnapshotStatePending || aws.ToString(out.VolumeId) != vol || aws.ToInt32(out.VolumeSize) != 10 ||
		tagMap(out.Tags)["token"] != "t-1" || aws.ToString(out.Progress) != "0%" {
		t.Fatalf("CreateSnapshot = %s %s %d GiB progress %s tags %v, want pending of %s, 10 GiB, 0%%, token=t-1",
			out.State, aws.ToString(out.VolumeId), aws.ToInt32(out.VolumeSize), aws.ToString(out.Progress), tagMap(out.Tags), vol)
	}

	// A pending snapshot cannot be restored yet, and its progress moves with the data copied.
	_, err = c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1b"), SnapshotId: aws.String(snap)})
	ec2WantErr(t, err, "IncorrectState", "pending")
	total := lat.SnapshotBase + 10*lat.SnapshotPerGiB
	env.Region().Advance(total / 2)
	if s := ec2Snapshot(t, c, snap); s.State != types.SnapshotStatePending || aws.ToString(s.Progress) == "0%" || aws.ToString(s.Progress) == "100%" {
		t.Errorf("halfway: %s progress %s, want pending between 0%% and 100%%", s.State, aws.ToString(s.Progress))
	}
	env.Region().Advance(total)
	if s := ec2Snapshot(t, c, snap); s.State != types.SnapshotStateCompleted || aws.ToString(s.Progress) != "100%" {
		t.Fatalf("after %s: %s progress %s, want completed 100%%", total, s.State, aws.ToString(s.Progress))
	}

	// Smaller than the snapshot is refused; the default size is the snapshot's; any AZ.
	_, err = c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1b"), SnapshotId: aws.String(snap), Size: aws.Int32(5)})
	ec2WantErr(t, err, "InvalidParameterValue", "expect size >= 10GB")
	nv, err := c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1b"), SnapshotId: aws.String(snap),
		VolumeType: types.VolumeTypeGp3, ClientToken: aws.String("restore-1")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt32(nv.Size) != 10 || aws.ToString(nv.SnapshotId) != snap || aws.ToString(nv.AvailabilityZone) != "us-east-1b" {
		t.Errorf("restored volume = %d GiB from %q in %s, want 10 GiB from %s in us-east-1b",
			aws.ToInt32(nv.Size), aws.ToString(nv.SnapshotId), aws.ToString(nv.AvailabilityZone), snap)
	}
	again, err := c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1b"), SnapshotId: aws.String(snap),
		VolumeType: types.VolumeTypeGp3, ClientToken: aws.String("restore-1")})
	if err != nil || aws.ToString(again.VolumeId) != aws.ToString(nv.VolumeId) {
		t.Errorf("CreateVolume with the same client token = %v, %v; want the same volume %s", again, err, aws.ToString(nv.VolumeId))
	}
	env.Region().Advance(lat.CreateVolume)
	got, _ := env.Region().Volume(aws.ToString(nv.VolumeId))
	if got.Marker != src.Marker || got.State != sim.VolumeAvailable {
		t.Errorf("restored volume: marker %q state %s, want the source's marker %q, available", got.Marker, got.State, src.Marker)
	}

	// Deleting the snapshot leaves the restored volume alone.
	if _, err := c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snap)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snap}})
	ec2WantErr(t, err, "InvalidSnapshot.NotFound", "The snapshot '"+snap+"' does not exist.")
	_, err = c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snap)})
	ec2WantErr(t, err, "InvalidSnapshot.NotFound", snap)
	_, err = c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1b"), SnapshotId: aws.String(snap)})
	ec2WantErr(t, err, "InvalidSnapshot.NotFound", snap)
	if v, ok := env.Region().Volume(aws.ToString(nv.VolumeId)); !ok || v.Marker != src.Marker {
		t.Errorf("restored volume after the snapshot's deletion: %v %q", ok, v.Marker)
	}
}

func TestEC2SnapshotLimitsAndDeletion(t *testing.T) {
	env, c := ec2Start(t, sim.Options{})
	ctx := context.Background()
	vol := ec2NewVolume(t, env, c, "us-east-1a")
	first, err := c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(vol)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(vol)})
	ec2WantErr(t, err, "SnapshotCreationPerVolumeRateExceeded", "Wait at least 15 seconds")
	env.Region().Advance(15 * time.Second)
	second, err := c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(vol)})
	if err != nil {
		t.Fatalf("CreateSnapshot 15 s later: %v", err)
	}
	if s, _ := env.Region().Snapshot(aws.ToString(first.SnapshotId)); s.State != sim.SnapshotCompleted {
		t.Errorf("first snapshot after 15 s: %v, want completed", s)
	}

	// A pending snapshot deleted goes once it completes.
	if _, err := c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: second.SnapshotId}); err != nil {
		t.Fatal(err)
	}
	if s, ok := env.Region().Snapshot(aws.ToString(second.SnapshotId)); !ok || s.State != sim.SnapshotPending {
		t.Fatalf("a pending snapshot deleted: %v %v, want still there until it completes", ok, s)
	}
	_, err = c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1b"), SnapshotId: second.SnapshotId})
	ec2WantErr(t, err, "IncorrectState", "pending")
	env.Region().Advance(time.Minute)
	if _, ok := env.Region().Snapshot(aws.ToString(second.SnapshotId)); ok {
		t.Errorf("deleted snapshot still there once completed")
	}

	// Concurrent pending snapshots are bounded per volume (one for st1).
	out, err := c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(500), VolumeType: types.VolumeTypeSt1})
	if err != nil {
		t.Fatal(err)
	}
	env.Region().Advance(time.Second)
	if _, err := c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: out.VolumeId}); err != nil {
		t.Fatal(err)
	}
	env.Region().Advance(15 * time.Second)
	_, err = c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: out.VolumeId})
	ec2WantErr(t, err, "ConcurrentSnapshotLimitExceeded", "concurrent snapshots")

	_, err = c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String("vol-0123456789abcdef0")})
	ec2WantErr(t, err, "InvalidVolume.NotFound", "vol-0123456789abcdef0")
	_, err = c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{"snap-nope"}})
	ec2WantErr(t, err, "InvalidSnapshotID.Malformed", "snap-nope")
	_, err = c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{Filters: []types.Filter{{Name: aws.String("bogus"), Values: []string{"x"}}}})
	ec2WantErr(t, err, "InvalidParameterValue", "bogus")
}

func TestEC2DescribeSnapshotsFiltersTagsAndPages(t *testing.T) {
	env, c := ec2Start(t, sim.Options{})
	ctx := context.Background()
	var want []string
	for i := 0; i < 7; i++ {
		vol := ec2NewVolume(t, env, c, "us-east-1a")
		out, err := c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(vol)})
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if _, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{aws.ToString(out.SnapshotId)},
				Tags: []types.Tag{{Key: aws.String("spotmax:group"), Value: aws.String("web")}}}); err != nil {
				t.Fatal(err)
			}
			want = append(want, aws.ToString(out.SnapshotId))
		}
	}
	var got []string
	p := ec2.NewDescribeSnapshotsPaginator(c, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, MaxResults: aws.Int32(5),
		Filters: []types.Filter{{Name: aws.String("tag:spotmax:group"), Values: []string{"web"}}}})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page.Snapshots {
			got = append(got, aws.ToString(s.SnapshotId))
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("tag-filtered snapshots = %v, want %v (oldest first)", got, want)
	}
	all, err := c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{MaxResults: aws.Int32(5)})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Snapshots) != 5 || aws.ToString(all.NextToken) == "" {
		t.Errorf("first page of 7 with MaxResults 5 = %d snapshots, next token %q", len(all.Snapshots), aws.ToString(all.NextToken))
	}
	_, err = c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{MaxResults: aws.Int32(2)})
	ec2WantErr(t, err, "InvalidParameterValue", "between 5 and 1000")
	if _, err := c.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: want[:1], Tags: []types.Tag{{Key: aws.String("spotmax:group")}}}); err != nil {
		t.Fatal(err)
	}
	if s := ec2Snapshot(t, c, want[0]); len(s.Tags) != 0 {
		t.Errorf("tags after DeleteTags = %v", tagMap(s.Tags))
	}
}

func TestAWSCLISnapshots(t *testing.T) {
	e := startCLI(t)
	var vol struct {
		VolumeID string `json:"VolumeId"`
	}
	// 1000 GiB: the snapshot stays pending for minutes while the CLI's calls take seconds each.
	e.Run(&vol, "ec2", "create-volume", "--availability-zone", "us-east-1a", "--size", "1000", "--volume-type", "gp3")
	e.Region().Advance(sim.FastLatencies().CreateVolume)
	var snap struct {
		SnapshotID string `json:"SnapshotId"`
		State      string
		VolumeID   string `json:"VolumeId"`
	}
	e.Run(&snap, "ec2", "create-snapshot", "--volume-id", vol.VolumeID, "--description", "cross-az",
		"--tag-specifications", "ResourceType=snapshot,Tags=[{Key=spotmax:state:xaz_token,Value=tok-1}]")
	if snap.SnapshotID == "" || snap.State != "pending" || snap.VolumeID != vol.VolumeID {
		t.Fatalf("create-snapshot = %+v", snap)
	}
	wantCLIError(t, e.Fail("ec2", "create-volume", "--availability-zone", "us-east-1c", "--snapshot-id", snap.SnapshotID),
		"IncorrectState", "pending")
	e.Region().Advance(5 * time.Minute)
	var list struct {
		Snapshots []struct {
			SnapshotID string `json:"SnapshotId"`
			State      string
			Progress   string
		}
	}
	e.Run(&list, "ec2", "describe-snapshots", "--owner-ids", "self", "--filters", "Name=tag:spotmax:state:xaz_token,Values=tok-1")
	if len(list.Snapshots) != 1 || list.Snapshots[0].SnapshotID != snap.SnapshotID || list.Snapshots[0].State != "completed" || list.Snapshots[0].Progress != "100%" {
		t.Fatalf("describe-snapshots by tag = %+v", list)
	}
	var restored struct {
		VolumeID         string `json:"VolumeId"`
		SnapshotID       string `json:"SnapshotId"`
		AvailabilityZone string
		Size             int32
	}
	e.Run(&restored, "ec2", "create-volume", "--availability-zone", "us-east-1c", "--snapshot-id", snap.SnapshotID)
	if restored.SnapshotID != snap.SnapshotID || restored.AvailabilityZone != "us-east-1c" || restored.Size != 1000 {
		t.Fatalf("create-volume from the snapshot = %+v", restored)
	}
	src, _ := e.Region().Volume(vol.VolumeID)
	if got, _ := e.Region().Volume(restored.VolumeID); got.Marker != src.Marker {
		t.Errorf("restored volume's marker %q, want the source's %q", got.Marker, src.Marker)
	}
	e.Run(nil, "ec2", "delete-snapshot", "--snapshot-id", snap.SnapshotID)
	wantCLIError(t, e.Fail("ec2", "describe-snapshots", "--snapshot-ids", snap.SnapshotID), "InvalidSnapshot.NotFound", snap.SnapshotID)
}
