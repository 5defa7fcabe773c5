package cloudwatch_test

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/schemas"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"

	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// cwStart is a period boundary, so that test datapoints fall into predictable buckets.
var cwStart = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func startCW(t *testing.T) (*simtest.Env, *cloudwatch.Client) {
	t.Helper()
	env := simtest.Start(t, sim.Options{Start: cwStart.Add(10 * time.Minute)})
	return env, cloudwatch.NewFromConfig(env.Config)
}

func dim(name, value string) types.Dimension {
	return types.Dimension{Name: aws.String(name), Value: aws.String(value)}
}

func TestCloudWatchPutAndGetMetricData(t *testing.T) {
	env, client := startCW(t)
	ctx := context.Background()
	_, err := client.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{
		Namespace: aws.String("spotmax"),
		MetricData: []types.MetricDatum{
			{MetricName: aws.String("Replacements"), Dimensions: []types.Dimension{dim("Group", "web")},
				Timestamp: aws.Time(cwStart.Add(10 * time.Second)), Value: aws.Float64(1), Unit: types.StandardUnitCount},
			{MetricName: aws.String("Replacements"), Dimensions: []types.Dimension{dim("Group", "web")},
				Timestamp: aws.Time(cwStart.Add(20 * time.Second)), Value: aws.Float64(2), Unit: types.StandardUnitCount},
			// Second period: three samples as Values/Counts (4 + 4 + 1) and one statistic set.
			{MetricName: aws.String("Replacements"), Dimensions: []types.Dimension{dim("Group", "web")},
				Timestamp: aws.Time(cwStart.Add(70 * time.Second)), Values: []float64{4, 1}, Counts: []float64{2, 1},
				Unit: types.StandardUnitCount},
			{MetricName: aws.String("Replacements"), Dimensions: []types.Dimension{dim("Group", "web")},
				Timestamp: aws.Time(cwStart.Add(80 * time.Second)), Unit: types.StandardUnitCount,
				StatisticValues: &types.StatisticSet{SampleCount: aws.Float64(2), Sum: aws.Float64(10), Minimum: aws.Float64(3), Maximum: aws.Float64(7)}},
		},
	})
	if err != nil {
		t.Fatalf("PutMetricData: %v", err)
	}

	stat := func(id, s string) types.MetricDataQuery {
		return types.MetricDataQuery{Id: aws.String(id), MetricStat: &types.MetricStat{
			Metric: &types.Metric{Namespace: aws.String("spotmax"), MetricName: aws.String("Replacements"),
				Dimensions: []types.Dimension{dim("Group", "web")}},
			Period: aws.Int32(60), Stat: aws.String(s)}}
	}
	out, err := client.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(cwStart), EndTime: aws.Time(cwStart.Add(2 * time.Minute)),
		MetricDataQueries: []types.MetricDataQuery{stat("sum", "Sum"), stat("n", "SampleCount"), stat("hi", "Maximum"),
			stat("avg", "Average"), {Id: aws.String("total"), Expression: aws.String("SUM([sum, n])")}},
	})
	if err != nil {
		t.Fatalf("GetMetricData: %v", err)
	}
	want := map[string][]float64{
		"sum":   {19, 3}, // newest period first
		"n":     {5, 2},
		"hi":    {7, 2},
		"avg":   {3.8, 1.5},
		"total": {24, 5},
	}
	wantTS := []time.Time{cwStart.Add(time.Minute), cwStart}
	if len(out.MetricDataResults) != len(want) {
		t.Fatalf("got %d results, want %d", len(out.MetricDataResults), len(want))
	}
	for _, res := range out.MetricDataResults {
		id := aws.ToString(res.Id)
		if fmt.Sprint(res.Values) != fmt.Sprint(want[id]) {
			t.Errorf("%s: values = %v, want %v", id, res.Values, want[id])
		}
		if len(res.Timestamps) != 2 || !res.Timestamps[0].Equal(wantTS[0]) || !res.Timestamps[1].Equal(wantTS[1]) {
			t.Errorf("%s: timestamps = %v, want %v", id, res.Timestamps, wantTS)
		}
		if res.StatusCode != types.StatusCodeComplete {
			t.Errorf("%s: status = %s, want Complete", id, res.StatusCode)
		}
	}

	// Ascending order, a default timestamp (now) and pagination by MaxDatapoints.
	_, err = client.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("spotmax"),
		MetricData: []types.MetricDatum{{MetricName: aws.String("Replacements"), Dimensions: []types.Dimension{dim("Group", "web")}, Value: aws.Float64(100)}}})
	if err != nil {
		t.Fatalf("PutMetricData without timestamp: %v", err)
	}
	var pages [][]float64
	p := cloudwatch.NewGetMetricDataPaginator(client, &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(cwStart), EndTime: aws.Time(env.Region().Clock().Now().Add(time.Minute)),
		ScanBy: types.ScanByTimestampAscending, MaxDatapoints: aws.Int32(2),
		MetricDataQueries: []types.MetricDataQuery{stat("sum", "Sum")},
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("GetMetricData page: %v", err)
		}
		pages = append(pages, page.MetricDataResults[0].Values)
	}
	if got := fmt.Sprint(pages); got != "[[3 19] [100]]" {
		t.Errorf("ascending pages = %s, want [[3 19] [100]]", got)
	}
}

