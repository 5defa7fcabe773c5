package cloudwatch

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spotmax/spotmax/pkg/sim/awsproto"
)

// Region is what CloudWatch needs of the simulated region: its lock (which guards the service's
// state as well), the due state changes every call runs first, the simulated time and the
// account in ARNs.
type Region interface {
	sync.Locker
	RunDue()
	Now() time.Time
	AccountID() string
}

// Service is the CloudWatch of one simulated region: metrics with their datapoints, and
// dashboards.
type Service struct {
	region     Region
	metrics    map[string]*cwMetric // by cwKey
	dashboards map[string]string    // dashboard bodies by name
}

// New returns the CloudWatch of region, without metrics or dashboards.
func New(region Region) *Service {
	return &Service{region: region, metrics: map[string]*cwMetric{}, dashboards: map[string]string{}}
}

// Spec is how the region's mux reaches the service: signing name monitoring, over rpc-v2-cbor,
// AWS JSON 1.0 and the query protocol.
func (svc *Service) Spec() *awsproto.Service {
	return &awsproto.Service{
		Name:          "monitoring",
		XMLNS:         "http://monitoring.amazonaws.com/doc/2010-08-01/",
		QueryVersions: []string{"2010-08-01"},
		JSONTargets:   []string{"GraniteServiceVersion20100801"},
		CBORServices:  []string{"GraniteServiceVersion20100801"},
		JSONNamespace: "com.amazonaws.cloudwatch#",
		CBORNamespace: "com.amazonaws.cloudwatch#",
		// The structures that rpc-v2-cbor and JSON errors name; the query codes travel in the
		// x-amzn-query-error header and in query-protocol responses.
		ErrorShapes: map[string]string{
			"InvalidParameterValue":       "InvalidParameterValueException",
			"InvalidParameterCombination": "InvalidParameterCombinationException",
			"MissingParameter":            "MissingRequiredParameterException",
			"InvalidNextToken":            "InvalidNextToken",
			"InternalServiceError":        "InternalServiceFault",
			"InvalidFormat":               "InvalidFormatFault",
			"LimitExceeded":               "LimitExceededFault",
			"ResourceNotFound":            "ResourceNotFound",
			"ValidationError":             "ValidationException",
			"InvalidParameterInput":       "DashboardInvalidInputError",
		},
		Handle: svc.serve,
	}
}

// CloudWatch limits (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_limits.html).
const (
	cwMaxMetricData       = 1000
	cwMaxDimensions       = 30
	cwMaxValues           = 150
	cwMaxQueries          = 500
	cwListMetricsPage     = 500
	cwMaxDatapoints       = 100800 // GetMetricData's default MaxDatapoints
	cwMaxStatsDatapoints  = 1440   // GetMetricStatistics
	cwFutureLimit         = 2 * time.Hour
	cwPastLimit           = 14 * 24 * time.Hour
	cwListMetricsInactive = 14 * 24 * time.Hour // ListMetrics omits metrics without data for two weeks
)

// cwUnits are CloudWatch's StandardUnit values.
var cwUnits = map[string]bool{}

func init() {
	for _, u := range strings.Fields(`Seconds Microseconds Milliseconds Bytes Kilobytes Megabytes Gigabytes
		Terabytes Bits Kilobits Megabits Gigabits Terabits Percent Count Bytes/Second Kilobytes/Second
		Megabytes/Second Gigabytes/Second Terabytes/Second Bits/Second Kilobits/Second Megabits/Second
		Gigabits/Second Terabits/Second Count/Second None`) {
		cwUnits[u] = true
	}
}

// cwMetric is one metric: a namespace, a name and a set of dimensions.
type cwMetric struct {
	namespace string
	name      string
	dims      []cwDim // sorted by name
	points    []cwPoint
	sorted    bool
	lastPut   time.Time // when data was last put, for ListMetrics' RecentlyActive
}

type cwDim struct{ Name, Value string }

// cwPoint is what one MetricDatum contributed: a statistic set.
type cwPoint struct {
	t                        time.Time
	unit                     string
	count, sum, minimum, max float64
}

