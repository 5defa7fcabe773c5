package sim

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startScenario starts a region the way `spotmax sim serve` does: Start with the scenario's
// options, then Apply.
func startScenario(t *testing.T, s *Scenario) *Server {
	t.Helper()
	srv, err := Start(context.Background(), "127.0.0.1:0", s.Options())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	if err := s.Apply(srv.Region()); err != nil {
		t.Fatal(err)
	}
	return srv
}

// settle advances the clock through an Auto Scaling check and the instances' start.
func settle(r *Region) {
	lat := r.Latencies()
	for i := 0; i < 3; i++ {
		r.Advance(lat.ASGCheck + lat.Pending + time.Second)
	}
}

func TestScenarioSamplesLoad(t *testing.T) {
	names := SampleScenarios()
	if len(names) == 0 || names[0] != "demo" {
		t.Fatalf("SampleScenarios() = %v, want demo first", names)
	}
	for _, n := range names {
		s, err := LoadSampleScenario(n)
		if err != nil {
			t.Errorf("sample %s: %v", n, err)
			continue
		}
		srv := startScenario(t, s)
		settle(srv.Region())
		for _, g := range s.Groups {
			want := g.Min
			if g.Desired != nil {
				want = *g.Desired
			}
			got, ok := srv.Region().Group(g.Name)
			if !ok || int32(len(got.Members)) != want {
				t.Errorf("sample %s: group %s has %d members, want %d", n, g.Name, len(got.Members), want)
			}
		}
	}
	if _, err := SampleScenario("nope"); err == nil || !strings.Contains(err.Error(), "demo") {
		t.Errorf("unknown sample: %v", err)
	}
	if b, err := SampleScenario("demo.yaml"); err != nil || len(b) == 0 {
		t.Errorf("SampleScenario(demo.yaml): %v", err)
	}
}

func TestScenarioDemo(t *testing.T) {
	s, err := LoadSampleScenario("demo")
	if err != nil {
		t.Fatal(err)
	}
	o := s.Options()
	lat := FastLatencies()
	lat.InterruptionNotice = 30 * time.Second
	if o.Region != "us-east-1" || !o.IMDS || o.TimeScale > 1 || !o.NoDefaultVPC || *o.Latencies != lat {
		t.Errorf("options = %+v", o)
	}
	srv := startScenario(t, s)
	r := srv.Region()
	settle(r)

	web, ok := r.Group("web")
	if !ok || web.Min != 1 || web.Max != 4 || web.Desired != 3 || len(web.Subnets) != 3 || len(web.Members) != 3 || web.CapacityRebalance {
		t.Fatalf("web = %+v", web)
	}
	wantTags := map[string]ASGTag{
		"spotmax:group":                  {Key: "spotmax:group", Value: "web", PropagateAtLaunch: true},
		"spotmax:persistence_dev":        {Key: "spotmax:persistence_dev", Value: "/dev/sdf"},
		"spotmax:persistence_mount_path": {Key: "spotmax:persistence_mount_path", Value: "/data", PropagateAtLaunch: true},
		"spotmax:gurantee_living_mins":   {Key: "spotmax:gurantee_living_mins", Value: "50"},
		"spotmax:alt1":                   {Key: "spotmax:alt1", Value: "m5a.large"},
		"spotmax:alt2":                   {Key: "spotmax:alt2", Value: "m6i.large"},
	}
	if len(web.Tags) != len(wantTags) {
		t.Errorf("web tags = %+v", web.Tags)
	}
	for _, tag := range web.Tags {
		if tag != wantTags[tag.Key] {
			t.Errorf("web tag %+v, want %+v", tag, wantTags[tag.Key])
		}
	}
	azs := map[string]bool{}
	for _, m := range web.Members {
		in, _ := r.Instance(m.InstanceID)
		azs[in.AZ] = true
		if in.State != StateRunning || in.Market != MarketSpot || in.Type != "m5.large" || !in.MetadataTags || !in.HTTPTokensReq {
			t.Errorf("web instance %s: %s %s %s tags %v tokens %v", in.ID, in.State, in.Market, in.Type, in.MetadataTags, in.HTTPTokensReq)
		}
		if in.Tags["spotmax:group"] != "web" || in.Tags["spotmax:persistence_mount_path"] != "/data" || in.Tags["spotmax:alt1"] != "" {
			t.Errorf("web instance %s tags = %v", in.ID, in.Tags)
		}
		var data *InstanceBlockDevice
		for _, bd := range in.BlockDevices {
			if bd.DeviceName == "/dev/sdf" {
				data = bd
			}
		}
		if data == nil || !data.DeleteOnTermination {
			t.Fatalf("web instance %s has no /dev/sdf with DeleteOnTermination: %+v", in.ID, in.BlockDevices)
		}
		if v, _ := r.Volume(data.VolumeID); v.Size != 20 || v.Type != "gp3" || v.Tags["app"] != "web" {
			t.Errorf("data volume = %+v", v)
		}
		if !strings.HasPrefix(in.PrivateIP, "10.0.") {
			t.Errorf("private IP %s outside the demo VPC", in.PrivateIP)
		}
	}
	if len(azs) != 3 {
		t.Errorf("web spread over %v, want three zones", azs)
	}

	batch, ok := r.Group("batch")
	if !ok || len(batch.Members) != 1 || len(batch.Tags) != 0 || len(batch.Subnets) != 2 {
		t.Fatalf("batch = %+v", batch)
	}
	if in, _ := r.Instance(batch.Members[0].InstanceID); in.Market != MarketOnDemand || in.Type != "c5.large" || in.AZ == "us-east-1c" {
		t.Errorf("batch instance: %s %s in %s", in.Market, in.Type, in.AZ)
	}
	if c := r.Capacity(); len(c) != 1 || c[PoolKey{InstanceType: "m5a.large", AZ: "us-east-1c", Market: MarketSpot}] != 0 {
		t.Errorf("capacity = %v", c)
	}

	// The agent's view: the web instance's IMDS shows the group tag.
	c := imdsClient(t, r, web.Members[0].InstanceID)
	if v, err := getMetadata(t, c, "tags/instance/spotmax:group"); err != nil || v != "web" {
		t.Errorf("IMDS spotmax:group = %q, %v", v, err)
	}
	if _, err := getMetadata(t, imdsClient(t, r, batch.Members[0].InstanceID), "tags/instance"); httpStatus(err) != http.StatusNotFound {
		t.Errorf("batch IMDS tags: err = %v, want 404", err)
	}
}

