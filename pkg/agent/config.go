package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/spotmax/spotmax/pkg/blockdev"
	"github.com/spotmax/spotmax/pkg/consul"
	"github.com/spotmax/spotmax/pkg/imds"
)

// Config is the agent's configuration. cmd/spotmax-agent fills it from flags and SPOTMAX_*
// environment variables; the zero value of each field means its default.
type Config struct {
	// IMDSEndpoint is the instance metadata service; empty: the SDK's default (the link-local
	// address, or AWS_EC2_METADATA_SERVICE_ENDPOINT). It is always read with IMDSv2 session
	// tokens, never IMDSv1.
	IMDSEndpoint string

	// AWS, when set, is the SDK configuration for EC2 calls (tests point it at the simulated
	// region). Otherwise the SDK's default chain is used (instance profile credentials,
	// AWS_ENDPOINT_URL), with the region from IMDS.
	AWS *aws.Config

	// MountPath overrides where the data volume is mounted when one volume is assigned (with
	// several it cannot say which, and the tags decide); empty: the spotmax:state:mount_path tag
	// the replacement workflow sets, else spotmax:persistence_mount_path.
	MountPath string
	// MountOptions are passed to mount -o.
	MountOptions string

	// ConsulMode is off, deregister (default) or maintenance.
	ConsulMode string
	// ConsulAddr is the local Consul agent; empty: CONSUL_HTTP_ADDR, else 127.0.0.1:8500.
	ConsulAddr string
	// ConsulToken is the ACL token; empty: CONSUL_HTTP_TOKEN. Never logged.
	ConsulToken string

	// HandleRebalance makes a rebalance recommendation a notice to act on, as the group's
	// spotmax:is_to_handle_rebalance_event does for the controller. Recommendations are relayed
	// either way.
	HandleRebalance bool
	// PreStopHook is a shell command run on a notice after Consul deregistration.
	PreStopHook string
	// StopWritersHook is a shell command run before the data volume is unmounted, to stop the
	// programs that write to it.
	StopWritersHook string
	// HookTimeout bounds each hook (default 60 s).
	HookTimeout time.Duration
	// ReleaseTimeout bounds the retries of a busy unmount on a notice without a deadline
	// (default 90 s; a spot interruption's own deadline bounds it otherwise).
	ReleaseTimeout time.Duration

	// BlankHold is how long the agent holds a blank fresh volume (opened O_EXCL, reported in
	// spotmax:state:blank_volume) for the controller to swap it for a pooled data volume
	// (default 2 m); negative: never report one.
	BlankHold time.Duration
	// AnnounceInterval is how often the agent refreshes its announcement on its instance
	// (spotmax:state:agent; default 1 h: one CreateTags an hour per instance keeps a fleet of
	// 10,000 under 3 calls a second).
	AnnounceInterval time.Duration

	// NoticeInterval is how often spot/instance-action is polled (default 180 ms).
	NoticeInterval time.Duration
	// EventInterval is how often the rebalance recommendation and the Auto Scaling target
	// lifecycle state are polled (default 2 s).
	EventInterval time.Duration
	// TagInterval is how often instance tags are polled through IMDS (default 2 s).
	TagInterval time.Duration
	// EC2TagInterval is how often they are polled through EC2 DescribeTags when IMDS does not
	// show tags (default 30 s: every instance calling EC2 adds up against the account's rate
	// limits).
	EC2TagInterval time.Duration
	// DeviceInterval is how often the block devices are looked at while a volume is awaited
	// (default 20 ms: a directory read and a few small files).
	DeviceInterval time.Duration

	// ByIDDir and SysBlockDir are where EBS volumes are looked up (defaults /dev/disk/by-id and
	// /sys/block). Tests point ByIDDir at links to loop devices.
	ByIDDir     string
	SysBlockDir string
	// DevDir is where the device that EC2's attachment record names (/dev/sdf, or /dev/xvdf on
	// Xen) is looked for (default /dev; "-" never uses the record). Tests point it at links to
	// loop devices.
	DevDir string
	// StateDir keeps which notice steps are done across agent restarts (default
	// /run/spotmax-agent: it survives a restart of the agent, not a reboot).
	StateDir string

	// MetricsAddr, when set, serves the agent's events as Prometheus metrics at /metrics on
	// this address (host:port; ":9109" for every interface, port 0 for any free port). Off by
	// default: every instance would otherwise open a port.
	MetricsAddr string
	// CloudWatch publishes the agent's events to CloudWatch (namespace SpotMax, dimension
	// AutoScalingGroupName) with the instance role's cloudwatch:PutMetricData, soon after each
	// event and at shutdown. Off by default: a controller already publishes the interruptions
	// it learns of and its own Consul deregistrations.
	CloudWatch bool

	Log *slog.Logger
}