func TestCloudWatchDimensionsAndListMetrics(t *testing.T) {
	env, client := startCW(t)
	ctx := context.Background()
	put := func(v float64, dims ...types.Dimension) {
		t.Helper()
		_, err := client.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("spotmax"),
			MetricData: []types.MetricDatum{{MetricName: aws.String("Interruptions"), Dimensions: dims,
				Timestamp: aws.Time(cwStart.Add(5 * time.Second)), Value: aws.Float64(v)}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	put(1, dim("Group", "a"))
	put(10, dim("Group", "b"))
	put(100, dim("AZ", "us-east-1a"), dim("Group", "a"))
	put(1000) // no dimensions

	out, err := client.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(cwStart), EndTime: aws.Time(cwStart.Add(time.Minute)),
		MetricDataQueries: []types.MetricDataQuery{{Id: aws.String("a"), MetricStat: &types.MetricStat{
			Metric: &types.Metric{Namespace: aws.String("spotmax"), MetricName: aws.String("Interruptions"),
				Dimensions: []types.Dimension{dim("Group", "a"), dim("AZ", "us-east-1a")}},
			Period: aws.Int32(60), Stat: aws.String("Sum")}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(out.MetricDataResults[0].Values); got != "[100]" {
		t.Errorf("Group=a,AZ=us-east-1a values = %s, want [100] (exact dimension match)", got)
	}

	list := func(in *cloudwatch.ListMetricsInput) []string {
		t.Helper()
		out, err := client.ListMetrics(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range out.Metrics {
			var ds []string
			for _, d := range m.Dimensions {
				ds = append(ds, *d.Name+"="+*d.Value)
			}
			got = append(got, *m.MetricName+"{"+strings.Join(ds, ",")+"}")
		}
		return got
	}
	got := list(&cloudwatch.ListMetricsInput{Namespace: aws.String("spotmax"),
		Dimensions: []types.DimensionFilter{{Name: aws.String("Group"), Value: aws.String("a")}}})
	if fmt.Sprint(got) != "[Interruptions{AZ=us-east-1a,Group=a} Interruptions{Group=a}]" {
		t.Errorf("ListMetrics Group=a = %v", got)
	}
	if got := list(&cloudwatch.ListMetricsInput{Dimensions: []types.DimensionFilter{{Name: aws.String("AZ")}}}); len(got) != 1 {
		t.Errorf("ListMetrics AZ = %v, want one metric", got)
	}
	if got := list(&cloudwatch.ListMetricsInput{Namespace: aws.String("other")}); len(got) != 0 {
		t.Errorf("ListMetrics other namespace = %v, want none", got)
	}
	env.Region().Advance(4 * time.Hour)
	if got := list(&cloudwatch.ListMetricsInput{RecentlyActive: types.RecentlyActivePt3h}); len(got) != 0 {
		t.Errorf("ListMetrics RecentlyActive after 4h = %v, want none", got)
	}
	if got := list(&cloudwatch.ListMetricsInput{}); len(got) != 4 {
		t.Errorf("ListMetrics = %v, want 4 metrics", got)
	}

	data := env.Region().MetricData("spotmax")
	if len(data) != 4 || len(data[0].Dimensions) != 0 || data[1].Dimensions["AZ"] != "us-east-1a" || data[1].Sum != 100 || data[1].Unit != "None" {
		t.Errorf("MetricData = %+v", data)
	}
}

func TestCloudWatchListMetricsPagination(t *testing.T) {
	_, client := startCW(t)
	ctx := context.Background()
	for batch := 0; batch < 2; batch++ {
		var data []types.MetricDatum
		for i := 0; i < 600; i++ {
			data = append(data, types.MetricDatum{MetricName: aws.String("M"),
				Dimensions: []types.Dimension{dim("Instance", fmt.Sprintf("i-%04d", batch*600+i))}, Value: aws.Float64(1)})
		}
		if _, err := client.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("spotmax"), MetricData: data}); err != nil {
			t.Fatal(err)
		}
	}
	var sizes []int
	seen := map[string]bool{}
	p := cloudwatch.NewListMetricsPaginator(client, &cloudwatch.ListMetricsInput{Namespace: aws.String("spotmax")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(page.Metrics))
		for _, m := range page.Metrics {
			seen[*m.Dimensions[0].Value] = true
		}
	}
	if fmt.Sprint(sizes) != "[500 500 200]" || len(seen) != 1200 {
		t.Errorf("page sizes = %v, distinct metrics = %d; want [500 500 200] and 1200", sizes, len(seen))
	}

	_, err := client.ListMetrics(ctx, &cloudwatch.ListMetricsInput{NextToken: aws.String("garbage!")})
	var bad *types.InvalidNextToken
	if !errors.As(err, &bad) {
		t.Errorf("bad token: err = %v, want InvalidNextToken", err)
	}
}

func TestCloudWatchValidation(t *testing.T) {
	env, client := startCW(t)
	ctx := context.Background()
	datum := types.MetricDatum{MetricName: aws.String("M"), Value: aws.Float64(1)}
	_, err := client.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("AWS/EC2"), MetricData: []types.MetricDatum{datum}})
	var invalid *types.InvalidParameterValueException
	if !errors.As(err, &invalid) {
		t.Fatalf("AWS/ namespace: err = %v, want InvalidParameterValueException", err)
	}
	if invalid.ErrorCode() != "InvalidParameterValue" || !strings.Contains(invalid.ErrorMessage(), "AWS/EC2") {
		t.Errorf("code %q message %q, want InvalidParameterValue about AWS/EC2", invalid.ErrorCode(), invalid.ErrorMessage())
	}

	tooMany := make([]types.MetricDatum, 1001)
	for i := range tooMany {
		tooMany[i] = datum
	}
	var dims []types.Dimension
	for i := 0; i < 31; i++ {
		dims = append(dims, dim(fmt.Sprintf("d%d", i), "v"))
	}
	for name, in := range map[string]*cloudwatch.PutMetricDataInput{
		"1001 datums":        {Namespace: aws.String("x"), MetricData: tooMany},
		"31 dimensions":      {Namespace: aws.String("x"), MetricData: []types.MetricDatum{{MetricName: aws.String("M"), Value: aws.Float64(1), Dimensions: dims}}},
		"future timestamp":   {Namespace: aws.String("x"), MetricData: []types.MetricDatum{{MetricName: aws.String("M"), Value: aws.Float64(1), Timestamp: aws.Time(cwStart.Add(3 * time.Hour))}}},
		"counts size":        {Namespace: aws.String("x"), MetricData: []types.MetricDatum{{MetricName: aws.String("M"), Values: []float64{1, 2}, Counts: []float64{1}}}},
		"storage resolution": {Namespace: aws.String("x"), MetricData: []types.MetricDatum{{MetricName: aws.String("M"), Value: aws.Float64(1), StorageResolution: aws.Int32(30)}}},
	} {
		_, err := client.PutMetricData(ctx, in)
		if !errors.As(err, &invalid) {
			t.Errorf("%s: err = %v, want InvalidParameterValueException", name, err)
		}
	}
	_, err = client.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("x"),
		MetricData: []types.MetricDatum{{MetricName: aws.String("M"), Value: aws.Float64(1), StatisticValues: &types.StatisticSet{
			SampleCount: aws.Float64(1), Sum: aws.Float64(1), Minimum: aws.Float64(1), Maximum: aws.Float64(1)}}}})
	var combo *types.InvalidParameterCombinationException
	if !errors.As(err, &combo) {
		t.Errorf("Value with StatisticValues: err = %v, want InvalidParameterCombinationException", err)
	}
	_, err = client.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{StartTime: aws.Time(cwStart), EndTime: aws.Time(cwStart.Add(time.Hour)),
		MetricDataQueries: []types.MetricDataQuery{{Id: aws.String("e"), Expression: aws.String("ANOMALY_DETECTION_BAND(m1)")}}})
	if !errors.As(err, &invalid) {
		t.Errorf("unsupported expression: err = %v, want InvalidParameterValueException", err)
	}
	if n := len(env.Region().MetricData("")); n != 0 {
		t.Errorf("rejected requests stored %d datapoints", n)
	}

	// Throttling travels in the query-error header, which the SDK's retryer reads.
	env.Region().ThrottleNext("monitoring", 1)
	noRetry := cloudwatch.NewFromConfig(env.Config, func(o *cloudwatch.Options) { o.RetryMaxAttempts = 1 })
	_, err = noRetry.ListMetrics(ctx, &cloudwatch.ListMetricsInput{})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "Throttling" {
		t.Errorf("throttled: err = %v, want Throttling", err)
	}
}