func cwKey(namespace, name string, dims []cwDim) string {
	var b strings.Builder
	b.WriteString(namespace)
	b.WriteByte(0)
	b.WriteString(name)
	for _, d := range dims {
		b.WriteByte(0)
		b.WriteString(d.Name)
		b.WriteByte(1)
		b.WriteString(d.Value)
	}
	return b.String()
}

func (m *cwMetric) sortPoints() {
	if !m.sorted {
		sort.SliceStable(m.points, func(i, j int) bool { return m.points[i].t.Before(m.points[j].t) })
		m.sorted = true
	}
}

// Datum is one datapoint that PutMetricData stored, as a statistic set.
type Datum struct {
	Namespace   string
	MetricName  string
	Dimensions  map[string]string
	Timestamp   time.Time
	Unit        string
	SampleCount float64
	Sum         float64
	Minimum     float64
	Maximum     float64
}

// Data returns copies of the datapoints stored in a namespace ("" for every namespace),
// ordered by namespace, metric name, dimensions and timestamp.
func (svc *Service) Data(namespace string) []Datum {
	svc.region.Lock()
	defer svc.region.Unlock()
	st := svc
	keys := make([]string, 0, len(st.metrics))
	for k, m := range st.metrics {
		if namespace == "" || m.namespace == namespace {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var out []Datum
	for _, k := range keys {
		m := st.metrics[k]
		m.sortPoints()
		for _, p := range m.points {
			d := Datum{Namespace: m.namespace, MetricName: m.name, Dimensions: map[string]string{},
				Timestamp: p.t, Unit: p.unit, SampleCount: p.count, Sum: p.sum, Minimum: p.minimum, Maximum: p.max}
			for _, dim := range m.dims {
				d.Dimensions[dim.Name] = dim.Value
			}
			out = append(out, d)
		}
	}
	return out
}

var cwActions = map[string]func(svc *Service, in awsproto.Document) (awsproto.Document, *awsproto.APIError){
	"PutMetricData":       (*Service).cwPutMetricData,
	"GetMetricData":       (*Service).cwGetMetricData,
	"GetMetricStatistics": (*Service).cwGetMetricStatistics,
	"ListMetrics":         (*Service).cwListMetrics,
	"PutDashboard":        (*Service).cwPutDashboard,
	"GetDashboard":        (*Service).cwGetDashboard,
}

func (svc *Service) serve(c *awsproto.Call) {
	h, ok := cwActions[c.Action]
	if !ok {
		c.Fail(awsproto.NotServed(c))
		return
	}
	in, err := awsproto.DecodeDocument(c)
	if err != nil {
		c.Fail(err)
		return
	}
	var out awsproto.Document
	svc.region.Lock()
	svc.region.RunDue()
	out, err = h(svc, in)
	svc.region.Unlock()
	if err != nil {
		c.Fail(err)
		return
	}
	c.WriteDocument(out)
}

func cwMissing(name string) *awsproto.APIError {
	return awsproto.Errorf(awsproto.CodeMissingParameter, "The parameter %s is required.", name)
}

// cwDims reads a list of Dimension structures.
func cwDims(items []any, prefix string, max int) ([]cwDim, *awsproto.APIError) {
	if len(items) > max {
		return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The collection %s must not have a size greater than %d.", prefix, max)
	}
	dims := make([]cwDim, 0, len(items))
	seen := map[string]bool{}
	for i, it := range items {
		t := awsproto.DocMap(it)
		name, value := awsproto.DocStr(t, "Name"), awsproto.DocStr(t, "Value")
		p := fmt.Sprintf("%s.member.%d", prefix, i+1)
		switch {
		case name == "":
			return nil, cwMissing(p + ".Name")
		case value == "":
			return nil, cwMissing(p + ".Value")
		case len(name) > 255:
			return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The parameter %s.Name must be shorter than 256 characters.", p)
		case len(value) > 1024:
			return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The parameter %s.Value must be shorter than 1025 characters.", p)
		case seen[name]:
			return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "No metric may have duplicate dimension names: %s is given twice in %s.", name, prefix)
		}
		seen[name] = true
		dims = append(dims, cwDim{name, value})
	}
	sort.Slice(dims, func(i, j int) bool { return dims[i].Name < dims[j].Name })
	return dims, nil
}

func cwCheckValue(v float64, name string) *awsproto.APIError {
	if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > math.Pow(2, 360) || (v != 0 && math.Abs(v) < math.Pow(2, -360)) {
		return awsproto.Errorf(awsproto.CodeInvalidParameter, "The value %v for parameter %s is invalid.", v, name)
	}
	return nil
}

func (svc *Service) cwPutMetricData(in awsproto.Document) (awsproto.Document, *awsproto.APIError) {
	ns := awsproto.DocStr(in, "Namespace")
	if ns == "" {
		return nil, cwMissing("Namespace")
	}
	if strings.HasPrefix(ns, "AWS/") {
		return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The value %s for parameter Namespace is invalid.", ns)
	}
	if len(ns) > 255 || strings.ContainsFunc(ns, func(c rune) bool { return c < 0x20 || c > 0x7e }) {
		return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The value %s for parameter Namespace is invalid.", ns)
	}
	if awsproto.DocHas(in, "EntityMetricData") && len(awsproto.DocList(in, "EntityMetricData")) > 0 {
		return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The simulated region does not support EntityMetricData.")
	}
	data := awsproto.DocList(in, "MetricData")
	if len(data) == 0 {
		return nil, cwMissing("MetricData")
	}
	if len(data) > cwMaxMetricData {
		return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The collection MetricData must not have a size greater than %d.", cwMaxMetricData)
	}
	now := svc.region.Now()
	type put struct {
		key  string
		p    cwPoint
		dims []cwDim
		name string
	}
	puts := make([]put, 0, len(data))
	// Validate everything first: AWS stores nothing from a request it rejects.
	for i, it := range data {
		d := awsproto.DocMap(it)
		pre := fmt.Sprintf("MetricData.member.%d", i+1)
		name := awsproto.DocStr(d, "MetricName")
		if name == "" {
			return nil, cwMissing(pre + ".MetricName")
		}
		if len(name) > 255 {
			return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The parameter %s.MetricName must be shorter than 256 characters.", pre)
		}
		dims, err := cwDims(awsproto.DocList(d, "Dimensions"), pre+".Dimensions", cwMaxDimensions)
		if err != nil {
			return nil, err
		}
		ts, hasTS, err := awsproto.DocTime(d, "Timestamp", pre+".Timestamp")
		if err != nil {
			return nil, err
		}
		if !hasTS {
			ts = now
		}
		if ts.After(now.Add(cwFutureLimit)) {
			return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The parameter %s.Timestamp must specify a time no more than two hours in the future.", pre)
		}
		if ts.Before(now.Add(-cwPastLimit)) {
			return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The parameter %s.Timestamp must specify a time within the past two weeks.", pre)
		}
		unit := awsproto.DocStr(d, "Unit")
		if unit == "" {
			unit = "None"
		}
		if !cwUnits[unit] {
			return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The value %s for parameter %s.Unit is invalid.", unit, pre)
		}
		if sr, ok, err := awsproto.DocInt(d, "StorageResolution", pre+".StorageResolution"); err != nil {
			return nil, err
		} else if ok && sr != 1 && sr != 60 {
			return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The value %d for parameter %s.StorageResolution is invalid. Valid values are 1 and 60.", sr, pre)
		}
		p := cwPoint{t: ts.UTC(), unit: unit}
		value, hasValue, err := awsproto.DocFloat(d, "Value", pre+".Value")
		if err != nil {
			return nil, err
		}
		values, counts := awsproto.DocList(d, "Values"), awsproto.DocList(d, "Counts")
		stats, hasStats := d["StatisticValues"].(awsproto.Document)
		switch {
		case hasValue && hasStats:
			return nil, awsproto.Errorf("InvalidParameterCombination", "The parameters %[1]s.Value and %[1]s.StatisticValues are mutually exclusive and you have specified both.", pre)
		case hasValue && len(values) > 0:
			return nil, awsproto.Errorf("InvalidParameterCombination", "The parameters %[1]s.Value and %[1]s.Values are mutually exclusive and you have specified both.", pre)
		case hasStats && len(values) > 0:
			return nil, awsproto.Errorf("InvalidParameterCombination", "The parameters %[1]s.StatisticValues and %[1]s.Values are mutually exclusive and you have specified both.", pre)
		case hasValue:
			if err := cwCheckValue(value, pre+".Value"); err != nil {
				return nil, err
			}
			p.count, p.sum, p.minimum, p.max = 1, value, value, value
		case hasStats:
			var f [4]float64
			for j, k := range []string{"SampleCount", "Sum", "Minimum", "Maximum"} {
				v, ok, err := awsproto.DocFloat(stats, k, pre+".StatisticValues."+k)
				if err != nil {
					return nil, err
				}
				if !ok {
					return nil, cwMissing(pre + ".StatisticValues." + k)
				}
				if err := cwCheckValue(v, pre+".StatisticValues."+k); err != nil {
					return nil, err
				}
				f[j] = v
			}
			if f[0] <= 0 || f[2] > f[3] {
				return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The parameter %s.StatisticValues is invalid: SampleCount must be positive and Minimum not greater than Maximum.", pre)
			}
			p.count, p.sum, p.minimum, p.max = f[0], f[1], f[2], f[3]
		case len(values) > 0:
			if len(values) > cwMaxValues {
				return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The collection %s.Values must not have a size greater than %d.", pre, cwMaxValues)
			}
			if len(counts) > 0 && len(counts) != len(values) {
				return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The parameters %[1]s.Values and %[1]s.Counts must be of the same size.", pre)
			}
			p.minimum, p.max = math.Inf(1), math.Inf(-1)
			for j := range values {
				v, _, err := awsproto.DocFloat(awsproto.Document{"v": values[j]}, "v", fmt.Sprintf("%s.Values.member.%d", pre, j+1))
				if err != nil {
					return nil, err
				}
				if err := cwCheckValue(v, fmt.Sprintf("%s.Values.member.%d", pre, j+1)); err != nil {
					return nil, err
				}
				n := 1.0
				if len(counts) > 0 {
					if n, _, err = awsproto.DocFloat(awsproto.Document{"v": counts[j]}, "v", fmt.Sprintf("%s.Counts.member.%d", pre, j+1)); err != nil {
						return nil, err
					}
					if n < 0 || math.IsNaN(n) {
						return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The value %v for parameter %s.Counts.member.%d is invalid.", n, pre, j+1)
					}
				}
				p.count += n
				p.sum += v * n
				p.minimum = math.Min(p.minimum, v)
				p.max = math.Max(p.max, v)
			}
			if p.count == 0 {
				continue
			}
		default:
			return nil, awsproto.Errorf("InvalidParameterCombination", "The parameter %[1]s.Value, %[1]s.Values or %[1]s.StatisticValues must be specified.", pre)
		}
		puts = append(puts, put{key: cwKey(ns, name, dims), p: p, dims: dims, name: name})
	}
	st := svc
	for _, pt := range puts {
		m := st.metrics[pt.key]
		if m == nil {
			m = &cwMetric{namespace: ns, name: pt.name, dims: pt.dims, sorted: true}
			st.metrics[pt.key] = m
		}
		if n := len(m.points); n > 0 && pt.p.t.Before(m.points[n-1].t) {
			m.sorted = false
		}
		m.points = append(m.points, pt.p)
		m.lastPut = now
	}
	return awsproto.Document{}, nil
}

// cwStat is one statistic of a bucket of datapoints.
func cwStat(stat string, b cwPoint) float64 {
	switch stat {
	case "Sum":
		return b.sum
	case "Average":
		return b.sum / b.count
	case "Minimum":
		return b.minimum
	case "Maximum":
		return b.max
	default: // SampleCount
		return b.count
	}
}

var cwStats = map[string]bool{"Sum": true, "Average": true, "Minimum": true, "Maximum": true, "SampleCount": true}

func cwCheckPeriod(period int64, name string) *awsproto.APIError {
	if period <= 0 {
		return awsproto.Errorf(awsproto.CodeInvalidParameter, "The parameter %s must be greater than 0.", name)
	}
	switch period {
	case 1, 5, 10, 20, 30:
		return nil
	}
	if period%60 != 0 {
		return awsproto.Errorf(awsproto.CodeInvalidParameter, "The parameter %s must be 1, 5, 10, 20, 30, or any multiple of 60.", name)
	}
	return nil
}

// cwBucket is the statistic set of one period.
type cwBucket struct {
	start time.Time
	agg   cwPoint
}

// buckets aggregates a metric's datapoints in [start, end) into periods aligned to multiples of
// period since the epoch, oldest first; only datapoints with the given unit count if unit is set.
func (m *cwMetric) buckets(start, end time.Time, period time.Duration, unit string) []cwBucket {
	m.sortPoints()
	var out []cwBucket
	for _, p := range m.points {
		if p.t.Before(start) || !p.t.Before(end) || (unit != "" && p.unit != unit) {
			continue
		}
		bs := time.Unix(0, 0).UTC().Add(p.t.Sub(time.Unix(0, 0)).Truncate(period))
		if n := len(out); n > 0 && out[n-1].start.Equal(bs) {
			b := &out[n-1].agg
			b.count += p.count
			b.sum += p.sum
			b.minimum = math.Min(b.minimum, p.minimum)
			b.max = math.Max(b.max, p.max)
			continue
		}
		out = append(out, cwBucket{start: bs, agg: p})
	}
	return out
}

// findMetric returns the metric identified by namespace, name and exactly these dimensions.
func (svc *Service) findMetric(ns, name string, dims []cwDim) *cwMetric {
	return svc.metrics[cwKey(ns, name, dims)]
}

// cwSeries is one time series of a GetMetricData result, oldest first.
type cwSeries struct {
	ts   []time.Time
	vals []float64
}

var cwIDPattern = awsproto.LazyRegexp(`^[a-z][a-zA-Z0-9_]*$`)

// cwExpr matches the metric math the simulated region evaluates: SUM, AVG, MIN or MAX of a list
// of query ids or of METRICS().
var cwExpr = awsproto.LazyRegexp(`^\s*(SUM|AVG|MIN|MAX)\s*\(\s*(?:\[([a-zA-Z0-9_,\s]*)\]|METRICS\(\s*\))\s*\)\s*$`)

// cwTimeRange reads a query's required StartTime and EndTime, the first before the second.
func cwTimeRange(in awsproto.Document) (start, end time.Time, _ *awsproto.APIError) {
	start, ok, err := awsproto.DocTime(in, "StartTime", "StartTime")
	if err != nil {
		return start, end, err
	}
	if !ok {
		return start, end, cwMissing("StartTime")
	}
	end, ok, err = awsproto.DocTime(in, "EndTime", "EndTime")
	if err != nil {
		return start, end, err
	}
	if !ok {
		return start, end, cwMissing("EndTime")
	}
	if !start.Before(end) {
		return start, end, awsproto.Errorf(awsproto.CodeInvalidParameter, "The parameter StartTime must be less than the parameter EndTime.")
	}
	return start, end, nil
}

func (svc *Service) cwGetMetricData(in awsproto.Document) (awsproto.Document, *awsproto.APIError) {
	start, end, err := cwTimeRange(in)
	if err != nil {
		return nil, err
	}
	scanBy := awsproto.DocStr(in, "ScanBy")
	if scanBy == "" {
		scanBy = "TimestampDescending"
	}
	if scanBy != "TimestampDescending" && scanBy != "TimestampAscending" {
		return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The value %s for parameter ScanBy is invalid.", scanBy)
	}
	maxPoints, ok, err := awsproto.DocInt(in, "MaxDatapoints", "MaxDatapoints")
	if err != nil {
		return nil, err
	}
	if !ok || maxPoints <= 0 {
		maxPoints = cwMaxDatapoints
	}
	queries := awsproto.DocList(in, "MetricDataQueries")
	if len(queries) == 0 {
		return nil, cwMissing("MetricDataQueries")
	}
	if len(queries) > cwMaxQueries {
		return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The collection MetricDataQueries must not have a size greater than %d.", cwMaxQueries)
	}
	type query struct {
		id, label, expr string
		ret             bool
		series          *cwSeries
	}
	qs := make([]*query, len(queries))
	byID := map[string]*query{}
	st := svc
	// Metric queries first, then expressions, which refer to them.
	for i, it := range queries {
		t := awsproto.DocMap(it)
		pre := fmt.Sprintf("MetricDataQueries.member.%d", i+1)
		q := &query{id: awsproto.DocStr(t, "Id"), label: awsproto.DocStr(t, "Label"), expr: awsproto.DocStr(t, "Expression"), ret: true}
		qs[i] = q
		if q.id == "" {
			return nil, cwMissing(pre + ".Id")
		}
		if !cwIDPattern().MatchString(q.id) || len(q.id) > 255 {
			return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The value %s for parameter %s.Id is invalid: it must start with a lowercase letter and contain only letters, digits and underscores.", q.id, pre)
		}
		if byID[q.id] != nil {
			return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The value %s for parameter %s.Id is not unique.", q.id, pre)
		}
		byID[q.id] = q
		if b, ok, err := awsproto.DocBool(t, "ReturnData", pre+".ReturnData"); err != nil {
			return nil, err
		} else if ok {
			q.ret = b
		}
		ms, hasStat := t["MetricStat"].(awsproto.Document)
		if hasStat == (q.expr != "") {
			return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "Exactly one element of the %[1]s.MetricStat and %[1]s.Expression parameters must be specified.", pre)
		}
		if !hasStat {
			continue
		}
		metric := awsproto.DocMap(ms["Metric"])
		ns, name := awsproto.DocStr(metric, "Namespace"), awsproto.DocStr(metric, "MetricName")
		if ns == "" {
			return nil, cwMissing(pre + ".MetricStat.Metric.Namespace")
		}
		if name == "" {
			return nil, cwMissing(pre + ".MetricStat.Metric.MetricName")
		}
		dims, err := cwDims(awsproto.DocList(metric, "Dimensions"), pre+".MetricStat.Metric.Dimensions", cwMaxDimensions)
		if err != nil {
			return nil, err
		}
		period, ok, err := awsproto.DocInt(ms, "Period", pre+".MetricStat.Period")
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, cwMissing(pre + ".MetricStat.Period")
		}
		if err := cwCheckPeriod(period, pre+".MetricStat.Period"); err != nil {
			return nil, err
		}
		stat := awsproto.DocStr(ms, "Stat")
		if stat == "" {
			return nil, cwMissing(pre + ".MetricStat.Stat")
		}
		if !cwStats[stat] {
			return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The value %s for parameter %s.MetricStat.Stat is invalid: the simulated region computes Sum, Average, Minimum, Maximum and SampleCount.", stat, pre)
		}
		unit := awsproto.DocStr(ms, "Unit")
		if unit != "" && !cwUnits[unit] {
			return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The value %s for parameter %s.MetricStat.Unit is invalid.", unit, pre)
		}
		if q.label == "" {
			q.label = name
		}
		q.series = &cwSeries{}
		if m := st.findMetric(ns, name, dims); m != nil {
			for _, b := range m.buckets(start, end, time.Duration(period)*time.Second, unit) {
				q.series.ts = append(q.series.ts, b.start)
				q.series.vals = append(q.series.vals, cwStat(stat, b.agg))
			}
		}
	}
	for i, q := range qs {
		if q.expr == "" {
			continue
		}
		pre := fmt.Sprintf("MetricDataQueries.member.%d", i+1)
		mt := cwExpr().FindStringSubmatch(q.expr)
		if mt == nil {
			return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The value %s for parameter %s.Expression is not supported: the simulated region evaluates only SUM, AVG, MIN and MAX of [ids] or of METRICS().", q.expr, pre)
		}
		var refs []*cwSeries
		if strings.Contains(mt[0], "METRICS") {
			for _, o := range qs {
				if o.expr == "" {
					refs = append(refs, o.series)
				}
			}
		} else {
			for _, id := range strings.Split(mt[2], ",") {
				id = strings.TrimSpace(id)
				o := byID[id]
				if o == nil || o.series == nil {
					return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The value %s for parameter %s.Expression refers to %q, which is not the id of a MetricStat query.", q.expr, pre, id)
				}
				refs = append(refs, o.series)
			}
		}
		q.series = cwCombine(mt[1], refs)
		if q.label == "" {
			q.label = q.id
		}
	}
	if !cwAny(qs, func(q *query) bool { return q.ret }) {
		return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "At least one MetricDataQueries element must have ReturnData set to true.")
	}
	// One page holds up to maxPoints datapoints of the returned series, in query order; the
	// token is the offset into that sequence.
	total := 0
	for _, q := range qs {
		if q.ret {
			total += len(q.series.ts)
		}
	}
	from, to, next, perr := awsproto.Page(total, maxPoints, awsproto.DocStr(in, "NextToken"), cwMaxDatapoints, 0)
	if perr != nil {
		return nil, perr
	}
	results := []any{}
	off := 0
	for _, q := range qs {
		if !q.ret {
			continue
		}
		n := len(q.series.ts)
		lo, hi := cwClamp(from-off, to-off, n)
		off += n
		ts := make([]any, 0, hi-lo)
		vals := make([]any, 0, hi-lo)
		for j := lo; j < hi; j++ {
			k := j
			if scanBy == "TimestampDescending" {
				k = n - 1 - j
			}
			ts = append(ts, q.series.ts[k])
			vals = append(vals, q.series.vals[k])
		}
		status := "Complete"
		if hi < n {
			status = "PartialData"
		}
		results = append(results, awsproto.Document{"Id": q.id, "Label": q.label, "Timestamps": ts, "Values": vals,
			"StatusCode": status, "Messages": []any{}})
	}
	out := awsproto.Document{"MetricDataResults": results, "Messages": []any{}}
	if next != "" {
		out["NextToken"] = next
	}
	return out, nil
}

