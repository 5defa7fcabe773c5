package logs

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/spotmax/spotmax/pkg/sim/awsproto"
)

// Region is what CloudWatch Logs needs of the simulated region: its lock (which guards the
// service's state as well), the due state changes every call runs first, the simulated time and
// the names in ARNs.
type Region interface {
	sync.Locker
	RunDue()
	Now() time.Time
	Name() string
	AccountID() string
}

// Service is the CloudWatch Logs of one simulated region.
type Service struct {
	region Region
	groups map[string]*logGroup
}

// New returns the CloudWatch Logs of region, without log groups.
func New(region Region) *Service {
	return &Service{region: region, groups: map[string]*logGroup{}}
}

// Spec is how the region's mux reaches the service: signing name logs, AWS JSON 1.1.
func (s *Service) Spec() *awsproto.Service {
	return &awsproto.Service{
		Name:        "logs",
		JSONTargets: []string{"Logs_20140328"},
		ErrorShapes: map[string]string{
			awsproto.CodeThrottling:       "ThrottlingException",
			awsproto.CodeMissingParameter: invalidParameter,
			awsproto.CodeInvalidParameter: invalidParameter,
			awsproto.CodeValidationError:  invalidParameter,
			"SerializationException":      invalidParameter,
			"InvalidNextToken":            invalidParameter,
			"InternalError":               "ServiceUnavailableException",
			awsproto.CodeInvalidAction:    "UnknownOperationException",
		},
		Handle: s.serve,
	}
}

// do runs fn with the region locked after its due state changes.
func (s *Service) do(fn func()) {
	s.region.Lock()
	defer s.region.Unlock()
	s.region.RunDue()
	fn()
}

// CloudWatch Logs error codes (the names of the SDK's error structures).
const (
	notFound         = "ResourceNotFoundException"
	alreadyExists    = "ResourceAlreadyExistsException"
	invalidParameter = "InvalidParameterException"
)

// CloudWatch Logs limits
// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/cloudwatch_limits_cwl.html).
const (
	logsMaxBatchEvents = 10000
	logsMaxBatchBytes  = 1048576
	logsEventOverhead  = 26
	logsMaxEventBytes  = 1 << 20
	logsMaxBatchSpan   = 24 * time.Hour
	logsMaxPast        = 14 * 24 * time.Hour
	logsMaxFuture      = 2 * time.Hour
	logsMaxFilterLimit = 10000
)

var (
	// Compiled on first use: {1,512} compiles to a large program (0.7 MB at every command's
	// start-up when compiled at package init).
	logGroupPattern  = awsproto.LazyRegexp(`^[\.\-_/#A-Za-z0-9]{1,512}$`)
	logStreamPattern = awsproto.LazyRegexp(`^[^:*]{1,512}$`)
)

type logGroup struct {
	name    string
	created time.Time
	streams map[string]*logStream
}

type logStream struct {
	name    string
	created time.Time
	events  []Event
}

// Event is one event of a simulated log stream.
type Event struct {
	Stream    string
	Timestamp time.Time
	Ingested  time.Time
	Message   string
	ID        string
}

// Events returns the events of a log group, oldest first, for tests.
func (s *Service) Events(group string) []Event {
	s.region.Lock()
	defer s.region.Unlock()
	g := s.groups[group]
	if g == nil {
		return nil
	}
	var out []Event
	for _, ls := range g.streams {
		out = append(out, ls.events...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Timestamp.Before(out[j].Timestamp) })
	return out
}

var actions = awsproto.JSONActions[*Service]{
	"CreateLogGroup":  (*Service).logsCreateLogGroup,
	"CreateLogStream": (*Service).logsCreateLogStream,
	"PutLogEvents":    (*Service).logsPutLogEvents,
	"FilterLogEvents": (*Service).logsFilterLogEvents,
}

func (s *Service) serve(c *awsproto.Call) {
	actions.Serve(s, c, "CloudWatch Logs", "Logs_20140328", s.do)
}

func logsDecode(c *awsproto.Call, v any) *awsproto.APIError {
	return c.DecodeJSON(v, "SerializationException")
}

// logsCheckName checks a log group or stream name against the member's pattern, with AWS's
// messages (the pattern as AWS words it).
func logsCheckName(member, name string, re *regexp.Regexp, pattern string) *awsproto.APIError {
	if name == "" {
		return awsproto.NullMember(invalidParameter, member)
	}
	if !re.MatchString(name) {
		return awsproto.Errorf(invalidParameter, "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must satisfy regular expression pattern: %s", name, member, pattern)
	}
	return nil
}