// recordingTransport remembers the Content-Encoding of each request.
type recordingTransport struct {
	mu        sync.Mutex
	encodings []string
}

func (rt *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	rt.encodings = append(rt.encodings, req.Header.Get("Content-Encoding"))
	rt.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func TestCloudWatchGzipBody(t *testing.T) {
	env, _ := startCW(t)
	rt := &recordingTransport{}
	cfg := env.Config.Copy()
	cfg.HTTPClient = &http.Client{Transport: rt}
	client := cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) { o.RequestMinCompressSizeBytes = 1024 })
	var data []types.MetricDatum
	for i := 0; i < 200; i++ {
		data = append(data, types.MetricDatum{MetricName: aws.String(fmt.Sprintf("Metric%03d", i)), Value: aws.Float64(float64(i))})
	}
	if _, err := client.PutMetricData(context.Background(), &cloudwatch.PutMetricDataInput{Namespace: aws.String("gz"), MetricData: data}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rt.encodings) != "[gzip]" {
		t.Errorf("request Content-Encoding = %v, want [gzip]", rt.encodings)
	}
	got := env.Region().MetricData("gz")
	if len(got) != 200 || got[199].MetricName != "Metric199" || got[199].Sum != 199 {
		t.Errorf("stored %d datapoints from the gzip body, want 200", len(got))
	}
}