// withDefaults returns c with defaults filled in and checks it.
func (c Config) withDefaults() (Config, error) {
	if c.ConsulMode == "" {
		c.ConsulMode = string(consul.ModeDeregister)
	}
	if c.ConsulMode != "off" {
		if _, err := consul.ParseMode(c.ConsulMode); err != nil {
			return c, fmt.Errorf("%w (or off)", err)
		}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.HookTimeout, 60*time.Second)
	def(&c.ReleaseTimeout, 90*time.Second)
	def(&c.NoticeInterval, imds.DefaultNoticeInterval)
	def(&c.EventInterval, 2*time.Second)
	def(&c.TagInterval, imds.DefaultTagInterval)
	def(&c.EC2TagInterval, 30*time.Second)
	def(&c.DeviceInterval, 20*time.Millisecond)
	def(&c.BlankHold, 2*time.Minute)
	def(&c.AnnounceInterval, time.Hour)
	for name, d := range map[string]time.Duration{"hook timeout": c.HookTimeout, "release timeout": c.ReleaseTimeout,
		"notice interval": c.NoticeInterval, "event interval": c.EventInterval, "tag interval": c.TagInterval, "EC2 tag interval": c.EC2TagInterval,
		"device interval": c.DeviceInterval} {
		if d < 0 {
			return c, fmt.Errorf("%s %v is negative", name, d)
		}
	}
	if c.MountPath != "" && !filepath.IsAbs(c.MountPath) {
		return c, fmt.Errorf("mount path %q is not absolute", c.MountPath)
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return c, fmt.Errorf("metrics address %q: want host:port, e.g. :9109 or 127.0.0.1:9109: %w", c.MetricsAddr, err)
		}
	}
	if c.ByIDDir == "" {
		c.ByIDDir = blockdev.DefaultByIDDir
	}
	if c.SysBlockDir == "" {
		c.SysBlockDir = blockdev.DefaultSysBlockDir
	}
	if c.DevDir == "" {
		c.DevDir = "/dev"
	}
	if c.StateDir == "" {
		c.StateDir = "/run/spotmax-agent"
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// logAttrs is the effective configuration for the start-up log line, without secrets.
func (c Config) logAttrs() []any {
	imdsEP := c.IMDSEndpoint
	if imdsEP == "" {
		imdsEP = "default"
	}
	consulAddr := c.ConsulAddr
	if consulAddr == "" {
		consulAddr = "default"
	}
	return []any{"imds", imdsEP, "mount_path_override", c.MountPath,
		"mount_options", c.MountOptions, "consul_mode", c.ConsulMode, "consul_addr", consulAddr,
		"consul_token_set", c.ConsulToken != "", "handle_rebalance", c.HandleRebalance,
		"pre_stop_hook_set", c.PreStopHook != "", "stop_writers_hook_set", c.StopWritersHook != "",
		"notice_interval", c.NoticeInterval.String(), "event_interval", c.EventInterval.String(), "tag_interval", c.TagInterval.String(),
		"device_interval", c.DeviceInterval.String(), "by_id_dir", c.ByIDDir, "state_dir", c.StateDir,
		"metrics_addr", c.MetricsAddr, "cloudwatch", c.CloudWatch}
}

// ErrNotMember is returned by Membership for an instance without the spotmax:group tag.
var ErrNotMember = errors.New("not a member of a spotmax group")