func logsCheckGroupName(name string) *awsproto.APIError {
	return logsCheckName("logGroupName", name, logGroupPattern(), `[\.\-_/#A-Za-z0-9]+`)
}

func logsCheckStreamName(name string) *awsproto.APIError {
	return logsCheckName("logStreamName", name, logStreamPattern(), "[^:*]*")
}

func (s *Service) logGroup(name string) (*logGroup, *awsproto.APIError) {
	if err := logsCheckGroupName(name); err != nil {
		return nil, err
	}
	g := s.groups[name]
	if g == nil {
		return nil, awsproto.Errorf(notFound, "The specified log group does not exist.")
	}
	return g, nil
}

func (s *Service) logsCreateLogGroup(c *awsproto.Call) (any, *awsproto.APIError) {
	var in struct {
		LogGroupName string `json:"logGroupName"`
	}
	if err := logsDecode(c, &in); err != nil {
		return nil, err
	}
	if err := logsCheckGroupName(in.LogGroupName); err != nil {
		return nil, err
	}
	st := s
	if st.groups[in.LogGroupName] != nil {
		return nil, awsproto.Errorf(alreadyExists, "The specified log group already exists")
	}
	st.groups[in.LogGroupName] = &logGroup{name: in.LogGroupName, created: s.region.Now(), streams: map[string]*logStream{}}
	return nil, nil
}

func (s *Service) logsCreateLogStream(c *awsproto.Call) (any, *awsproto.APIError) {
	var in struct {
		LogGroupName  string `json:"logGroupName"`
		LogStreamName string `json:"logStreamName"`
	}
	if err := logsDecode(c, &in); err != nil {
		return nil, err
	}
	g, err := s.logGroup(in.LogGroupName)
	if err != nil {
		return nil, err
	}
	if err := logsCheckStreamName(in.LogStreamName); err != nil {
		return nil, err
	}
	if g.streams[in.LogStreamName] != nil {
		return nil, awsproto.Errorf(alreadyExists, "The specified log stream already exists")
	}
	g.streams[in.LogStreamName] = &logStream{name: in.LogStreamName, created: s.region.Now()}
	return nil, nil
}

func (s *Service) logsPutLogEvents(c *awsproto.Call) (any, *awsproto.APIError) {
	var in struct {
		LogGroupName  string `json:"logGroupName"`
		LogStreamName string `json:"logStreamName"`
		LogEvents     []struct {
			Timestamp *int64  `json:"timestamp"`
			Message   *string `json:"message"`
		} `json:"logEvents"`
	}
	if err := logsDecode(c, &in); err != nil {
		return nil, err
	}
	g, err := s.logGroup(in.LogGroupName)
	if err != nil {
		return nil, err
	}
	if err := logsCheckStreamName(in.LogStreamName); err != nil {
		return nil, err
	}
	ls := g.streams[in.LogStreamName]
	if ls == nil {
		return nil, awsproto.Errorf(notFound, "The specified log stream does not exist.")
	}
	n := len(in.LogEvents)
	switch {
	case n == 0:
		return nil, awsproto.Errorf(invalidParameter, "1 validation error detected: Value '[]' at 'logEvents' failed to satisfy constraint: Member must have length greater than or equal to 1")
	case n > logsMaxBatchEvents:
		return nil, awsproto.Errorf(invalidParameter, "1 validation error detected: Value at 'logEvents' failed to satisfy constraint: Member must have length less than or equal to %d", logsMaxBatchEvents)
	}
	size := 0
	for i, e := range in.LogEvents {
		if e.Timestamp == nil {
			return nil, awsproto.NullMember(invalidParameter, fmt.Sprintf("logEvents.%d.member.timestamp", i+1))
		}
		if e.Message == nil || *e.Message == "" {
			return nil, awsproto.Errorf(invalidParameter, "1 validation error detected: Value '' at 'logEvents.%d.member.message' failed to satisfy constraint: Member must have length greater than or equal to 1", i+1)
		}
		if !utf8.ValidString(*e.Message) {
			return nil, awsproto.Errorf(invalidParameter, "Log event %d is not valid UTF-8.", i)
		}
		if len(*e.Message) > logsMaxEventBytes {
			return nil, awsproto.Errorf(invalidParameter, "Log event too large: %d bytes exceeds limit of %d", len(*e.Message), logsMaxEventBytes)
		}
		size += len(*e.Message) + logsEventOverhead
		if i > 0 && *e.Timestamp < *in.LogEvents[i-1].Timestamp {
			return nil, awsproto.Errorf(invalidParameter, "Log events in a single PutLogEvents request must be in chronological order.")
		}
	}
	if size > logsMaxBatchBytes {
		return nil, awsproto.Errorf(invalidParameter, "Upload too large: %d bytes exceeds limit of %d", size, logsMaxBatchBytes)
	}
	first, last := time.UnixMilli(*in.LogEvents[0].Timestamp), time.UnixMilli(*in.LogEvents[n-1].Timestamp)
	if last.Sub(first) > logsMaxBatchSpan {
		return nil, awsproto.Errorf(invalidParameter, "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.")
	}
	now := s.region.Now()
	type rejected struct {
		TooNewLogEventStartIndex *int `json:"tooNewLogEventStartIndex,omitempty"`
		TooOldLogEventEndIndex   *int `json:"tooOldLogEventEndIndex,omitempty"`
	}
	var rej rejected
	for i, e := range in.LogEvents {
		t := time.UnixMilli(*e.Timestamp)
		switch {
		case now.Sub(t) > logsMaxPast:
			rej.TooOldLogEventEndIndex = &i
			continue
		case t.Sub(now) > logsMaxFuture:
			if rej.TooNewLogEventStartIndex == nil {
				rej.TooNewLogEventStartIndex = &i
			}
			continue
		}
		ls.events = append(ls.events, Event{Stream: ls.name, Timestamp: t, Ingested: now, Message: *e.Message,
			ID: fmt.Sprintf("%056d", len(ls.events)+1)})
	}
	// Events are kept in time order, as FilterLogEvents returns them.
	sort.SliceStable(ls.events, func(i, j int) bool { return ls.events[i].Timestamp.Before(ls.events[j].Timestamp) })
	out := map[string]any{"nextSequenceToken": strconv.Itoa(len(ls.events))}
	if rej.TooNewLogEventStartIndex != nil || rej.TooOldLogEventEndIndex != nil {
		out["rejectedLogEventsInfo"] = rej
	}
	return out, nil
}