func TestScenarioDefaultVPC(t *testing.T) {
	s, err := LoadScenario("testdata/scenario_default_vpc.yaml")
	if err != nil {
		t.Fatal(err)
	}
	o := s.Options()
	if o.NoDefaultVPC || o.Latencies.Pending != 5*time.Second || o.Latencies.ASGCheck != 2*time.Second ||
		o.Latencies.ShuttingDown != AWSLatencies().ShuttingDown {
		t.Errorf("options = %+v, latencies %+v", o, *o.Latencies)
	}
	srv := startScenario(t, s)
	r := srv.Region()
	settle(r)
	g, ok := r.Group("one-zone")
	if !ok || len(g.Members) != 2 {
		t.Fatalf("group = %+v", g)
	}
	for _, m := range g.Members {
		if in, _ := r.Instance(m.InstanceID); in.AZ != "eu-west-1b" || in.Tags["Name"] != "one-zone" {
			t.Errorf("instance in %s with tags %v", in.AZ, in.Tags)
		}
	}
}

func TestScenarioErrors(t *testing.T) {
	_, err := LoadScenario("testdata/scenario_typo.yaml")
	if err == nil || !strings.Contains(err.Error(), "testdata/scenario_typo.yaml") || !strings.Contains(err.Error(), `unknown field "desierd" in a group`) ||
		!strings.Contains(err.Error(), "line 11") {
		t.Errorf("typo: %v", err)
	}

	_, err = LoadScenario("testdata/scenario_bad_values.yaml")
	if err == nil {
		t.Fatal("bad values accepted")
	}
	for _, want := range []string{
		`latencies: "slow" must be aws, fast`,
		`azs[1]: "us-west-2a" is not an availability zone of us-east-1`,
		`vpcs[0] (main).subnets[0] (main-a).cidr: "10.1.0.0/20" is not an IPv4 CIDR block inside 10.0.0.0/16`,
		`vpcs[0] (main).subnets[1] (main-d).az: "us-east-1d" is not one of the scenario's availability zones`,
		`launchTemplates[0] (web).instanceType: "m5large"`,
		`launchTemplates[0] (web).httpTokens: "always"`,
		`launchTemplates[0] (web).blockDevices[0].volumeType: "gp9"`,
		`groups[0] (web).launchTemplate: "webb" is not a launch template`,
		`groups[0] (web): sizes must satisfy 0 <= min <= desired <= max (min 3, desired 3, max 2)`,
		`groups[0] (web).subnets: "main-z" is not a subnet name`,
		`capacity[0].market: "reserved" must be spot or on-demand`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, strings.ReplaceAll(err.Error(), "; ", "\n"))
		}
	}

	for _, tc := range []struct{ yaml, want string }{
		{"", "empty file"},
		{"region: [1]", "cannot unmarshal"},
		{"regoin: us-east-1", `unknown field "regoin" in the scenario`},
		{"latencies: {pending: 40}", "cannot unmarshal !!int `40` into time.Duration"},
		{"latencies: {pendng: 40s}", `unknown field "pendng" in latencies`},
		{"latencies: {asgCheck: 0s}", "latencies.asgCheck: must be more than 0"},
		{"latencies: {snapshotPerGiB: -1s}", "latencies.snapshotPerGiB: -1s must not be negative"},
		{"capacity: [{instanceType: m5.large, az: us-east-1a}]", "capacity[0].count: is required"},
		{"groups: [{name: g, launchTemplate: t, max: 1, tags: {k: {value: v, propagte: true}}}]", `unknown field "propagte" in a group tag`},
		{"groups: [{name: g, launchTemplate: t, max: 1, subnets: {a: b}}]", `subnets must be "all" or a list`},
		{"launchTemplates: [{name: t, imageId: ami-0abcdef1234567890, instanceType: m5.large, spotMaxPrice: '0.1'}]", "need spot: true"},
		{"launchTemplates: [{name: t, imageId: ami-0abcdef1234567890, instanceType: m5.large, tags: {instances: {a: b}}}]", `resource type "instances"`},
		{"groups: [{name: g, launchTemplate: t, max: 1, tags: {'aws:x': y}}]", "reserved"},
	} {
		_, err := ParseScenario([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "scenario: ") {
			t.Errorf("ParseScenario(%q) = %v, want an error containing %q", tc.yaml, err, tc.want)
		}
	}
}

