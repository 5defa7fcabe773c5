package agent

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"
)

// Options are the command line of spotmax-agent: the agent's Config plus how to log.
type Options struct {
	Config
	LogFormat string
	LogLevel  string
	Version   bool
}

// ParseArgs reads the configuration from args and the environment: each flag has a SPOTMAX_*
// variable (the flag name upper-cased, dashes as underscores) that a flag on the command line
// overrides. Consul's own CONSUL_HTTP_ADDR and CONSUL_HTTP_TOKEN and the SDK's
// AWS_EC2_METADATA_SERVICE_ENDPOINT apply when neither is set.
func ParseArgs(args []string, getenv func(string) string, stderr io.Writer) (Options, error) {
	var o Options
	// Settings that are gone, still parsed so that an old command line or environment file
	// gets a clear answer: the agent never falls back to IMDSv1 and never guesses a device.
	var imdsV1, noXenFallback bool
	fs := flag.NewFlagSet("spotmax-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	type def struct {
		name, help string
		p          any
		dflt       string
	}
	defs := []def{
		{"imds-endpoint", "instance metadata endpoint (default: AWS_EC2_METADATA_SERVICE_ENDPOINT, else http://169.254.169.254)", &o.IMDSEndpoint, ""},
		{"mount-path", "where to mount the data volume when one is assigned (default: the spotmax:state:mount_path / spotmax:persistence_mount_path tags, which also give each path of several)", &o.MountPath, ""},
		{"mount-options", "options for mount -o", &o.MountOptions, ""},
		{"consul-mode", "how to leave Consul on a notice: deregister, maintenance or off", &o.ConsulMode, "deregister"},
		{"consul-addr", "local Consul agent (default: CONSUL_HTTP_ADDR, else 127.0.0.1:8500)", &o.ConsulAddr, ""},
		{"consul-token", "Consul ACL token (default: CONSUL_HTTP_TOKEN; prefer the environment file to the command line)", &o.ConsulToken, ""},
		{"handle-rebalance", "act on rebalance recommendations (the group's spotmax:is_to_handle_rebalance_event)", &o.HandleRebalance, "false"},
		{"pre-stop-hook", "shell command run on a notice after leaving Consul", &o.PreStopHook, ""},
		{"stop-writers-hook", "shell command run before the data volume is unmounted", &o.StopWritersHook, ""},
		{"hook-timeout", "time limit of each hook", &o.HookTimeout, "60s"},
		{"release-timeout", "how long a busy data volume is retried before giving up (spot notices: their deadline)", &o.ReleaseTimeout, "90s"},
		{"notice-interval", "poll interval of the spot interruption notice in IMDS", &o.NoticeInterval, "180ms"},
		{"event-interval", "poll interval of the rebalance recommendation and the Auto Scaling lifecycle state", &o.EventInterval, "2s"},
		{"tag-interval", "poll interval of the instance tags in IMDS", &o.TagInterval, "2s"},
		{"ec2-tag-interval", "poll interval of the instance tags through EC2 when IMDS shows none", &o.EC2TagInterval, "30s"},
		{"device-interval", "poll interval of the block devices while a volume is awaited without inotify", &o.DeviceInterval, "20ms"},
		{"by-id-dir", "udev's by-id directory", &o.ByIDDir, "/dev/disk/by-id"},
		{"blank-hold", "how long a blank fresh volume is held (O_EXCL) and reported for the controller to swap it for a pooled data volume; negative: never", &o.BlankHold, "2m"},
		{"imds-v1-fallback", "removed: IMDSv2 only; true is an error", &imdsV1, "false"},
		{"no-xen-fallback", "no effect: a device is never guessed (kept for old command lines)", &noXenFallback, "false"},
		{"state-dir", "where notice progress is kept across agent restarts", &o.StateDir, "/run/spotmax-agent"},
		{"metrics-addr", "serve Prometheus metrics at /metrics on this address, e.g. :9109 (default: off)", &o.MetricsAddr, ""},
		{"cloudwatch", "publish the agent's events to CloudWatch, namespace SpotMax (default: off)", &o.CloudWatch, "false"},
		{"log-format", "text, json or auto (json when not on a terminal, e.g. under systemd)", &o.LogFormat, "auto"},
		{"log-level", "debug, info, warn or error", &o.LogLevel, "info"},
	}
	var errs []error
	for _, d := range defs {
		env := "SPOTMAX_" + strings.ToUpper(strings.ReplaceAll(d.name, "-", "_"))
		v := d.dflt
		if e := getenv(env); e != "" {
			v = e
		}
		help := d.help + " [$" + env + "]"
		switch p := d.p.(type) {
		case *string:
			fs.StringVar(p, d.name, v, help)
		case *bool:
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: not true or false", env, v))
			}
			fs.BoolVar(p, d.name, b, help)
		case *time.Duration:
			t, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: not a duration (e.g. 500ms, 30s)", env, v))
			}
			fs.DurationVar(p, d.name, t, help)
		}
	}
	fs.BoolVar(&o.Version, "version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: spotmax-agent [flags]\n\n"+
			"Runs on each instance of a spotmax group: mounts the data volume moved to it, and on an\n"+
			"interruption notice leaves Consul, runs hooks, and releases the data volume. Exits 0 at once\n"+
			"on an instance without the spotmax:group tag. Flags (each also read from its $SPOTMAX_* variable):\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if imdsV1 {
		errs = append(errs, errors.New("--imds-v1-fallback (SPOTMAX_IMDS_V1_FALLBACK) was removed: spotmax-agent reads IMDS "+
			"with IMDSv2 session tokens only; remove the setting and keep HttpTokens=required in the launch template"))
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " ")))
	}
	switch o.LogFormat {
	case "auto", "text", "json":
	default:
		errs = append(errs, fmt.Errorf("--log-format %q: want text, json or auto", o.LogFormat))
	}
	if _, err := parseLevel(o.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if _, err := o.Config.withDefaults(); err != nil {
		errs = append(errs, err)
	}
	return o, errors.Join(errs...)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// NewLogger returns the agent's logger: JSON for journald and log shippers, text on a terminal.
func (o Options) NewLogger(w *os.File) *slog.Logger {
	level, _ := parseLevel(o.LogLevel)
	hopts := &slog.HandlerOptions{Level: level}
	format := o.LogFormat
	if format == "auto" || format == "" {
		format = "json"
		if term.IsTerminal(int(w.Fd())) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, hopts))
	}
	return slog.New(slog.NewJSONHandler(w, hopts))
}
