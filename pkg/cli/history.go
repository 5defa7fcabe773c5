package cli

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/metrics"
)

// HistoryOptions are the inputs of `spotmax history`.
type HistoryOptions struct {
	IO     *IOStreams
	Output string
	Group  string
	// Since is the length of the range ending now; used when Start is zero.
	Since time.Duration
	// Start and End bound the range when Start is set.
	Start, End time.Time
	Period     time.Duration
	// Instance selects the actions on or launching one instance.
	Instance string
	CW       metrics.HistoryAPI
	// Logs reads the action records; nil shows counts only.
	Logs metrics.ActionQueryAPI
	// Now is the end of a --since range; tests fix it.
	Now func() time.Time
}

// historyJSON is the stable JSON shape of `spotmax history -o json`.
type historyJSON struct {
	Namespace     string             `json:"namespace"`
	Group         string             `json:"group"` // "" for the region-wide totals
	Start         string             `json:"start"`
	End           string             `json:"end"`
	PeriodSeconds int64              `json:"period_seconds"`
	Events        []eventHistoryJSON `json:"events"`
	Messages      []string           `json:"messages"`
	// Instance is the --instance selection of the actions ("" for all).
	Instance string `json:"instance"`
	// Actions are the action records of the range (CloudWatch Logs), oldest first.
	Actions []metrics.Action `json:"actions"`
}

type eventHistoryJSON struct {
	Name  string  `json:"name"`
	Timed bool    `json:"timed"`
	Total float64 `json:"total"`
	// AvgDurationSeconds is null for events without durations and for timed events with none
	// reported in the range.
	AvgDurationSeconds *float64     `json:"avg_duration_seconds"`
	Buckets            []bucketJSON `json:"buckets"`
}

type bucketJSON struct {
	Time               string   `json:"time"`
	Count              float64  `json:"count"`
	AvgDurationSeconds *float64 `json:"avg_duration_seconds"`
}