func TestScenarioDefaultsAndSubnetCIDRs(t *testing.T) {
	s, err := ParseScenario([]byte(`
vpcs:
  - name: v
    cidr: 10.1.0.0/16
    subnets:
      - {name: a, az: us-east-1a}
      - {name: b, az: us-east-1b, cidr: 10.1.0.0/20}
      - {name: c, az: us-east-1c}
launchTemplates:
  - name: t
    imageId: ami-0abcdef1234567890
    instanceType: m5.large
    blockDevices:
      - {deviceName: /dev/sdf, volumeSize: 10}
      - {deviceName: /dev/sdg, volumeSize: 10, deleteOnTermination: false}
groups:
  - {name: g, launchTemplate: t, max: 2}
`))
	if err != nil {
		t.Fatal(err)
	}
	var cidrs []string
	for _, sn := range s.VPCs[0].Subnets {
		cidrs = append(cidrs, sn.CIDR)
	}
	if got := strings.Join(cidrs, " "); got != "10.1.16.0/20 10.1.0.0/20 10.1.32.0/20" {
		t.Errorf("subnet CIDRs = %s", got)
	}
	if s.Region != "us-east-1" || s.Groups[0].Version != "$Default" || !s.Groups[0].Subnets.All {
		t.Errorf("defaults: region %q version %q subnets %+v", s.Region, s.Groups[0].Version, s.Groups[0].Subnets)
	}
	d := s.LaunchTemplates[0].data()
	if !d.BlockDevices[0].DeleteOnTermination || d.BlockDevices[1].DeleteOnTermination || d.BlockDevices[0].VolumeType != "gp3" {
		t.Errorf("block devices = %+v", d.BlockDevices)
	}

	r := New(s.Options())
	if err := s.Apply(r); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(New(Options{Region: "eu-west-1"})); err == nil || !strings.Contains(err.Error(), "for region us-east-1") {
		t.Errorf("applying to another region: %v", err)
	}
	if err := s.Apply(r); err == nil || !strings.Contains(err.Error(), "group g") {
		t.Errorf("applying twice: %v", err)
	}
}
