package sim_test

import (
	"strings"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/sim"
)

// Conformance of the EC2 behaviours of AWSBehaviors through the aws CLI (query protocol, as
// aws-cli v1 speaks EC2): each test asserts AWS's documented answer.

// startAWSCLI is startCLI with AWS's behaviours switched on; change adjusts them first. The CLI
// takes a second or two per call and the region's clock runs in real time, so tests that check
// a window stretch it and move the clock themselves.
func startAWSCLI(t *testing.T, change func(*sim.Behaviors)) *cliEnv {
	t.Helper()
	e := startCLI(t)
	b := sim.AWSBehaviors()
	if change != nil {
		change(&b)
	}
	e.Region().SetBehaviors(b)
	return e
}

// wantCLIError checks that the aws CLI reported the error code and message part.
func wantCLIError(t *testing.T, stderr, code, msgPart string) {
	t.Helper()
	if !strings.Contains(stderr, "("+code+")") || !strings.Contains(stderr, msgPart) {
		t.Errorf("aws error output = %q, want (%s) with %q", stderr, code, msgPart)
	}
}

func TestAWSCLIEC2LaunchAndTagVisibility(t *testing.T) {
	e := startAWSCLI(t, func(b *sim.Behaviors) {
		b.EC2.LaunchVisibility = sim.Duration(time.Hour)
		b.EC2.TagVisibility = sim.Duration(time.Hour)
	})
	var run struct{ Instances []cliInstance }
	e.Run(&run, "ec2", "run-instances", "--image-id", testAMI, "--count", "1")
	id := run.Instances[0].InstanceID
	notFound := "The instance ID '" + id + "' does not exist"
	wantCLIError(t, e.Fail("ec2", "describe-instances", "--instance-ids", id), "InvalidInstanceID.NotFound", notFound)
	wantCLIError(t, e.Fail("ec2", "create-tags", "--resources", id, "--tags", "Key=k,Value=v"), "InvalidInstanceID.NotFound", notFound)
	wantCLIError(t, e.Fail("ec2", "terminate-instances", "--instance-ids", id), "InvalidInstanceID.NotFound", notFound)

	e.Region().Advance(time.Hour)
	var out struct {
		Reservations []struct{ Instances []cliInstance }
	}
	e.Run(&out, "ec2", "describe-instances", "--instance-ids", id)
	if len(out.Reservations) != 1 || out.Reservations[0].Instances[0].InstanceID != id {
		t.Fatalf("describe-instances after the window = %+v", out)
	}
	e.Run(nil, "ec2", "create-tags", "--resources", id, "--tags", "Key=spotmax:state,Value=replacing")
	out.Reservations = nil
	e.Run(&out, "ec2", "describe-instances", "--filters", "Name=tag:spotmax:state,Values=replacing")
	if len(out.Reservations) != 0 {
		t.Errorf("tag filter right after create-tags = %+v, want nothing yet", out)
	}
	e.Region().Advance(time.Hour)
	e.Run(&out, "ec2", "describe-instances", "--filters", "Name=tag:spotmax:state,Values=replacing")
	if len(out.Reservations) != 1 {
		t.Errorf("tag filter after the window = %+v", out)
	}
}

func TestAWSCLIEC2CapacityServerError(t *testing.T) {
	e := startAWSCLI(t, nil)
	e.Region().SetCapacity(sim.PoolKey{InstanceType: "m5.large", AZ: "us-east-1a", Market: sim.MarketOnDemand}, 0)
	e.Vars = append(e.Vars, "AWS_MAX_ATTEMPTS=2")
	e.Region().ResetCalls()
	stderr := e.Fail("ec2", "run-instances", "--image-id", testAMI, "--instance-type", "m5.large", "--placement", "AvailabilityZone=us-east-1a")
	// The CLI retries server errors: the message says it ran out of retries.
	wantCLIError(t, stderr, "InsufficientInstanceCapacity", "We currently do not have sufficient m5.large capacity in the Availability Zone you requested (us-east-1a).")
	if !strings.Contains(stderr, "reached max retries: 1") {
		t.Errorf("aws error output = %q, want a retried server error (reached max retries: 1)", stderr)
	}
	if n := runCalls(e.Region()); n != 2 {
		t.Errorf("RunInstances calls = %d, want 2 (the CLI retried a server error)", n)
	}
}

func TestAWSCLIEC2IdempotentParameterMismatch(t *testing.T) {
	e := startAWSCLI(t, nil)
	var first, again struct{ Instances []cliInstance }
	e.Run(&first, "ec2", "run-instances", "--image-id", testAMI, "--instance-type", "m5.large", "--client-token", "tok-1")
	e.Run(&again, "ec2", "run-instances", "--image-id", testAMI, "--instance-type", "m5.large", "--client-token", "tok-1")
	if first.Instances[0].InstanceID != again.Instances[0].InstanceID {
		t.Errorf("same token and parameters launched %s then %s, want the same instance", first.Instances[0].InstanceID, again.Instances[0].InstanceID)
	}
	stderr := e.Fail("ec2", "run-instances", "--image-id", testAMI, "--instance-type", "m5a.large", "--client-token", "tok-1")
	wantCLIError(t, stderr, "IdempotentParameterMismatch", "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).")
}