func (s *Service) logsFilterLogEvents(c *awsproto.Call) (any, *awsproto.APIError) {
	var in struct {
		LogGroupName        string   `json:"logGroupName"`
		LogGroupIdentifier  string   `json:"logGroupIdentifier"`
		LogStreamNames      []string `json:"logStreamNames"`
		LogStreamNamePrefix string   `json:"logStreamNamePrefix"`
		StartTime           *int64   `json:"startTime"`
		EndTime             *int64   `json:"endTime"`
		FilterPattern       string   `json:"filterPattern"`
		NextToken           string   `json:"nextToken"`
		Limit               *int     `json:"limit"`
	}
	if err := logsDecode(c, &in); err != nil {
		return nil, err
	}
	name := in.LogGroupName
	switch {
	case name != "" && in.LogGroupIdentifier != "":
		return nil, awsproto.Errorf(invalidParameter, "LogGroup name and LogGroup ARN are mutually exclusive parameters.")
	case name == "" && in.LogGroupIdentifier != "":
		name = in.LogGroupIdentifier
		if strings.HasPrefix(name, "arn:") {
			parts := strings.Split(name, ":")
			if len(parts) < 7 || parts[5] != "log-group" {
				return nil, awsproto.Errorf(invalidParameter, "Invalid log group identifier %s", in.LogGroupIdentifier)
			}
			name = parts[6]
		}
	case name == "":
		return nil, awsproto.Errorf(invalidParameter, "Should provide either a LogGroup name or LogGroup ARN")
	}
	if len(in.LogStreamNames) > 0 && in.LogStreamNamePrefix != "" {
		return nil, awsproto.Errorf(invalidParameter, "Cannot specify both LogStreamNames and LogStreamNamePrefix")
	}
	limit := logsMaxFilterLimit
	if in.Limit != nil {
		if *in.Limit < 1 || *in.Limit > logsMaxFilterLimit {
			return nil, awsproto.Errorf(invalidParameter, "1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: Member must have value between 1 and %d", *in.Limit, logsMaxFilterLimit)
		}
		limit = *in.Limit
	}
	match, perr := parseFilterPattern(in.FilterPattern)
	if perr != nil {
		return nil, perr
	}
	g, err := s.logGroup(name)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, s := range in.LogStreamNames {
		if g.streams[s] == nil {
			return nil, awsproto.Errorf(notFound, "The specified log stream does not exist.")
		}
		want[s] = true
	}
	var all []Event
	for _, ls := range g.streams {
		if len(want) > 0 && !want[ls.name] || !strings.HasPrefix(ls.name, in.LogStreamNamePrefix) {
			continue
		}
		for _, e := range ls.events {
			ms := e.Timestamp.UnixMilli()
			if in.StartTime != nil && ms < *in.StartTime || in.EndTime != nil && ms > *in.EndTime {
				continue
			}
			if match(e.Message) {
				all = append(all, e)
			}
		}
	}
	sort.SliceStable(all, func(i, j int) bool {
		if !all[i].Timestamp.Equal(all[j].Timestamp) {
			return all[i].Timestamp.Before(all[j].Timestamp)
		}
		return all[i].Stream+all[i].ID < all[j].Stream+all[j].ID
	})
	start, end, next, err := awsproto.Page(len(all), int64(limit), in.NextToken, logsMaxFilterLimit, logsMaxFilterLimit)
	if err != nil {
		return nil, err
	}
	type eventOut struct {
		LogStreamName string `json:"logStreamName"`
		Timestamp     int64  `json:"timestamp"`
		Message       string `json:"message"`
		IngestionTime int64  `json:"ingestionTime"`
		EventID       string `json:"eventId"`
	}
	out := struct {
		Events    []eventOut `json:"events"`
		NextToken string     `json:"nextToken,omitempty"`
	}{Events: []eventOut{}, NextToken: next}
	for _, e := range all[start:end] {
		out.Events = append(out.Events, eventOut{LogStreamName: e.Stream, Timestamp: e.Timestamp.UnixMilli(), Message: e.Message,
			IngestionTime: e.Ingested.UnixMilli(), EventID: e.Stream + "/" + e.ID})
	}
	return out, nil
}