func cwClamp(lo, hi, n int) (int, int) {
	lo = max(0, min(lo, n))
	hi = max(lo, min(hi, n))
	return lo, hi
}

func cwAny[T any](s []T, f func(T) bool) bool {
	for _, v := range s {
		if f(v) {
			return true
		}
	}
	return false
}

// cwCombine applies a metric-math function across series at each timestamp that any of them has.
func cwCombine(fn string, series []*cwSeries) *cwSeries {
	type acc struct {
		sum, min, max float64
		n             int
	}
	byT := map[time.Time]*acc{}
	for _, s := range series {
		for i, t := range s.ts {
			a := byT[t]
			if a == nil {
				a = &acc{min: math.Inf(1), max: math.Inf(-1)}
				byT[t] = a
			}
			v := s.vals[i]
			a.sum += v
			a.min = math.Min(a.min, v)
			a.max = math.Max(a.max, v)
			a.n++
		}
	}
	out := &cwSeries{}
	for t := range byT {
		out.ts = append(out.ts, t)
	}
	sort.Slice(out.ts, func(i, j int) bool { return out.ts[i].Before(out.ts[j]) })
	for _, t := range out.ts {
		a := byT[t]
		switch fn {
		case "SUM":
			out.vals = append(out.vals, a.sum)
		case "AVG":
			out.vals = append(out.vals, a.sum/float64(a.n))
		case "MIN":
			out.vals = append(out.vals, a.min)
		default:
			out.vals = append(out.vals, a.max)
		}
	}
	return out
}

