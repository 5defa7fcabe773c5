package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/spotmax/spotmax/pkg/agent"
	"github.com/spotmax/spotmax/pkg/blockdev"
	"github.com/spotmax/spotmax/pkg/blockdev/blockdevtest"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/imds"
)

// mountedSources returns the sources of every mount this process sees.
func mountedSources(t *testing.T) map[string]string {
	t.Helper()
	mounts, err := blockdev.ReadMountInfo("")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range mounts {
		out[m.Source] = m.MountPoint
	}
	return out
}

// On a Xen-style instance no device reports the volume's id. The agent once mounted "the only
// free disk" then (issue 11, case 6): an unrelated disk, within milliseconds of the assignment.
// Now a disk is mounted only when EC2's attachment record for this instance names it.
func TestUnprovenDiskNeverMountedAttachmentRecordIs(t *testing.T) {
	blockdevtest.Require(t)
	ctx := context.Background()
	env, in := simInstance(t, true, map[string]string{groupconfig.TagGroup: "g"})
	r := env.Region()
	data := blockdevtest.NewLoop(t, 16, true)
	sum := blockdevtest.WriteData(t, data.Dev, 64<<10)
	stranger := blockdevtest.NewLoop(t, 16, true) // formatted, free, Xen-named: what the old rule took
	path := filepath.Join(t.TempDir(), "data")
	t.Cleanup(func() { blockdevtest.UnmountPath(t, path) })
	cfg := baseConfig(env, in.ID, t)
	devs := blockdevtest.NewDevDir(t)
	cfg.DevDir = devs.Dir
	devs.Add(t, "xvdg", stranger.Dev)

	ec2c := ec2.NewFromConfig(env.Config)
	cv, err := ec2c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String(in.AZ), Size: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	vol := aws.ToString(cv.VolumeId)
	eventually(t, 20*time.Second, "the volume to be available", func() bool {
		v, _ := r.Volume(vol)
		return v.State == "available"
	})
	setTag(t, env, in.ID, groupconfig.StateVolume, vol)
	setTag(t, env, in.ID, groupconfig.StateMountPath, path)
	lb := runAgent(t, "xen", cfg)
	eventually(t, 10*time.Second, "the agent to wait, saying why", func() bool {
		return hasLine(lb.String(), "waiting for the data volume to be attached", "no other disk is ever mounted", vol) &&
			hasLine(lb.String(), "EC2 does not show the data volume attached", "attachment=\"not attached\"")
	}, lb)
	time.Sleep(500 * time.Millisecond) // the old rule mounted the free disk within 30 ms
	if src := mountedAt(t, path); src != "" {
		t.Fatalf("%s was mounted at %s before volume %s was attached", src, path, vol)
	}

	// EC2 attaches the volume as /dev/sdf; its device (xvdf on Xen) has not appeared yet.
	if _, err := ec2c.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(vol), InstanceId: aws.String(in.ID),
		Device: aws.String("/dev/sdf")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the attachment", func() bool {
		v, _ := r.Volume(vol)
		return v.Attachment != nil && v.Attachment.State == "attached"
	})
	time.Sleep(2500 * time.Millisecond) // one read of the record at least
	if src := mountedAt(t, path); src != "" {
		t.Fatalf("%s was mounted at %s while the device EC2 names for %s (/dev/sdf, xvdf) did not exist", src, path, vol)
	}

	appeared := time.Now()
	devs.Add(t, "xvdf", data.Dev)
	eventually(t, 10*time.Second, "the recorded device to be mounted", func() bool {
		return mountedAt(t, path) == data.Dev && tagOf(r, in.ID, groupconfig.StateVolumeMounted) == vol
	}, lb)
	t.Logf("device appeared → mounted: %v", time.Since(appeared))
	if got := blockdevtest.Checksum(t, path); got != sum {
		t.Errorf("checksum at %s = %s, want %s: not the data volume", path, got, sum)
	}
	if at, ok := mountedSources(t)[stranger.Dev]; ok {
		t.Errorf("the unrelated disk %s is mounted at %s", stranger.Dev, at)
	}
	if !hasLine(lb.String(), "device identified by EC2's attachment record", "attachment_device=/dev/sdf", "device="+filepath.Join(devs.Dir, "xvdf")) {
		t.Errorf("the identification was not logged:\n%s", lb.String())
	}
	if n := strings.Count(lb.String(), "waiting for the data volume to be attached"); n != 1 {
		t.Errorf("the wait was logged %d times, want once", n)
	}
}

func mountedAt(t *testing.T, path string) string {
	t.Helper()
	src, err := (&blockdev.Mounter{}).MountedAt(path)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// An instance id from IMDS ends up in a file name under the state directory, in tags and in
// logs: one that is not an instance id stops the agent before any of that, naming the value.
func TestInvalidInstanceIDFromIMDSStopsTheAgent(t *testing.T) {
	const bad = "../../etc/cron.d/spotmax"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", "21600")
			_, _ = w.Write([]byte("token"))
		case r.Header.Get("X-aws-ec2-metadata-token") != "token":
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == "/latest/dynamic/instance-identity/document":
			_ = json.NewEncoder(w).Encode(map[string]string{"instanceId": bad, "region": "us-east-1", "availabilityZone": "us-east-1a"})
		case r.URL.Path == "/latest/meta-data/tags/instance/":
			_, _ = w.Write([]byte(groupconfig.TagGroup))
		case r.URL.Path == "/latest/meta-data/tags/instance/"+groupconfig.TagGroup:
			_, _ = w.Write([]byte("g"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	stateDir := t.TempDir()
	lb := &logBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := agent.Run(ctx, agent.Config{IMDSEndpoint: srv.URL, ConsulMode: "off", StateDir: stateDir, DevDir: "-",
		SysBlockDir: "-", ByIDDir: t.TempDir(), Log: newLogger(lb)})
	if !errors.Is(err, imds.ErrInvalidInstanceID) || !strings.Contains(err.Error(), `"`+bad+`"`) {
		t.Fatalf("Run with instanceId %q = %v, want ErrInvalidInstanceID naming the value", bad, err)
	}
	if ctx.Err() != nil {
		t.Error("the agent retried an invalid instance id until its context ended, want it to stop at once")
	}
	if entries, _ := os.ReadDir(stateDir); len(entries) != 0 || strings.Contains(lb.String(), "spotmax-agent started") {
		t.Errorf("the agent went on with an invalid instance id: state dir %v, log:\n%s", entries, lb.String())
	}
}