// TestCloudWatchOtherProtocols drives the same actions through the SDK's AWS query and AWS JSON 1.0
// protocols, which older clients and the aws CLI use.
func TestCloudWatchOtherProtocols(t *testing.T) {
	for name, proto := range map[string]func(*cloudwatch.Options){
		"query": func(o *cloudwatch.Options) { o.Protocol = awsquery.New(schemas.GraniteServiceVersion20100801) },
		"json":  func(o *cloudwatch.Options) { o.Protocol = awsjson.New10(schemas.GraniteServiceVersion20100801) },
	} {
		t.Run(name, func(t *testing.T) {
			env, _ := startCW(t)
			client := cloudwatch.NewFromConfig(env.Config, proto)
			ctx := context.Background()
			_, err := client.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("spotmax"),
				MetricData: []types.MetricDatum{
					{MetricName: aws.String("Fallbacks"), Dimensions: []types.Dimension{dim("Group", "web")}, Timestamp: aws.Time(cwStart.Add(time.Second)), Value: aws.Float64(2)},
					{MetricName: aws.String("Fallbacks"), Dimensions: []types.Dimension{dim("Group", "web")}, Timestamp: aws.Time(cwStart.Add(61 * time.Second)), Values: []float64{3, 4}},
				}})
			if err != nil {
				t.Fatalf("PutMetricData: %v", err)
			}
			out, err := client.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{StartTime: aws.Time(cwStart), EndTime: aws.Time(cwStart.Add(2 * time.Minute)),
				MetricDataQueries: []types.MetricDataQuery{{Id: aws.String("m"), MetricStat: &types.MetricStat{
					Metric: &types.Metric{Namespace: aws.String("spotmax"), MetricName: aws.String("Fallbacks"), Dimensions: []types.Dimension{dim("Group", "web")}},
					Period: aws.Int32(60), Stat: aws.String("Sum")}}}})
			if err != nil {
				t.Fatalf("GetMetricData: %v", err)
			}
			if r := out.MetricDataResults[0]; fmt.Sprint(r.Values) != "[7 2]" || len(r.Timestamps) != 2 || !r.Timestamps[0].Equal(cwStart.Add(time.Minute)) {
				t.Errorf("GetMetricData = %v at %v, want [7 2]", r.Values, r.Timestamps)
			}
			stats, err := client.GetMetricStatistics(ctx, &cloudwatch.GetMetricStatisticsInput{Namespace: aws.String("spotmax"), MetricName: aws.String("Fallbacks"),
				Dimensions: []types.Dimension{dim("Group", "web")}, StartTime: aws.Time(cwStart), EndTime: aws.Time(cwStart.Add(2 * time.Minute)),
				Period: aws.Int32(120), Statistics: []types.Statistic{types.StatisticSum, types.StatisticSampleCount, types.StatisticMaximum}})
			if err != nil {
				t.Fatalf("GetMetricStatistics: %v", err)
			}
			if len(stats.Datapoints) != 1 || *stats.Datapoints[0].Sum != 9 || *stats.Datapoints[0].SampleCount != 3 || *stats.Datapoints[0].Maximum != 4 {
				t.Errorf("GetMetricStatistics = %+v, want one datapoint Sum 9, SampleCount 3, Maximum 4", stats.Datapoints)
			}
			list, err := client.ListMetrics(ctx, &cloudwatch.ListMetricsInput{Namespace: aws.String("spotmax")})
			if err != nil {
				t.Fatalf("ListMetrics: %v", err)
			}
			if len(list.Metrics) != 1 || *list.Metrics[0].Dimensions[0].Value != "web" {
				t.Errorf("ListMetrics = %+v", list.Metrics)
			}
			_, err = client.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("AWS/Foo"),
				MetricData: []types.MetricDatum{{MetricName: aws.String("M"), Value: aws.Float64(1)}}})
			var invalid *types.InvalidParameterValueException
			if !errors.As(err, &invalid) {
				t.Errorf("AWS/ namespace: err = %v, want InvalidParameterValueException", err)
			}
		})
	}
}