func (svc *Service) cwGetMetricStatistics(in awsproto.Document) (awsproto.Document, *awsproto.APIError) {
	ns, name := awsproto.DocStr(in, "Namespace"), awsproto.DocStr(in, "MetricName")
	if ns == "" {
		return nil, cwMissing("Namespace")
	}
	if name == "" {
		return nil, cwMissing("MetricName")
	}
	dims, err := cwDims(awsproto.DocList(in, "Dimensions"), "Dimensions", cwMaxDimensions)
	if err != nil {
		return nil, err
	}
	start, end, err := cwTimeRange(in)
	if err != nil {
		return nil, err
	}
	period, ok, err := awsproto.DocInt(in, "Period", "Period")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, cwMissing("Period")
	}
	if err := cwCheckPeriod(period, "Period"); err != nil {
		return nil, err
	}
	var stats []string
	for _, s := range awsproto.DocList(in, "Statistics") {
		stats = append(stats, fmt.Sprint(s))
	}
	if len(awsproto.DocList(in, "ExtendedStatistics")) > 0 {
		if len(stats) > 0 {
			return nil, awsproto.Errorf("InvalidParameterCombination", "Must specify either Statistics or ExtendedStatistics, but not both.")
		}
		return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The simulated region does not compute ExtendedStatistics.")
	}
	if len(stats) == 0 {
		return nil, awsproto.Errorf("InvalidParameterCombination", "Must specify either Statistics or ExtendedStatistics, but not both.")
	}
	if len(stats) > 5 {
		return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The collection Statistics must not have a size greater than 5.")
	}
	for i, s := range stats {
		if !cwStats[s] {
			return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The value %s for parameter Statistics.member.%d is invalid.", s, i+1)
		}
	}
	unit := awsproto.DocStr(in, "Unit")
	if unit != "" && !cwUnits[unit] {
		return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The value %s for parameter Unit is invalid.", unit)
	}
	if n := int64(end.Sub(start)/time.Second+time.Duration(period)-1) / period; n > cwMaxStatsDatapoints {
		return nil, awsproto.Errorf("InvalidParameterCombination", "You have requested up to %d datapoints, which exceeds the limit of %d. You may reduce the datapoints requested by increasing Period, or decreasing the time range.", n, cwMaxStatsDatapoints)
	}
	points := []any{}
	if m := svc.findMetric(ns, name, dims); m != nil {
		for _, b := range m.buckets(start, end, time.Duration(period)*time.Second, unit) {
			dp := awsproto.Document{"Timestamp": b.start, "Unit": b.agg.unit}
			for _, s := range stats {
				dp[s] = cwStat(s, b.agg)
			}
			points = append(points, dp)
		}
	}
	return awsproto.Document{"Label": name, "Datapoints": points}, nil
}