func TestAWSCLIEC2InstanceTypes(t *testing.T) {
	e := startAWSCLI(t, nil)
	wantCLIError(t, e.Fail("ec2", "run-instances", "--image-id", testAMI, "--instance-type", "m5.larg"),
		"InvalidParameterValue", "Invalid value 'm5.larg' for InstanceType.")
	wantCLIError(t, e.Fail("ec2", "run-instances", "--image-id", testAMI, "--instance-type", "m7i.large", "--placement", "AvailabilityZone=us-east-1c"),
		"Unsupported", "Your requested instance type (m7i.large) is not supported in your requested Availability Zone (us-east-1c). "+
			"Please retry your request by not specifying an Availability Zone or choosing us-east-1a, us-east-1b.")
	var out struct {
		InstanceTypeOfferings []struct{ InstanceType, LocationType, Location string }
	}
	e.Run(&out, "ec2", "describe-instance-type-offerings", "--location-type", "availability-zone",
		"--filters", "Name=instance-type,Values=m7i.large")
	var got []string
	for _, o := range out.InstanceTypeOfferings {
		got = append(got, o.InstanceType+"@"+o.Location+"/"+o.LocationType)
	}
	if strings.Join(got, " ") != "m7i.large@us-east-1a/availability-zone m7i.large@us-east-1b/availability-zone" {
		t.Errorf("offerings of m7i.large = %v", got)
	}
}

func TestAWSCLIEC2LaunchTemplateNetworkInterfaces(t *testing.T) {
	e := startAWSCLI(t, nil)
	subnetB, _ := e.Region().DefaultSubnet("us-east-1b")
	subnetC, _ := e.Region().DefaultSubnet("us-east-1c")
	e.Run(nil, "ec2", "create-launch-template", "--launch-template-name", "eni", "--launch-template-data",
		`{"ImageId":"`+testAMI+`","InstanceType":"m5.large","NetworkInterfaces":[{"DeviceIndex":0,"SubnetId":"`+subnetB+`","Groups":["sg-0aaaaaaaaaaaaaaa1"]}]}`)
	var vers struct {
		LaunchTemplateVersions []struct {
			LaunchTemplateData struct {
				NetworkInterfaces []struct {
					DeviceIndex int
					SubnetID    string `json:"SubnetId"`
					Groups      []string
				}
			}
		}
	}
	e.Run(&vers, "ec2", "describe-launch-template-versions", "--launch-template-name", "eni")
	nis := vers.LaunchTemplateVersions[0].LaunchTemplateData.NetworkInterfaces
	if len(nis) != 1 || nis[0].SubnetID != subnetB || strings.Join(nis[0].Groups, ",") != "sg-0aaaaaaaaaaaaaaa1" {
		t.Fatalf("template interfaces = %+v", nis)
	}
	wantCLIError(t, e.Fail("ec2", "run-instances", "--launch-template", "LaunchTemplateName=eni", "--subnet-id", subnetC),
		"InvalidParameterCombination", "Network interfaces and an instance-level subnet ID may not be specified on the same request")
	var run struct {
		Instances []struct {
			SubnetID       string `json:"SubnetId"`
			SecurityGroups []struct {
				GroupID string `json:"GroupId"`
			}
		}
	}
	e.Run(&run, "ec2", "run-instances", "--launch-template", "LaunchTemplateName=eni")
	if in := run.Instances[0]; in.SubnetID != subnetB || len(in.SecurityGroups) != 1 || in.SecurityGroups[0].GroupID != "sg-0aaaaaaaaaaaaaaa1" {
		t.Errorf("instance from the template = %+v, want subnet %s and its interface's group", in, subnetB)
	}
}

func TestAWSCLIEC2HibernateInterruption(t *testing.T) {
	e := startAWSCLI(t, nil)
	var run struct{ Instances []cliInstance }
	e.Run(&run, "ec2", "run-instances", "--image-id", testAMI, "--instance-market-options",
		`{"MarketType":"spot","SpotOptions":{"SpotInstanceType":"persistent","InstanceInterruptionBehavior":"hibernate"}}`)
	id := run.Instances[0].InstanceID
	e.Region().Advance(time.Hour)
	if err := e.Region().Interrupt(id, ""); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Reservations []struct {
			Instances []struct {
				State       struct{ Name string }
				StateReason struct{ Code string }
			}
		}
	}
	// No two-minute grace: the instance is already stopping when the next call looks.
	e.Run(&out, "ec2", "describe-instances", "--instance-ids", id)
	if in := out.Reservations[0].Instances[0]; in.State.Name != "stopping" && in.State.Name != "stopped" {
		t.Errorf("hibernate-interrupted instance = %+v, want stopping at once", in)
	}
}

func TestAWSCLIEC2DescribeVolumesDefaultPageSize(t *testing.T) {
	e := startAWSCLI(t, nil)
	var vol struct {
		VolumeID string `json:"VolumeId"`
	}
	e.Run(&vol, "ec2", "create-volume", "--availability-zone", "us-east-1a", "--size", "1")
	// aws-cli v1 sends MaxResults=1000 with describe-volumes by default; EC2 caps it at 500.
	var out struct {
		Volumes []struct {
			VolumeID string `json:"VolumeId"`
		}
	}
	e.Run(&out, "ec2", "describe-volumes")
	if len(out.Volumes) != 1 || out.Volumes[0].VolumeID != vol.VolumeID {
		t.Errorf("describe-volumes = %+v, want %s", out, vol.VolumeID)
	}
	e.Region().SetBehaviors(sim.KindBehaviors())
	wantCLIError(t, e.Fail("ec2", "describe-volumes"), "InvalidParameterValue", "maxResults")
}