func newHistoryCmd(f *Factory, runF func(context.Context, *HistoryOptions) error) *cobra.Command {
	opts := &HistoryOptions{IO: f.IO, Now: time.Now}
	var since, start, end string
	cmd := &cobra.Command{
		Use:   "history",
		Short: "Show what spotmax did, when: every action, and events per period from CloudWatch",
		Long: `Show what spotmax and its agents did in a time range.

First the actions: one line per replacement ('spotmax run' or 'spotmax replace') and drain
('spotmax drain') with its time, group, instance and replacement, reason, result, duration and
actor — the audit records spotmax writes to the CloudWatch Logs log group /spotmax/actions.
--instance lists the actions on or launching one instance.

Then the counts: interruptions received, replacements
started, succeeded and failed, on-demand fallbacks, reverts to spot, volumes moved and mounted,
nodes drained, Consul deregistrations, lifetime rotations and invalid configurations.

The counts come from the CloudWatch metrics spotmax publishes (namespace SpotMax, dimension
AutoScalingGroupName), in one GetMetricData request. Without --group the region-wide totals are
shown. Each event that happened gets a table of its periods with the count and, for timed
events, the average duration; on a terminal a chart over the whole range follows.`,
		Example: `  spotmax history --group web
  spotmax history --instance i-0123456789abcdef0 --since 7d
  spotmax history --since 7d --period 1h
  spotmax history --group web --start 2026-03-01T00:00:00Z --end 2026-03-02T00:00:00Z -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Output = f.Output
			var err error
			if opts.Since, opts.Start, opts.End, err = parsePeriod(cmd.Flags(), since, start, end); err != nil {
				return err
			}
			if opts.Instance != "" && !instanceIDPattern.MatchString(opts.Instance) {
				return flagErrorf("invalid --instance %q: want an instance id (i-...)", opts.Instance)
			}
			if opts.Period <= 0 || opts.Period%time.Minute != 0 {
				return flagErrorf("invalid --period %s: want a whole number of minutes, e.g. 1m, 5m or 1h (spotmax publishes one-minute datapoints)", opts.Period)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			cfg, err := f.AWSConfig(cmd.Context())
			if err != nil {
				return err
			}
			opts.CW = cloudwatch.NewFromConfig(cfg)
			opts.Logs = cloudwatchlogs.NewFromConfig(cfg)
			return historyRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Group, "group", "", "Auto Scaling group (default: the region-wide totals)")
	fl.StringVar(&opts.Instance, "instance", "", "list only the actions on or launching this instance")
	fl.StringVar(&since, "since", "24h", "length of the range ending now: a duration such as 90m, 24h or 7d")
	fl.StringVar(&start, "start", "", "start of the range, RFC 3339 (e.g. 2026-03-01T00:00:00Z)")
	fl.StringVar(&end, "end", "", "end of the range, RFC 3339 (default: now)")
	fl.DurationVar(&opts.Period, "period", 5*time.Minute, "length of one period: a whole number of minutes")
	return cmd
}

// parsePeriod reads the period flags history and savings share: --since (a length of time
// ending now) or --start with an optional --end (a range), never both.
func parsePeriod(fl *pflag.FlagSet, since, start, end string) (d time.Duration, from, to time.Time, err error) {
	if fl.Changed("since") && (fl.Changed("start") || fl.Changed("end")) {
		return 0, from, to, flagErrorf("--since and --start/--end are mutually exclusive: give a length of time ending now, or a range")
	}
	if fl.Changed("end") && !fl.Changed("start") {
		return 0, from, to, flagErrorf("--end needs --start")
	}
	if d, err = parseSince(since); err != nil {
		return 0, from, to, err
	}
	if start != "" {
		if from, err = parseTimeFlag("start", start); err != nil {
			return 0, from, to, err
		}
	}
	if end != "" {
		if to, err = parseTimeFlag("end", end); err != nil {
			return 0, from, to, err
		}
	}
	return d, from, to, nil
}

// parseSince reads a --since duration: Go's syntax plus days ("7d").
func parseSince(s string) (time.Duration, error) {
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n float64
		n, err = strconv.ParseFloat(days, 64)
		d = time.Duration(n * float64(24*time.Hour))
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d <= 0 {
		return 0, flagErrorf("invalid --since %q: want a positive length of time such as 90m, 24h or 7d", s)
	}
	return d, nil
}

func parseTimeFlag(name, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, flagErrorf("invalid --%s %q: want an RFC 3339 time such as 2026-03-01T12:00:00Z", name, s)
	}
	return t, nil
}

// query turns the options into a history query, checking the range against now.
func (o *HistoryOptions) query() (metrics.HistoryQuery, error) {
	now := o.Now()
	q := metrics.HistoryQuery{Group: o.Group, Period: o.Period, Start: o.Start, End: o.End}
	if q.Start.IsZero() {
		q.Start, q.End = now.Add(-o.Since), now
	}
	if q.End.IsZero() {
		q.End = now
	}
	switch {
	case q.Start.After(now):
		return q, flagErrorf("--start %s is in the future (now is %s)", q.Start.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case !q.Start.Before(q.End):
		return q, flagErrorf("--start %s is not before --end %s", q.Start.UTC().Format(time.RFC3339), q.End.UTC().Format(time.RFC3339))
	case now.Sub(q.Start) > metrics.Retention:
		return q, flagErrorf("--start %s is older than CloudWatch keeps metrics (15 months)", q.Start.UTC().Format(time.RFC3339))
	}
	if err := q.Validate(); err != nil {
		return q, &FlagError{err: err}
	}
	return q, nil
}

func historyRun(ctx context.Context, o *HistoryOptions) error {
	q, err := o.query()
	if err != nil {
		return err
	}
	h, err := metrics.QueryHistory(ctx, o.CW, q)
	if err != nil {
		return err
	}
	actions := []metrics.Action{}
	if o.Logs != nil {
		actions, err = metrics.QueryActions(ctx, o.Logs, metrics.ActionQuery{Group: o.Group, Instance: o.Instance, Start: q.Start, End: q.End})
		if err != nil {
			return err
		}
	}
	out := toHistoryJSON(h)
	out.Instance, out.Actions = o.Instance, actions
	return printData(o.IO.Out, o.Output, out, func(w io.Writer) error {
		if o.Logs != nil {
			if err := writeActions(w, actions, o.Group, o.Instance); err != nil {
				return err
			}
		}
		return writeHistory(w, h, o.IO.OutTTY)
	})
}

// writeActions prints the action records, one line each.
func writeActions(w io.Writer, actions []metrics.Action, group, instance string) error {
	scope := "all groups"
	if group != "" {
		scope = "group " + group
	}
	if instance != "" {
		scope += ", instance " + instance
	}
	if len(actions) == 0 {
		_, err := fmt.Fprintf(w, "no spotmax actions recorded for %s in this range\n\n", scope)
		return err
	}
	fmt.Fprintf(w, "spotmax actions of %s (%d):\n", scope, len(actions))
	t := NewTable("ENDED", "GROUP", "ACTION", "INSTANCE", "REPLACEMENT", "REASON", "RESULT", "DURATION", "ACTOR")
	for _, a := range actions {
		what := a.Replacement
		if a.Kind == metrics.ActionDrain {
			what = "node " + a.Node
		} else if what != "" && a.Market != "" {
			what += fmt.Sprintf(" (%s %s %s)", a.Market, a.Type, a.AZ)
		}
		result := a.Result
		if a.Error != "" {
			result += ": " + a.Error
		}
		t.Row(a.Ended.UTC().Format("2006-01-02 15:04:05Z"), a.Group, a.Kind, a.Instance, what, a.Reason, result,
			groupconfig.ShortDuration(time.Duration(a.DurationSeconds*float64(time.Second)).Round(time.Second)), a.Actor)
	}
	if err := t.Write(w); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w)
	return err
}

func toHistoryJSON(h *metrics.History) historyJSON {
	out := historyJSON{Namespace: h.Namespace, Group: h.Group, Start: h.Start.UTC().Format(time.RFC3339),
		End: h.End.UTC().Format(time.RFC3339), PeriodSeconds: int64(h.Period / time.Second),
		Events: []eventHistoryJSON{}, Messages: append([]string{}, h.Messages...)}
	secs := func(timed bool, d time.Duration) *float64 {
		if !timed || d <= 0 {
			return nil
		}
		s := d.Seconds()
		return &s
	}
	for _, e := range h.Events {
		j := eventHistoryJSON{Name: string(e.Name), Timed: e.Timed, Total: e.Total,
			AvgDurationSeconds: secs(e.Timed, e.AvgDuration), Buckets: []bucketJSON{}}
		for _, b := range e.Buckets {
			j.Buckets = append(j.Buckets, bucketJSON{Time: b.Start.UTC().Format(time.RFC3339), Count: b.Count,
				AvgDurationSeconds: secs(e.Timed, b.AvgDuration)})
		}
		out.Events = append(out.Events, j)
	}
	return out
}

// writeHistory prints a table per event that happened and, on a terminal, a chart of it over
// the whole range.
func writeHistory(w io.Writer, h *metrics.History, tty bool) error {
	scope := "all groups"
	if h.Group != "" {
		scope = "group " + h.Group
	}
	fmt.Fprintf(w, "spotmax events of %s, %s to %s, per %s\n", scope, h.Start.UTC().Format("2006-01-02 15:04Z"),
		h.End.UTC().Format("2006-01-02 15:04Z"), groupconfig.ShortDuration(h.Period))
	var quiet []string
	for _, e := range h.Events {
		if e.Total == 0 {
			quiet = append(quiet, string(e.Name))
			continue
		}
		title := fmt.Sprintf("\n%s: %s", e.Name, countString(e.Total))
		if e.Timed && e.AvgDuration > 0 {
			title += ", average " + groupconfig.ShortDuration(e.AvgDuration)
		}
		fmt.Fprintln(w, title)
		header := []string{"PERIOD", "COUNT"}
		if e.Timed {
			header = append(header, "AVG DURATION")
		}
		t := NewTable(header...)
		for _, b := range e.Buckets {
			row := []string{b.Start.UTC().Format("2006-01-02 15:04Z"), strconv.FormatFloat(b.Count, 'f', -1, 64)}
			if e.Timed && b.AvgDuration > 0 {
				row = append(row, groupconfig.ShortDuration(b.AvgDuration))
			}
			t.Row(row...)
		}
		if err := t.Write(w); err != nil {
			return err
		}
		if tty {
			fmt.Fprintln(w, sparkline(h, e, 60))
		}
	}
	if len(quiet) == len(h.Events) {
		_, err := fmt.Fprintf(w, "\nno spotmax events in this range\n")
		return err
	}
	if len(quiet) > 0 {
		fmt.Fprintf(w, "\nno events: %s\n", strings.Join(quiet, ", "))
	}
	for _, m := range h.Messages {
		fmt.Fprintf(w, "CloudWatch: %s\n", m)
	}
	return nil
}

func countString(n float64) string {
	s := strconv.FormatFloat(n, 'f', -1, 64)
	if n == 1 {
		return s + " event"
	}
	return s + " events"
}

var sparks = []rune("▁▂▃▄▅▆▇█")

// sparkline draws an event's counts over the history's whole range in at most width columns,
// each column summing consecutive periods: "·" for none, ▁ to █ scaled to the busiest column.
func sparkline(h *metrics.History, e metrics.EventHistory, width int) string {
	n := int(h.End.Sub(h.Start) / h.Period)
	if n <= 0 {
		return ""
	}
	per := (n + width - 1) / width
	cols := make([]float64, (n+per-1)/per)
	for _, b := range e.Buckets {
		i := int(b.Start.Sub(h.Start)/h.Period) / per
		if i >= 0 && i < len(cols) {
			cols[i] += b.Count
		}
	}
	peak := 0.0
	for _, c := range cols {
		peak = math.Max(peak, c)
	}
	var b strings.Builder
	b.WriteString("│")
	for _, c := range cols {
		switch {
		case c <= 0:
			b.WriteRune('·')
		default:
			b.WriteRune(sparks[int(math.Ceil(c/peak*float64(len(sparks))))-1])
		}
	}
	b.WriteString("│")
	fmt.Fprintf(&b, " %s … %s, one column = %s, peak %s", h.Start.UTC().Format("01-02 15:04"), h.End.UTC().Format("01-02 15:04"),
		groupconfig.ShortDuration(time.Duration(per)*h.Period), strconv.FormatFloat(peak, 'f', -1, 64))
	return b.String()
}