// TestCloudWatchQueryRaw sends hand-built query-protocol requests, as an old client does, and reads
// the XML itself.
func TestCloudWatchQueryRaw(t *testing.T) {
	env, _ := startCW(t)
	post := func(form url.Values) (int, []byte) {
		t.Helper()
		form.Set("Version", "2010-08-01")
		req, _ := http.NewRequest(http.MethodPost, env.URL(), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDOLD/20260301/us-east-1/monitoring/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	status, body := post(url.Values{
		"Action":                         {"PutMetricData"},
		"Namespace":                      {"legacy"},
		"MetricData.member.1.MetricName": {"Drains"},
		"MetricData.member.1.Dimensions.member.1.Name":  {"Group"},
		"MetricData.member.1.Dimensions.member.1.Value": {"db"},
		"MetricData.member.1.Timestamp":                 {cwStart.Add(30 * time.Second).Format(time.RFC3339)},
		"MetricData.member.1.Value":                     {"4.5"},
		"MetricData.member.1.Unit":                      {"Seconds"},
	})
	if status != http.StatusOK || !strings.Contains(string(body), "<PutMetricDataResponse") {
		t.Fatalf("PutMetricData: %d %s", status, body)
	}

	status, body = post(url.Values{
		"Action": {"GetMetricStatistics"}, "Namespace": {"legacy"}, "MetricName": {"Drains"},
		"Dimensions.member.1.Name": {"Group"}, "Dimensions.member.1.Value": {"db"},
		"StartTime": {cwStart.Format(time.RFC3339)}, "EndTime": {cwStart.Add(time.Hour).Format(time.RFC3339)},
		"Period": {"300"}, "Statistics.member.1": {"Average"}, "Statistics.member.2": {"SampleCount"},
	})
	var stats struct {
		Result struct {
			Label      string `xml:"Label"`
			Datapoints []struct {
				Timestamp   time.Time `xml:"Timestamp"`
				Average     float64   `xml:"Average"`
				SampleCount float64   `xml:"SampleCount"`
				Unit        string    `xml:"Unit"`
			} `xml:"Datapoints>member"`
		} `xml:"GetMetricStatisticsResult"`
		RequestID string `xml:"ResponseMetadata>RequestId"`
	}
	if err := xml.Unmarshal(body, &stats); err != nil || status != http.StatusOK {
		t.Fatalf("GetMetricStatistics: %d %v\n%s", status, err, body)
	}
	if stats.Result.Label != "Drains" || len(stats.Result.Datapoints) != 1 || stats.RequestID == "" {
		t.Fatalf("GetMetricStatistics = %+v\n%s", stats, body)
	}
	if dp := stats.Result.Datapoints[0]; !dp.Timestamp.Equal(cwStart) || dp.Average != 4.5 || dp.SampleCount != 1 || dp.Unit != "Seconds" {
		t.Errorf("datapoint = %+v, want %v avg 4.5 count 1 Seconds", dp, cwStart)
	}

	status, body = post(url.Values{"Action": {"ListMetrics"}, "Dimensions.member.1.Name": {"Group"}})
	var list struct {
		Metrics []struct {
			Namespace  string `xml:"Namespace"`
			MetricName string `xml:"MetricName"`
			Dimensions []struct {
				Name  string `xml:"Name"`
				Value string `xml:"Value"`
			} `xml:"Dimensions>member"`
		} `xml:"ListMetricsResult>Metrics>member"`
	}
	if err := xml.Unmarshal(body, &list); err != nil || status != http.StatusOK {
		t.Fatalf("ListMetrics: %d %v\n%s", status, err, body)
	}
	if len(list.Metrics) != 1 || list.Metrics[0].Namespace != "legacy" || list.Metrics[0].Dimensions[0].Value != "db" {
		t.Errorf("ListMetrics = %+v", list)
	}

	status, body = post(url.Values{"Action": {"PutMetricData"}, "Namespace": {"AWS/EC2"},
		"MetricData.member.1.MetricName": {"M"}, "MetricData.member.1.Value": {"1"}})
	var fail struct {
		Type string `xml:"Error>Type"`
		Code string `xml:"Error>Code"`
	}
	if err := xml.Unmarshal(body, &fail); err != nil || status != http.StatusBadRequest || fail.Code != "InvalidParameterValue" || fail.Type != "Sender" {
		t.Errorf("AWS/ namespace: %d %+v %v\n%s", status, fail, err, body)
	}
}