func (svc *Service) cwListMetrics(in awsproto.Document) (awsproto.Document, *awsproto.APIError) {
	ns, name := awsproto.DocStr(in, "Namespace"), awsproto.DocStr(in, "MetricName")
	filters := awsproto.DocList(in, "Dimensions")
	if len(filters) > 10 {
		return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The collection Dimensions must not have a size greater than 10.")
	}
	type filter struct{ name, value string }
	var fs []filter
	for i, f := range filters {
		t := awsproto.DocMap(f)
		if awsproto.DocStr(t, "Name") == "" {
			return nil, cwMissing(fmt.Sprintf("Dimensions.member.%d.Name", i+1))
		}
		fs = append(fs, filter{awsproto.DocStr(t, "Name"), awsproto.DocStr(t, "Value")})
	}
	recent := awsproto.DocStr(in, "RecentlyActive")
	if recent != "" && recent != "PT3H" {
		return nil, awsproto.Errorf(awsproto.CodeInvalidParameter, "The value %s for parameter RecentlyActive is invalid.", recent)
	}
	now := svc.region.Now()
	st := svc
	keys := make([]string, 0, len(st.metrics))
next:
	for k, m := range st.metrics {
		if (ns != "" && m.namespace != ns) || (name != "" && m.name != name) {
			continue
		}
		window := cwListMetricsInactive
		if recent != "" {
			window = 3 * time.Hour
		}
		if m.lastPut.Before(now.Add(-window)) {
			continue
		}
		for _, f := range fs {
			if !cwAny(m.dims, func(d cwDim) bool { return d.Name == f.name && (f.value == "" || d.Value == f.value) }) {
				continue next
			}
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	from, to, nextToken, err := awsproto.Page(len(keys), cwListMetricsPage, awsproto.DocStr(in, "NextToken"), cwListMetricsPage, cwListMetricsPage)
	if err != nil {
		return nil, err
	}
	metrics := make([]any, 0, to-from)
	for _, k := range keys[from:to] {
		m := st.metrics[k]
		dims := make([]any, 0, len(m.dims))
		for _, d := range m.dims {
			dims = append(dims, awsproto.Document{"Name": d.Name, "Value": d.Value})
		}
		metrics = append(metrics, awsproto.Document{"Namespace": m.namespace, "MetricName": m.name, "Dimensions": dims})
	}
	out := awsproto.Document{"Metrics": metrics}
	if nextToken != "" {
		out["NextToken"] = nextToken
	}
	return out, nil
}