var jsonTermPattern = awsproto.LazyRegexp(`^\$\.([A-Za-z0-9_.]+)\s*(=|!=)\s*("(?:[^"\\]|\\.)*"|[^\s"&|]+)$`)

// parseFilterPattern compiles the subset of CloudWatch Logs filter patterns the simulated region
// supports: "" (everything), terms that must all appear ("ERROR timeout", "\"exact phrase\""),
// and JSON patterns of equalities joined by && ({ $.group = "web" && $.result != "failed" }).
// Anything else is refused as AWS refuses a pattern it cannot parse.
func parseFilterPattern(p string) (func(string) bool, *awsproto.APIError) {
	p = strings.TrimSpace(p)
	bad := func() *awsproto.APIError { return awsproto.Errorf(invalidParameter, "Invalid filter pattern: %s", p) }
	if p == "" {
		return func(string) bool { return true }, nil
	}
	if strings.HasPrefix(p, "{") {
		if !strings.HasSuffix(p, "}") {
			return nil, bad()
		}
		body := strings.TrimSpace(p[1 : len(p)-1])
		type cond struct {
			path []string
			neg  bool
			val  string
		}
		var conds []cond
		for _, part := range strings.Split(body, "&&") {
			m := jsonTermPattern().FindStringSubmatch(strings.TrimSpace(part))
			if m == nil {
				return nil, bad()
			}
			v := m[3]
			if strings.HasPrefix(v, `"`) {
				var s string
				if err := json.Unmarshal([]byte(v), &s); err != nil {
					return nil, bad()
				}
				v = s
			}
			conds = append(conds, cond{path: strings.Split(m[1], "."), neg: m[2] == "!=", val: v})
		}
		return func(msg string) bool {
			var doc any
			if json.Unmarshal([]byte(msg), &doc) != nil {
				return false
			}
			for _, c := range conds {
				cur := doc
				for _, k := range c.path {
					obj, ok := cur.(map[string]any)
					if !ok {
						cur = nil
						break
					}
					cur = obj[k]
				}
				var s string
				switch x := cur.(type) {
				case string:
					s = x
				case float64:
					s = strconv.FormatFloat(x, 'f', -1, 64)
				case bool:
					s = strconv.FormatBool(x)
				case nil:
					if !c.neg {
						return false
					}
					continue
				default:
					return false
				}
				if (s == c.val) == c.neg {
					return false
				}
			}
			return true
		}, nil
	}
	var terms []string
	rest := p
	for rest != "" {
		rest = strings.TrimSpace(rest)
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				return nil, bad()
			}
			terms = append(terms, rest[1:end+1])
			rest = rest[end+2:]
			continue
		}
		word, after, _ := strings.Cut(rest, " ")
		if strings.ContainsAny(word, `{}[]"`) {
			return nil, bad()
		}
		terms = append(terms, word)
		rest = after
	}
	return func(msg string) bool {
		for _, t := range terms {
			if !strings.Contains(msg, t) {
				return false
			}
		}
		return true
	}, nil
}
